//! The integration tests, one crate: the real binary (`CARGO_BIN_EXE_clawbridge`)
//! against the in-repo demo gateway, a TLS terminator and raw sockets. The
//! shared helpers are in `common` (a bridge on free ports, request builders,
//! an SSE parser, metric polling, a raw HTTP/1 client); each module is one
//! area. `soak` is ignored by default: `scripts/soak.sh` runs it.

mod common;

mod chat;
mod faults;
mod front_door;
mod fuzz_regressions;
mod hostile;
mod http_edges;
mod limits;
mod link_safety;
mod openai_surface;
mod pairing;
mod passthrough;
mod resilience;
mod rotation;
mod security;
mod soak;
mod tls;
