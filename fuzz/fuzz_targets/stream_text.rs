//! Sequences of assistant events through `StreamText::on_event`, then
//! `completion`: one `AssistantData` JSON object per input line. What is
//! streamed must stay append-only: the pieces handed out, joined, are a
//! prefix of the text `completion` would finish with.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::stream_text(data));
