//! The SSE encoder of a streamed completion: renders `chat.completion.chunk`
//! events byte-for-byte as the gateway does (key order `id, object, created,
//! model, choices[, usage]`), error events and `[DONE]`. Pure.

use bytes::{BufMut, BytesMut};

use super::response::Usage;

/// Renders the chunks of one completion. The `data: {"id":..,"model":..,"choices":[`
/// prefix is built once; each chunk only appends its choice.
pub struct ChunkEncoder {
    prefix: Vec<u8>,
}

impl ChunkEncoder {
    pub fn new(id: &str, created: u64, model: &str) -> Self {
        let mut prefix = Vec::with_capacity(96 + id.len() + model.len());
        prefix.extend_from_slice(b"data: {\"id\":");
        serde_json::to_writer(&mut prefix, id).expect("string");
        prefix.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        prefix.extend_from_slice(created.to_string().as_bytes());
        prefix.extend_from_slice(b",\"model\":");
        serde_json::to_writer(&mut prefix, model).expect("string");
        prefix.extend_from_slice(b",\"choices\":[");
        ChunkEncoder { prefix }
    }

    /// Every chunk is appended to the caller's buffer, so a batch of events
    /// costs one buffer and one write.
    fn open(&self, buf: &mut BytesMut, choice: &[u8]) {
        buf.reserve(self.prefix.len() + choice.len() + 32);
        buf.put_slice(&self.prefix);
        buf.put_slice(choice);
    }

    /// `delta:{role:"assistant"}`, written before any content.
    pub fn put_role(&self, buf: &mut BytesMut) {
        self.open(buf, br#"{"index":0,"delta":{"role":"assistant"},"finish_reason":null}"#);
        buf.put_slice(b"]}\n\n");
    }

    pub fn put_content(&self, buf: &mut BytesMut, text: &str) {
        self.open(buf, br#"{"index":0,"delta":{"content":"#);
        json_str(buf, text);
        buf.put_slice(b"},\"finish_reason\":null}]}\n\n");
    }

    pub fn put_finish(&self, buf: &mut BytesMut, reason: &str) {
        self.open(buf, br#"{"index":0,"delta":{},"finish_reason":"#);
        json_str(buf, reason);
        buf.put_slice(b"}]}\n\n");
    }

    /// The trailing `choices:[]` chunk sent with `stream_options.include_usage`.
    pub fn put_usage(&self, buf: &mut BytesMut, usage: &Usage) {
        self.open(buf, b"],\"usage\":");
        serde_json::to_writer(buf.writer(), usage).expect("usage serialises");
        buf.put_slice(b"}\n\n");
    }
}

/// `data: {"error":{...}}` for a failure after the stream has started.
pub fn put_error(buf: &mut BytesMut, message: &str, kind: &str) {
    buf.put_slice(b"data: ");
    buf.put_slice(crate::error::error_envelope(message, kind).as_bytes());
    buf.put_slice(b"\n\n");
}

fn json_str(buf: &mut BytesMut, s: &str) {
    serde_json::to_writer(buf.writer(), s).expect("writing to a buffer cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::driver::DONE;

    fn captured_chunks() -> Vec<String> {
        let path = format!("{}/tests/fixtures/builtin-stream-include-usage.txt", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("data: "))
            .map(|l| format!("{l}\n\n"))
            .collect()
    }

    #[test]
    fn renders_the_captured_stream_byte_for_byte() {
        let want = captured_chunks();
        let id = "chatcmpl_2ce27408-450f-4fcb-8bc8-8234edeafdac";
        let enc = ChunkEncoder::new(id, 1795636699, "openclaw");
        let mut buf = BytesMut::new();
        enc.put_role(&mut buf);
        for piece in ["Hello", ", world", "!"] {
            enc.put_content(&mut buf, piece);
        }
        enc.put_finish(&mut buf, "stop");
        let usage = Usage { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13, ..Default::default() };
        enc.put_usage(&mut buf, &usage);
        buf.put_slice(DONE);
        assert_eq!(String::from_utf8(buf.to_vec()).unwrap(), want.concat());
    }

    #[test]
    fn escapes_model_and_content() {
        let enc = ChunkEncoder::new("chatcmpl_x", 1, "a\"b");
        let mut chunk = BytesMut::new();
        enc.put_content(&mut chunk, "line\n\"q\" é 🦀");
        let text = std::str::from_utf8(&chunk).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(v["model"], "a\"b");
        assert_eq!(v["choices"][0]["delta"]["content"], "line\n\"q\" é 🦀");
        assert!(text.ends_with("\n\n") && !text.trim_end().contains('\n'), "one line per event");
    }

    #[test]
    fn error_event_shape() {
        let mut buf = BytesMut::new();
        put_error(&mut buf, "upstream provider error", "api_error");
        assert_eq!(
            &buf[..],
            &b"data: {\"error\":{\"message\":\"upstream provider error\",\"type\":\"api_error\"}}\n\n"[..]
        );
    }
}
