//! The responses renderer: a turn as OpenResponses SSE events
//! ([`ResponsesSse`]) or one `response` object ([`body`]), with the
//! built-in's shapes and key order (`openresponses-http` in 2026.9.6).
//! Failures are `status: "failed"` responses, never the chat envelope.

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use crate::error::ApiError;
use crate::gateway::{Finish, RunUsage};
use crate::turn::driver::{count_tokens, Collected, Finished, Render, DONE};
use crate::turn::failure;
use crate::turn::text::NO_RESPONSE;

/// Who a response is: its ids, creation time and echoed model.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    pub item_id: String,
    pub created_at: u64,
    pub model: String,
    pub agent: std::sync::Arc<str>,
}

#[derive(Debug, Default, Serialize)]
pub struct Usage {
    input_tokens: u64,
    input_tokens_details: InputDetails,
    output_tokens: u64,
    output_tokens_details: OutputDetails,
    total_tokens: u64,
}

#[derive(Debug, Default, Serialize)]
struct InputDetails {
    cached_tokens: u64,
    cache_write_tokens: u64,
}

#[derive(Debug, Default, Serialize)]
struct OutputDetails {
    reasoning_tokens: u64,
}

impl Usage {
    /// `toOpenAiResponsesUsage`: input counts cache reads and writes.
    pub fn from_run(u: Option<&RunUsage>) -> Self {
        let Some(u) = u else { return Usage::default() };
        let input = u.input + u.cache_read + u.cache_write;
        Usage {
            input_tokens: input,
            input_tokens_details: InputDetails { cached_tokens: u.cache_read, cache_write_tokens: u.cache_write },
            output_tokens: u.output,
            output_tokens_details: OutputDetails { reasoning_tokens: u.reasoning.unwrap_or(0) },
            total_tokens: (input + u.output).max(u.total),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Debug, Serialize)]
struct Part<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Debug, Serialize)]
struct Item<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    role: &'static str,
    content: Vec<Part<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<&'static str>,
    status: &'static str,
}

impl<'a> Item<'a> {
    fn message(id: &'a str, text: Option<&'a str>, phase: Option<&'static str>, status: &'static str) -> Self {
        let content = text.map(|text| vec![Part { kind: "output_text", text }]).unwrap_or_default();
        Item { kind: "message", id, role: "assistant", content, phase, status }
    }
}

#[derive(Debug, Serialize)]
struct Resource<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    model: &'a str,
    output: Vec<Item<'a>>,
    usage: Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incomplete_details: Option<Incomplete>,
}

#[derive(Debug, Serialize)]
struct Incomplete {
    reason: &'static str,
}

impl Identity {
    fn resource<'a>(
        &'a self,
        status: &'static str,
        output: Vec<Item<'a>>,
        usage: Usage,
        error: Option<ErrorBody<'a>>,
    ) -> Resource<'a> {
        let incomplete_details = (status == "incomplete").then_some(Incomplete { reason: "max_output_tokens" });
        Resource {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status,
            model: &self.model,
            output,
            usage,
            error,
            incomplete_details,
        }
    }

    /// A `failed` response with no output.
    fn failed<'a>(&'a self, code: &'a str, message: &'a str, usage: Usage) -> Resource<'a> {
        self.resource("failed", Vec::new(), usage, Some(ErrorBody { code, message }))
    }
}

/// `event: <kind>` then `data: {"type":"<kind>"`: the head of every event.
/// Kinds are the renderer's own ASCII names, nothing to escape.
fn head(buf: &mut BytesMut, kind: &str) {
    debug_assert!(kind.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'));
    buf.reserve(2 * kind.len() + 32);
    buf.put_slice(b"event: ");
    buf.put_slice(kind.as_bytes());
    buf.put_slice(b"\ndata: {\"type\":\"");
    buf.put_slice(kind.as_bytes());
    buf.put_slice(b"\"");
}

/// `event: <type>` then `data: {"type":<type>, …fields}`: the bytes serde
/// gives a `{type, #[serde(flatten)] fields}` struct, without its map
/// serialiser: the fields' object is written after the type, its `{`
/// turned into the `,` that joins them.
fn event(buf: &mut BytesMut, kind: &str, fields: impl Serialize) {
    head(buf, kind);
    let at = buf.len();
    serde_json::to_writer(buf.writer(), &fields).expect("events serialise");
    if buf.len() == at + 2 {
        // `{}`: no fields, the type alone.
        buf.truncate(at);
        buf.put_u8(b'}');
    } else {
        debug_assert_eq!(buf[at], b'{');
        buf[at] = b',';
    }
    buf.put_slice(b"\n\n");
}

/// A string as a JSON string.
fn json_str(buf: &mut BytesMut, s: &str) {
    serde_json::to_writer(buf.writer(), s).expect("writing to a buffer cannot fail");
}

#[derive(Serialize)]
struct ItemEvent<'a> {
    output_index: u32,
    item: Item<'a>,
}

#[derive(Serialize)]
struct ResponseEvent<'a> {
    response: Resource<'a>,
}

/// What a text event carries after the item's place: `delta`, `text` or `part`.
#[derive(Clone, Copy)]
enum TextField<'a> {
    Delta(&'a str),
    Text(&'a str),
    Part(&'a str),
}

/// What [`ResponsesSse::open`] reserves: the opening events and a short turn.
const OPEN_RESERVE: usize = 4096;

/// One streamed response.
pub struct ResponsesSse {
    pub id: Identity,
    /// `,"item_id":<id>,"output_index":0,"content_index":0`, built once:
    /// every text event (one per delta) carries it.
    place: Vec<u8>,
}

impl ResponsesSse {
    pub fn new(id: Identity) -> Self {
        let mut place = Vec::with_capacity(48 + id.item_id.len());
        place.extend_from_slice(b",\"item_id\":");
        serde_json::to_writer(&mut place, &id.item_id).expect("string");
        place.extend_from_slice(b",\"output_index\":0,\"content_index\":0");
        ResponsesSse { id, place }
    }

    fn failed(&self, buf: &mut BytesMut, code: &str, message: &str, usage: Usage) {
        event(buf, "response.failed", ResponseEvent { response: self.id.failed(code, message, usage) });
        buf.put_slice(DONE);
    }

    /// `{type, item_id, output_index, content_index, <field>}`, the key order
    /// of the built-in's text events.
    fn text(&self, buf: &mut BytesMut, kind: &str, field: TextField<'_>) {
        let (key, value): (&[u8], &str) = match field {
            TextField::Delta(s) => (b",\"delta\":", s),
            TextField::Text(s) => (b",\"text\":", s),
            TextField::Part(s) => (b",\"part\":{\"type\":\"output_text\",\"text\":", s),
        };
        head(buf, kind);
        buf.reserve(self.place.len() + key.len() + value.len() + 8);
        buf.put_slice(&self.place);
        buf.put_slice(key);
        json_str(buf, value);
        if matches!(field, TextField::Part(_)) {
            buf.put_u8(b'}');
        }
        buf.put_slice(b"}\n\n");
    }
}

impl Render for ResponsesSse {
    /// The built-in finalizes only once the run's result (its usage) is in.
    fn ends_early(&self) -> bool {
        false
    }

    fn open(&mut self, buf: &mut BytesMut) {
        // The opening events are ~1.3 KB; a short turn's whole stream ~3 KB,
        // often one write: one allocation rather than a few reallocations.
        buf.reserve(OPEN_RESERVE);
        let id = &self.id;
        // Both events carry the same `in_progress` response: serialised once.
        let response = id.resource("in_progress", Vec::new(), Usage::default(), None);
        let response = serde_json::to_vec(&response).expect("responses serialise");
        for kind in ["response.created", "response.in_progress"] {
            head(buf, kind);
            buf.reserve(response.len() + 16);
            buf.put_slice(b",\"response\":");
            buf.put_slice(&response);
            buf.put_slice(b"}\n\n");
        }
        let item = Item::message(&id.item_id, None, None, "in_progress");
        event(buf, "response.output_item.added", ItemEvent { output_index: 0, item });
        self.text(buf, "response.content_part.added", TextField::Part(""));
    }

    fn delta(&mut self, buf: &mut BytesMut, text: &str) {
        self.text(buf, "response.output_text.delta", TextField::Delta(text));
    }

    fn end_early(&mut self, _buf: &mut BytesMut, _reason: &'static str) {
        unreachable!("responses never end before the final res")
    }

    fn finish(&mut self, buf: &mut BytesMut, end: Finished<'_>) -> &'static str {
        let f = end.finish;
        let usage = || Usage::from_run(f.usage.as_ref());
        if let Some((code, message)) = thrown(f) {
            self.failed(buf, code, &message, usage());
            return "run_failed";
        }
        count_tokens(f.usage.as_ref(), &self.id.agent);
        let completion = end.text.completion(f.text.as_deref()).ok().filter(|_| end.text.error.is_none());
        let Some(rest) = completion else {
            self.failed(buf, "server_error", crate::turn::text::APPEND_ONLY_ERROR, usage());
            return "run_failed";
        };
        let streamed = end.text.streamed();
        let text = match &rest {
            Some(rest) => {
                self.delta(buf, rest);
                format!("{streamed}{rest}")
            }
            None => streamed.to_string(),
        };
        let failed = end.lifecycle_error.map(|l| l.error.as_deref().map(str::trim).unwrap_or_default());
        let status = match (failed, f.stop_reason.as_deref()) {
            (Some(_), _) => "failed",
            (None, Some("length")) => "incomplete",
            _ => "completed",
        };
        self.text(buf, "response.output_text.done", TextField::Text(&text));
        self.text(buf, "response.content_part.done", TextField::Part(&text));
        let phase = if failed.is_some() { "commentary" } else { "final_answer" };
        let item_status = if status == "incomplete" { "incomplete" } else { "completed" };
        let item = || Item::message(&self.id.item_id, Some(&text), Some(phase), item_status);
        event(buf, "response.output_item.done", ItemEvent { output_index: 0, item: item() });
        let message = failed.filter(|m| !m.is_empty()).unwrap_or("Agent run failed");
        let error = failed.map(|_| ErrorBody { code: "server_error", message });
        let response = self.id.resource(status, vec![item()], usage(), error);
        event(buf, &format!("response.{status}"), ResponseEvent { response });
        buf.put_slice(DONE);
        if failed.is_some() {
            "run_failed"
        } else {
            "ok"
        }
    }

    fn abort(&mut self, buf: &mut BytesMut, message: &str, kind: &str) {
        self.failed(buf, kind, message, Usage::default());
    }
}

/// A run the built-in's `runAgentCommand` would have thrown on (`ok:false`,
/// mapped as chat maps it), or whose result says it failed: `(code, message)`.
fn thrown(f: &Finish) -> Option<(&'static str, String)> {
    if !f.ok {
        return Some(match failure::run_error(f, None) {
            ApiError::RunFailed { kind, message, .. } => (kind, message),
            _ => ("api_error", "internal error".to_string()),
        });
    }
    failure::failed_ok(f).map(|_| ("api_error", "internal error".to_string()))
}

/// The `response` body of a collected turn: `(status, body)`. Failures are
/// `failed` responses with the status the built-in gives them.
pub fn body(done: &Collected, id: &Identity) -> (u16, Vec<u8>) {
    let f = &done.finish;
    let usage = Usage::from_run(f.usage.as_ref());
    let json = |r: &Resource<'_>| serde_json::to_vec(r).expect("responses serialise");
    if !f.ok {
        let (status, code, message) = match failure::run_error(f, done.lifecycle_error.as_ref()) {
            ApiError::RunFailed { status, kind, message } => (status, kind, message),
            _ => (500, "api_error", "internal error".to_string()),
        };
        return (status, json(&id.failed(code, &message, Usage::default())));
    }
    if failure::failed_ok(f).is_some() {
        return (500, json(&id.failed("api_error", "internal error", Usage::default())));
    }
    count_tokens(f.usage.as_ref(), &id.agent);
    let status = if f.stop_reason.as_deref() == Some("length") { "incomplete" } else { "completed" };
    let text = f.text.as_deref().filter(|t| !t.is_empty()).unwrap_or(NO_RESPONSE);
    let item = Item::message(&id.item_id, Some(text), Some("final_answer"), status);
    (200, json(&id.resource(status, vec![item], usage, None)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::text::StreamText;
    use serde_json::Value;

    fn identity() -> Identity {
        Identity {
            id: "resp_1".into(),
            item_id: "msg_1".into(),
            created_at: 7,
            model: "openclaw".into(),
            agent: "main".into(),
        }
    }

    fn events(buf: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(buf).unwrap();
        text.split("\n\n")
            .filter(|e| e.starts_with("event: "))
            .map(|e| {
                let (head, data) = e.split_once('\n').unwrap();
                (head["event: ".len()..].to_string(), serde_json::from_str(&data["data: ".len()..]).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_stream_has_the_builtins_event_sequence() {
        let mut r = ResponsesSse::new(identity());
        let mut buf = BytesMut::new();
        r.open(&mut buf);
        r.delta(&mut buf, "Hel");
        let finish = Finish {
            ok: true,
            status: "ok".into(),
            text: Some("Hello".into()),
            usage: Some(RunUsage { input: 10, output: 3, total: 13, ..Default::default() }),
            ..Default::default()
        };
        let mut text = StreamText::new();
        let data = crate::gateway::AssistantData { delta: Some("Hel".into()), ..Default::default() };
        text.on_event(&data);
        let outcome = r.finish(&mut buf, Finished { finish: &finish, lifecycle_error: None, text: &text });
        assert_eq!(outcome, "ok");
        assert!(buf.ends_with(DONE));
        let got = events(&buf);
        let kinds: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        for (kind, data) in &got {
            assert_eq!(data["type"], kind.as_str());
        }
        // What was streamed is the text (the result text only fills in
        // when nothing was streamed), as `resolveAssistantTextCompletion`.
        assert_eq!(got[5].1["text"], "Hel");
        let done = &got[8].1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hel");
        assert_eq!(done["output"][0]["phase"], "final_answer");
        assert_eq!(done["usage"]["input_tokens"], 10);
        assert_eq!(done["usage"]["total_tokens"], 13);
        assert!(done.get("error").is_none());
        let raw = std::str::from_utf8(&buf).unwrap();
        let added = r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"message","id":"msg_1","role":"assistant","content":[],"status":"in_progress"}}"#;
        assert!(raw.contains(added), "key order as the built-in's: {raw}");
    }

    /// The serde rendering the hand-built events must equal byte for byte:
    /// `{type, #[serde(flatten)] fields}`, as the renderer first wrote them.
    fn reference(kind: &str, fields: impl Serialize) -> Vec<u8> {
        #[derive(Serialize)]
        struct Event<'a, F> {
            #[serde(rename = "type")]
            kind: &'a str,
            #[serde(flatten)]
            fields: F,
        }
        let mut out = format!("event: {kind}\ndata: ").into_bytes();
        serde_json::to_writer(&mut out, &Event { kind, fields }).unwrap();
        out.extend_from_slice(b"\n\n");
        out
    }

    #[derive(Serialize, Default)]
    struct RefText<'a> {
        item_id: &'a str,
        output_index: u32,
        content_index: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        delta: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        part: Option<Part<'a>>,
    }

    #[test]
    fn hand_built_events_equal_the_serde_rendering() {
        let mut id = identity();
        id.item_id = "msg_\"odd\"\u{1}".into();
        let r = ResponsesSse::new(id.clone());
        let item_id = id.item_id.as_str();
        for s in ["", "Hel", "line\n\"q\" \\ é 🦀 \u{7f} \u{0}", "</script>"] {
            let cases: [(&str, TextField<'_>, RefText<'_>); 3] = [
                (
                    "response.output_text.delta",
                    TextField::Delta(s),
                    RefText { item_id, delta: Some(s), ..Default::default() },
                ),
                (
                    "response.output_text.done",
                    TextField::Text(s),
                    RefText { item_id, text: Some(s), ..Default::default() },
                ),
                (
                    "response.content_part.done",
                    TextField::Part(s),
                    RefText { item_id, part: Some(Part { kind: "output_text", text: s }), ..Default::default() },
                ),
            ];
            for (kind, field, want) in cases {
                let mut buf = BytesMut::new();
                r.text(&mut buf, kind, field);
                assert_eq!(std::str::from_utf8(&buf).unwrap(), std::str::from_utf8(&reference(kind, want)).unwrap());
            }
        }
        // The generic path: items and whole responses.
        let item = || Item::message(item_id, Some("a\"b"), Some("final_answer"), "completed");
        let mut buf = BytesMut::new();
        event(&mut buf, "response.output_item.done", ItemEvent { output_index: 0, item: item() });
        assert_eq!(&buf[..], &reference("response.output_item.done", ItemEvent { output_index: 0, item: item() })[..]);
        let response = || id.failed("server_error", "boom \"x\"", Usage::default());
        let mut buf = BytesMut::new();
        event(&mut buf, "response.failed", ResponseEvent { response: response() });
        assert_eq!(&buf[..], &reference("response.failed", ResponseEvent { response: response() })[..]);
        #[derive(Serialize)]
        struct Nothing {}
        let mut buf = BytesMut::new();
        event(&mut buf, "response.x", Nothing {});
        assert_eq!(&buf[..], &reference("response.x", Nothing {})[..]);
        // The opening events.
        let mut r = ResponsesSse::new(id.clone());
        let mut buf = BytesMut::new();
        r.open(&mut buf);
        let mut want = Vec::new();
        for kind in ["response.created", "response.in_progress"] {
            let response = id.resource("in_progress", Vec::new(), Usage::default(), None);
            want.extend(reference(kind, ResponseEvent { response }));
        }
        let item = Item::message(item_id, None, None, "in_progress");
        want.extend(reference("response.output_item.added", ItemEvent { output_index: 0, item }));
        let part = RefText { item_id, part: Some(Part { kind: "output_text", text: "" }), ..Default::default() };
        want.extend(reference("response.content_part.added", part));
        assert_eq!(std::str::from_utf8(&buf).unwrap(), std::str::from_utf8(&want).unwrap());
    }

    #[test]
    fn a_failed_run_is_a_failed_response() {
        let failed = Finish { ok: false, status: "error".into(), ..Default::default() };
        let done = Collected { finish: Box::new(failed), lifecycle_error: None };
        let (status, body) = body(&done, &identity());
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 500);
        assert_eq!(v["status"], "failed");
        assert_eq!(v["error"], serde_json::json!({"code":"api_error","message":"internal error"}));
        assert_eq!(v["output"], serde_json::json!([]));
    }
}
