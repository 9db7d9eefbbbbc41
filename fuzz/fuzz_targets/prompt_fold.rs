//! Prompt folding of arbitrary `messages` arrays (any JSON shape per item).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::prompt_fold(data));
