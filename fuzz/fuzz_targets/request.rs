//! The request parser: `parse` = `decode` (UTF-8 lossy, JS trim, typed serde_json, V8's
//! error wording) then `validate` (schema, checks, agent and session
//! routing, prompt folding). The first input line supplies the route
//! headers (`agent|session|model|channel`), the rest is the body.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::request(data));
