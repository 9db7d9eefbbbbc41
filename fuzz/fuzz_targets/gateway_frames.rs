//! The gateway frame decoders as the connection task runs them: the
//! handshake's `InFrame` + `HelloOk`, and the one-pass routing decoder
//! (`AssistantData` / `LifecycleData` in place, `AgentResPayload` after).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::gateway_frames(data));
