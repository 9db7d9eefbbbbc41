//! Prompt folding of arbitrary `messages` arrays (any JSON shape per item).
#![no_main]

use clawbridge::chat::prompt::{fold, js_trim};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let messages: Vec<Value> = match value {
        Value::Array(a) => a,
        other => vec![other],
    };
    let p = fold(&messages);
    // Folding is deterministic.
    assert_eq!(p, fold(&messages));
    if let Some(s) = &p.extra_system_prompt {
        assert!(!s.is_empty());
    }
    let _ = js_trim(&p.message);
});
