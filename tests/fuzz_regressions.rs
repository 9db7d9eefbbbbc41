//! Replays the fuzz seeds (`fuzz/seeds/<target>/`) and every committed
//! crash reproducer (`fuzz/regressions/<target>/`) through the same code the
//! cargo-fuzz targets of `fuzz/` run, on stable, as part of `cargo test`.
//! A new crash found by `scripts/fuzz.sh`: copy its artifact into
//! `fuzz/regressions/<target>/` with a descriptive name.

use clawbridge::chat::assistant_text::StreamText;
use clawbridge::chat::prompt::fold;
use clawbridge::chat::request::{decode, validate, RouteHeaders};
use clawbridge::gateway::frames::{AgentEvent, AgentResPayload, HelloOk, InFrame};
use clawbridge::gateway::{AssistantData, LifecycleData};
use serde_json::Value;

fn request(data: &[u8]) {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let head = String::from_utf8_lossy(head);
    let mut fields = head.split('|').map(|s| Some(s).filter(|s| !s.is_empty()));
    let headers = RouteHeaders {
        agent_id: fields.next().flatten(),
        session_key: fields.next().flatten(),
        model_override: fields.next().flatten(),
        message_channel: fields.next().flatten(),
    };
    match decode(body) {
        Ok(value) => {
            if let Err(e) = validate(&value, headers) {
                assert_eq!(e.status(), 400, "{e:?}");
            }
        }
        Err(e) => assert_eq!(e.status(), 400),
    }
}

fn prompt_fold(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let messages = match value {
        Value::Array(a) => a,
        other => vec![other],
    };
    assert_eq!(fold(&messages), fold(&messages));
}

fn gateway_frames(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(frame) = serde_json::from_str::<InFrame>(text) else { return };
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
    }
}

fn stream_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.lines();
    let result_text = lines.next().filter(|l| *l != "-");
    let mut st = StreamText::new();
    for line in lines.take(256) {
        if let Ok(ev) = serde_json::from_str::<AssistantData>(line) {
            if let Some(piece) = st.on_event(&ev) {
                assert!(!piece.is_empty());
            }
        }
    }
    let _ = st.completion(result_text);
}

/// Runs `f` over every file of `fuzz/<dir>/<target>/` on a thread with a
/// 2 MiB stack, Pingora's worker size, so stack overflows reproduce.
fn replay(target: &str, f: fn(&[u8])) -> usize {
    let mut n = 0;
    for dir in ["seeds", "regressions"] {
        let path = format!("{}/fuzz/{dir}/{target}", env!("CARGO_MANIFEST_DIR"));
        let Ok(entries) = std::fs::read_dir(&path) else { continue };
        for entry in entries {
            let file = entry.unwrap().path();
            let data = std::fs::read(&file).unwrap();
            let name = file.display().to_string();
            std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || f(&data))
                .unwrap()
                .join()
                .unwrap_or_else(|_| panic!("{name}"));
            n += 1;
        }
    }
    n
}

#[test]
fn request_parser() {
    assert!(replay("request", request) >= 5);
}

#[test]
fn prompt_folding() {
    assert!(replay("prompt_fold", prompt_fold) >= 1);
}

#[test]
fn frame_decoder() {
    assert!(replay("gateway_frames", gateway_frames) >= 10);
}

#[test]
fn assistant_text_sequences() {
    assert!(replay("stream_text", stream_text) >= 2);
}
