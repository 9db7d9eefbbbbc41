//! The SSE encoder of a streamed completion: renders `chat.completion.chunk`
//! events byte-for-byte as the gateway does (key order `id, object, created,
//! model, choices[, usage]`), error events and `[DONE]`. Pure.

use bytes::{BufMut, Bytes, BytesMut};

use super::response::Usage;

/// Renders the chunks of one completion. The `data: {"id":..,"model":..,"choices":[`
/// prefix is built once; each chunk only appends its choice.
pub struct ChunkEncoder {
    prefix: Vec<u8>,
}

pub const DONE: &[u8] = b"data: [DONE]\n\n";
/// SSE comment sent during silence so idle-timeout proxies keep the stream.
pub const KEEPALIVE: &[u8] = b": ping\n\n";

impl ChunkEncoder {
    pub fn new(id: &str, created: u64, model: &str) -> Self {
        let mut prefix = Vec::with_capacity(96 + id.len() + model.len());
        prefix.extend_from_slice(b"data: {\"id\":");
        json_str(&mut prefix, id);
        prefix.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        prefix.extend_from_slice(created.to_string().as_bytes());
        prefix.extend_from_slice(b",\"model\":");
        json_str(&mut prefix, model);
        prefix.extend_from_slice(b",\"choices\":[");
        ChunkEncoder { prefix }
    }

    fn chunk(&self, choice: &[u8], extra: usize) -> BytesMut {
        let mut b = BytesMut::with_capacity(self.prefix.len() + choice.len() + extra + 8);
        b.put_slice(&self.prefix);
        b.put_slice(choice);
        b
    }

    /// `delta:{role:"assistant"}`, written before any content.
    pub fn role(&self) -> Bytes {
        let mut b = self.chunk(br#"{"index":0,"delta":{"role":"assistant"},"finish_reason":null}"#, 0);
        b.put_slice(b"]}\n\n");
        b.freeze()
    }

    pub fn content(&self, text: &str) -> Bytes {
        let mut b = self.chunk(br#"{"index":0,"delta":{"content":"#, text.len() + 40);
        let mut s = Vec::with_capacity(text.len() + 2);
        json_str(&mut s, text);
        b.put_slice(&s);
        b.put_slice(br#"},"finish_reason":null}]}"#);
        b.put_slice(b"\n\n");
        b.freeze()
    }

    pub fn finish(&self, reason: &str) -> Bytes {
        let mut b = self.chunk(br#"{"index":0,"delta":{},"finish_reason":"#, 16);
        let mut s = Vec::new();
        json_str(&mut s, reason);
        b.put_slice(&s);
        b.put_slice(b"}]}\n\n");
        b.freeze()
    }

    /// The trailing `choices:[]` chunk sent with `stream_options.include_usage`.
    pub fn usage(&self, usage: &Usage) -> Bytes {
        let mut b = self.chunk(b"],\"usage\":", 80);
        b.put_slice(&serde_json::to_vec(usage).expect("usage serialises"));
        b.put_slice(b"}\n\n");
        b.freeze()
    }
}

/// `data: {"error":{...}}` for a failure after the stream has started.
pub fn error_event(message: &str, kind: &str) -> Bytes {
    let body = crate::error::error_envelope(message, kind);
    let mut b = BytesMut::with_capacity(body.len() + 8);
    b.put_slice(b"data: ");
    b.put_slice(body.as_bytes());
    b.put_slice(b"\n\n");
    b.freeze()
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let got = [
            enc.role(),
            enc.content("Hello"),
            enc.content(", world"),
            enc.content("!"),
            enc.finish("stop"),
            enc.usage(&Usage { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13, ..Default::default() }),
            Bytes::from_static(DONE),
        ];
        let got: Vec<String> = got.iter().map(|b| String::from_utf8(b.to_vec()).unwrap()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn escapes_model_and_content() {
        let enc = ChunkEncoder::new("chatcmpl_x", 1, "a\"b");
        let chunk = enc.content("line\n\"q\" é 🦀");
        let text = std::str::from_utf8(&chunk).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap();
        assert_eq!(v["model"], "a\"b");
        assert_eq!(v["choices"][0]["delta"]["content"], "line\n\"q\" é 🦀");
        assert!(text.ends_with("\n\n") && !text.trim_end().contains('\n'), "one line per event");
    }

    #[test]
    fn error_event_shape() {
        assert_eq!(
            &error_event("upstream provider error", "api_error")[..],
            &b"data: {\"error\":{\"message\":\"upstream provider error\",\"type\":\"api_error\"}}\n\n"[..]
        );
    }
}
