//! The gateway frame decoder as the connection task runs it: `InFrame`,
//! then by kind `AgentEvent` -> `AssistantData` / `LifecycleData`, or
//! `AgentResPayload` (with usage), and `HelloOk`.
#![no_main]

use clawbridge::gateway::frames::{AgentEvent, AgentResPayload, HelloOk, InFrame};
use clawbridge::gateway::{AssistantData, LifecycleData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(frame) = serde_json::from_str::<InFrame>(text) else {
        return;
    };
    let payload = frame.payload.map(|p| p.get()).unwrap_or("null");
    let _ = serde_json::from_str::<HelloOk>(payload);
    if let Ok(res) = serde_json::from_str::<AgentResPayload>(payload) {
        if let Some(meta) = res.result.and_then(|r| r.meta) {
            let _ = meta.agent_meta.and_then(|a| a.usage());
        }
    }
    if let Ok(ev) = serde_json::from_str::<AgentEvent>(payload) {
        let data = ev.data.map(|d| d.get()).unwrap_or("{}");
        let _ = serde_json::from_str::<AssistantData>(data);
        let _ = serde_json::from_str::<LifecycleData>(data);
        let _ = ev.run_id.len() + ev.stream.len();
    }
});
