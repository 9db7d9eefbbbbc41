//! clawbridge: a Pingora sidecar in front of an OpenClaw gateway. It serves
//! OpenAI `POST /v1/chat/completions` by running each turn over the
//! gateway's native WebSocket `agent` method, and forwards all other
//! traffic, WebSocket upgrades included, to the gateway unchanged.
//!
//! # Layout
//! - [`config`]: clawbridge's YAML and env, and the gateway's JSON5 file.
//! - [`proxy`]: the `ProxyHttp` dispatcher; [`detach`] serves chat requests
//!   off Pingora's request task; [`server`] assembles the services
//!   ([`colocated`] runs the gateway link on a one-thread proxy runtime).
//! - [`chat`]: the chat route (validation, prompt folding, SSE/JSON output).
//! - [`gateway`]: the multiplexed WebSocket client and its wire frames.
//! - [`ingress`]: the front door: the route (on the gateway's routing path) and
//!   the client (as the gateway attributes it, named upstream in `X-Forwarded-For`).
//! - [`conn_guard`] (with [`head_scan`]) bounds every client connection in
//!   time and head size; [`http_guard`] refuses what Node refuses up front.
//! - [`reload`] follows the gateway's file and applies a changed secret,
//!   rate limit or trusted proxies without a restart.
//! - [`auth`], [`error`], [`metrics`], [`admin`], [`drain`], [`upstream`].
//!
//! # Request flow
//! A chat request is authenticated and validated exactly as the gateway's
//! built-in endpoint does it, then started as an `agent` run on the one
//! shared gateway connection. The connection task demultiplexes the
//! gateway's events by run id into a per-request channel; the request's
//! task turns them into SSE chunks or one JSON body. A client that goes
//! away gets its run aborted with `chat.abort`.

pub mod admin;
pub mod api;
pub mod auth;
pub mod chat;
pub mod colocated;
pub mod config;
pub mod conn_guard;
pub mod detach;
pub mod drain;
pub mod error;
pub mod gateway;
pub mod head_scan;
pub mod http_guard;
pub mod ingress;
pub mod logs;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod responses;
pub mod server;
pub mod turn;

pub mod upstream;
