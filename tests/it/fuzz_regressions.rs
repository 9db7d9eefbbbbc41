//! Replays the fuzz seeds (`fuzz/seeds/<target>/`) and every committed
//! crash reproducer (`fuzz/regressions/<target>/`) through the same code the
//! cargo-fuzz targets of `fuzz/` run, on stable, as part of `cargo test`.
//! A new crash found by `scripts/fuzz.sh`: copy its artifact into
//! `fuzz/regressions/<target>/` with a descriptive name.

#[path = "../../fuzz/harness.rs"]
mod harness;

use harness::{gateway_frames, prompt_fold, request, stream_text};

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
