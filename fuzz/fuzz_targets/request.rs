//! The request parser: `decode` (UTF-8 lossy, JS trim, serde_json, V8's
//! error wording) then `validate` (schema, checks, agent and session
//! routing, prompt folding). The first input line supplies the route
//! headers (`agent|session|model|channel`), the rest is the body.
#![no_main]

use clawbridge::chat::request::{decode, validate, RouteHeaders};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
                assert_eq!(e.status(), 400, "validation only answers 400: {e:?}");
                let _ = e.envelope();
            }
        }
        Err(e) => {
            assert_eq!(e.status(), 400);
            assert!(!e.message().is_empty());
        }
    }
});
