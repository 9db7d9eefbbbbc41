//! Sequences of assistant events through `StreamText::on_event`, then
//! `completion`: one `AssistantData` JSON object per input line. What is
//! streamed must stay append-only: the pieces handed out, joined, are a
//! prefix of the text `completion` would finish with.
#![no_main]

use clawbridge::chat::assistant_text::StreamText;
use clawbridge::gateway::AssistantData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
