//! The gateway frame decoder as the connection task runs it: `InFrame`,
//! then by kind `AgentEvent` -> `AssistantData` / `LifecycleData`, or
//! `AgentResPayload` (with usage), and `HelloOk`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::gateway_frames(data));
