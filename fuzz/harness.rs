//! What each cargo-fuzz target runs on one input, shared by the targets in
//! `fuzz_targets/` and by `tests/fuzz_regressions.rs`, which replays the
//! seeds and crash inputs on stable Rust. Each function asserts the
//! property its target checks.
#![allow(dead_code)]

use clawbridge::chat::body::{Json, Message, MessageFields};
use clawbridge::chat::prompt::{fold, js_trim};
use clawbridge::chat::request::{parse, RouteHeaders};
use clawbridge::gateway::decode::{self as frame_decode, AgentData, Payload};
use clawbridge::gateway::frames::{AgentResPayload, HelloOk, InFrame};
use clawbridge::gateway::AssistantData;
use clawbridge::turn::text::StreamText;

/// The request parser: `<agent>|<session>|<model>|<channel>\n<body>`.
pub fn request(data: &[u8]) {
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
    if let Err(e) = parse(body, headers) {
        assert_eq!(e.status(), 400, "parsing only answers 400: {e:?}");
        assert!(!e.message().is_empty());
        let _ = e.envelope();
    }
}

/// Prompt folding of arbitrary `messages` arrays (any JSON shape per item).
pub fn prompt_fold(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // An array is the messages; any other value is one message.
    let messages: Vec<Message> = match serde_json::from_str::<Json<MessageFields, Message>>(text) {
        Ok(Json::Arr(a)) => a,
        Ok(_) => match serde_json::from_str::<Message>(text) {
            Ok(one) => vec![one],
            Err(_) => return,
        },
        Err(_) => return,
    };
    let p = fold(&messages, None);
    // Folding is deterministic.
    assert_eq!(p, fold(&messages, None));
    if let Some(s) = &p.extra_system_prompt {
        assert!(!s.is_empty());
    }
    let _ = js_trim(&p.message);
}

/// The gateway frame decoders as the connection task runs them: the
/// handshake's `InFrame` + `HelloOk`, and the routing decoder (for a run
/// of ours and another client's) with the `res` payload it leaves raw.
pub fn gateway_frames(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = serde_json::from_str::<InFrame>(text) {
        let _ = serde_json::from_str::<HelloOk>(frame.payload.map(|p| p.get()).unwrap_or("null"));
    }
    for ours in [true, false] {
        let Ok(frame) = frame_decode::decode(text, &|_| ours) else {
            continue;
        };
        match frame.payload {
            Payload::Raw(p) => {
                if let Ok(res) = serde_json::from_str::<AgentResPayload>(p.get()) {
                    if let Some(meta) = res.result.and_then(|r| r.meta) {
                        let _ = meta.agent_meta.and_then(|a| a.usage());
                    }
                }
            }
            Payload::Agent(ev) => {
                assert!(ours || ev.data == AgentData::Other, "another run's data is never decoded");
                let _ = ev.run_id.len();
            }
            Payload::None => {}
        }
    }
}

/// Assistant event sequences: first line the result text (`-` for none),
/// then one `AssistantData` per line; the streamed pieces stay append-only.
pub fn stream_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let result_text = lines.next().filter(|l| *l != "-");
    let mut st = StreamText::new();
    let mut streamed = String::new();
    for line in lines.take(256) {
        let Ok(ev) = serde_json::from_str::<AssistantData>(line) else {
            continue;
        };
        if let Some(piece) = st.on_event(&ev) {
            assert!(!piece.is_empty());
            streamed.push_str(&piece);
        }
    }
    if let Ok(Some(rest)) = st.completion(result_text) {
        streamed.push_str(&rest);
    }
    let _ = st.error;
}
