//! The OpenAI request body: JSON decoding with the gateway's error wording,
//! field validation as the built-in endpoint's schema does it, and the
//! resulting [`ChatTurn`] (domain type) the rest of the route works with.
//! Pure.

use serde_json::{Map, Value};

use super::json_error;
use super::prompt::{self, Prompt};
use super::route::{self, AgentTarget, SessionChoice};
use crate::error::ChatError;

pub const MISSING_USER_MESSAGE: &str = "Missing user message in `messages`.";
pub const TOOLS_UNSUPPORTED: &str =
    "`tools` are not supported through clawbridge: the gateway's native `agent` method takes no client tools.";

/// A validated request, ready to become an `agent` run.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTurn {
    /// Echoed as `model` in every response: the request's string as sent, or `openclaw`.
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub agent: AgentTarget,
    pub session: SessionChoice,
    pub prompt: Prompt,
    /// The run's source channel (`webchat` unless the header names another).
    pub channel: String,
}

/// Headers the route reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct RouteHeaders<'a> {
    pub agent_id: Option<&'a str>,
    pub session_key: Option<&'a str>,
    /// `x-openclaw-model`: a backend model override the native method cannot carry.
    pub model_override: Option<&'a str>,
    /// `x-openclaw-message-channel`.
    pub message_channel: Option<&'a str>,
}

/// Decodes the body as the gateway does: bytes as UTF-8 (invalid sequences
/// become U+FFFD), JS-trimmed, an empty body is `{}`, and a parse failure is
/// a 400 carrying V8's `JSON.parse` message.
pub fn decode(body: &[u8]) -> Result<Value, ChatError> {
    let text = String::from_utf8_lossy(body);
    let text = prompt::js_trim(&text);
    if text.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_str(text).map_err(|e| {
        let message = json_error::v8_message(text).unwrap_or_else(|| match e.classify() {
            // V8 would accept these; clawbridge bounds nesting depth and
            // number range (see README, deviations).
            serde_json::error::Category::Data | serde_json::error::Category::Syntax => {
                format!("Request body JSON is not supported: {e}")
            }
            _ => "Unexpected end of JSON input".to_string(),
        });
        ChatError::InvalidRequest(message)
    })
}

/// Validates the decoded body into a turn, in the built-in endpoint's order:
/// the schema (first failing field in schema order), token caps, `response_format`,
/// `stop`, sampling ranges, agent, session, tools, images, then the prompt.
pub fn validate(body: &Value, headers: RouteHeaders<'_>) -> Result<ChatTurn, ChatError> {
    let Value::Object(obj) = body else {
        return Err(invalid(format!(": Invalid input: expected object, received {}", type_name(body))));
    };
    schema::check(obj)?;
    checks::response_format(obj)?;
    checks::stop(obj)?;
    checks::sampling(obj)?;
    let model = obj.get("model").and_then(Value::as_str);
    let agent = route::agent_target(headers.agent_id, model)?;
    let user = obj.get("user").and_then(Value::as_str);
    let session = route::session_choice(headers.session_key, user)?;
    if headers.model_override.is_some_and(|m| !m.trim().is_empty()) {
        return Err(invalid(MODEL_OVERRIDE_UNSUPPORTED.into()));
    }
    checks::tools(obj)?;
    let messages: &[Value] = obj.get("messages").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    checks::images(messages)?;
    let prompt = prompt::fold(messages);
    if prompt.message.is_empty() {
        return Err(invalid(MISSING_USER_MESSAGE.into()));
    }
    let stream = obj.get("stream") == Some(&Value::Bool(true));
    let include_usage =
        stream && obj.get("stream_options").and_then(|o| o.get("include_usage")) == Some(&Value::Bool(true));
    Ok(ChatTurn {
        model: model.unwrap_or("openclaw").to_string(),
        stream,
        include_usage,
        agent,
        session,
        prompt,
        channel: message_channel(headers.message_channel),
    })
}

/// `normalizeMessageChannel(header) ?? "webchat"`: a channel id is a
/// lowercase token; anything else falls back to `webchat`.
fn message_channel(header: Option<&str>) -> String {
    match header.map(prompt::js_trim).map(str::to_lowercase) {
        Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => c,
        _ => "webchat".to_string(),
    }
}

pub const MODEL_OVERRIDE_UNSUPPORTED: &str =
    "`x-openclaw-model` is not supported through clawbridge: the gateway's native `agent` method does not take a model override from this client.";
pub const INVALID_IMAGE: &str = "Invalid image_url content in `messages`.";
pub const IMAGES_UNSUPPORTED: &str =
    "`image_url` content is not supported through clawbridge yet; send text parts only.";

fn invalid(message: String) -> ChatError {
    ChatError::InvalidRequest(message)
}

/// zod's name for a JSON value's type.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The built-in's zod schema (zod 4): one message, for the first failing
/// field in schema key order, formatted `"<path>: <zod message>"`.
mod schema {
    use super::*;

    /// Largest integer zod's `.int()` accepts (`Number.MAX_SAFE_INTEGER`).
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

    #[derive(Clone, Copy)]
    enum Kind {
        /// `optional()`: absent is fine, `null` is not.
        Optional,
        /// `nullish()`: absent and `null` both mean "not set".
        Nullish,
    }

    fn expect(
        obj: &Map<String, Value>,
        path: &str,
        kind: Kind,
        want: &str,
        ok: fn(&Value) -> bool,
    ) -> Result<(), ChatError> {
        let key = path.rsplit('.').next().unwrap_or(path);
        match (obj.get(key), kind) {
            (None, _) | (Some(Value::Null), Kind::Nullish) => Ok(()),
            (Some(v), _) if ok(v) => Ok(()),
            (Some(v), _) => Err(invalid(format!("{path}: Invalid input: expected {want}, received {}", type_name(v)))),
        }
    }

    fn positive_int(obj: &Map<String, Value>, key: &str) -> Result<(), ChatError> {
        expect(obj, key, Kind::Nullish, "number", Value::is_number)?;
        let Some(n) = obj.get(key).and_then(Value::as_f64) else {
            return Ok(());
        };
        if n.fract() != 0.0 {
            return Err(invalid(format!("{key}: Invalid input: expected int, received number")));
        }
        if n > MAX_SAFE_INTEGER {
            return Err(invalid(format!("{key}: Too big: expected int to be <=9007199254740991")));
        }
        if n <= 0.0 {
            return Err(invalid(format!("{key}: Too small: expected number to be >0")));
        }
        Ok(())
    }

    pub fn check(obj: &Map<String, Value>) -> Result<(), ChatError> {
        use Kind::*;
        expect(obj, "model", Optional, "string", Value::is_string)?;
        expect(obj, "stream", Nullish, "boolean", Value::is_boolean)?;
        expect(obj, "stream_options", Nullish, "object", Value::is_object)?;
        if let Some(Value::Object(o)) = obj.get("stream_options") {
            expect(o, "stream_options.include_usage", Optional, "boolean", Value::is_boolean)?;
        }
        expect(obj, "tools", Optional, "array", Value::is_array)?;
        expect(obj, "messages", Optional, "array", Value::is_array)?;
        expect(obj, "user", Optional, "string", Value::is_string)?;
        positive_int(obj, "max_tokens")?;
        positive_int(obj, "max_completion_tokens")?;
        expect(obj, "temperature", Nullish, "number", Value::is_number)?;
        expect(obj, "top_p", Nullish, "number", Value::is_number)?;
        expect(obj, "frequency_penalty", Nullish, "number", Value::is_number)?;
        expect(obj, "presence_penalty", Nullish, "number", Value::is_number)?;
        expect(obj, "seed", Nullish, "number", Value::is_number)?;
        match obj.get("stop") {
            None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(()),
            Some(_) => Err(invalid("stop: Invalid input".into())),
        }
    }
}

/// The checks the built-in runs after the schema.
mod checks {
    use super::*;

    fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
        obj.get(key).filter(|v| !v.is_null())
    }

    pub fn response_format(obj: &Map<String, Value>) -> Result<(), ChatError> {
        let Some(v) = present(obj, "response_format") else {
            return Ok(());
        };
        let Value::Object(o) = v else {
            return Err(invalid("Invalid response_format: response_format must be an object".into()));
        };
        match o.get("type").and_then(Value::as_str) {
            Some("text" | "json_object" | "json_schema") => Ok(()),
            _ => Err(invalid(
                "Invalid response_format: response_format.type must be text, json_object, or json_schema".into(),
            )),
        }
    }

    pub fn stop(obj: &Map<String, Value>) -> Result<(), ChatError> {
        let stops: Vec<&str> = match present(obj, "stop") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => return Ok(()),
        };
        if stops.len() > 4 {
            return Err(invalid("Invalid stop: stop supports at most 4 sequences".into()));
        }
        if stops.iter().any(|s| s.is_empty()) {
            return Err(invalid("Invalid stop: stop entries must be non-empty strings".into()));
        }
        Ok(())
    }

    /// `validateOpenAiSamplingParams`; bounds are inclusive. The native
    /// `agent` method takes none of these, so they are validated identically
    /// and then not forwarded (see README).
    pub fn sampling(obj: &Map<String, Value>) -> Result<(), ChatError> {
        for (key, min, max, label) in [
            ("temperature", 0.0, 2.0, "0 and 2"),
            ("top_p", 0.0, 1.0, "0 and 1"),
            ("frequency_penalty", -2.0, 2.0, "-2.0 and 2.0"),
            ("presence_penalty", -2.0, 2.0, "-2.0 and 2.0"),
        ] {
            if let Some(n) = present(obj, key).and_then(Value::as_f64) {
                if !(min..=max).contains(&n) {
                    return Err(invalid(format!("`{key}` must be between {label}.")));
                }
            }
        }
        if let Some(n) = present(obj, "seed").and_then(Value::as_f64) {
            if n.fract() != 0.0 {
                return Err(invalid("`seed` must be an integer.".into()));
            }
        }
        Ok(())
    }

    /// Client tools cannot reach the agent over the native protocol: a
    /// non-empty `tools` is refused, never silently dropped. `tool_choice`
    /// without tools is validated as the built-in validates it.
    pub fn tools(obj: &Map<String, Value>) -> Result<(), ChatError> {
        if obj.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty()) {
            return Err(invalid(TOOLS_UNSUPPORTED.into()));
        }
        let prefix = "Invalid tools/tool_choice: ";
        match obj.get("tool_choice") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(s)) if s == "auto" || s == "none" => Ok(()),
            Some(Value::String(s)) if s == "required" => {
                Err(invalid(format!("{prefix}tool_choice=required but no tools were provided")))
            }
            Some(Value::Object(o)) => match o.get("type") {
                Some(Value::String(t)) if t == "function" => {
                    match o
                        .get("function")
                        .and_then(|f| f.get("name"))
                        .and_then(Value::as_str)
                        .map(super::prompt::js_trim)
                    {
                        Some(name) if !name.is_empty() => {
                            Err(invalid(format!("{prefix}tool_choice requested unknown tool: {name}")))
                        }
                        _ => Err(invalid(format!("{prefix}tool_choice.function.name is required"))),
                    }
                }
                Some(Value::String(t)) => Err(invalid(format!("{prefix}tool_choice {t} is not supported"))),
                _ => Err(invalid(format!("{prefix}unsupported tool_choice type"))),
            },
            Some(_) => Err(invalid(format!("{prefix}tool_choice must be a string or object"))),
        }
    }

    /// Images of the active user turn (`resolveActiveTurnContext`: the last
    /// user/tool/function message, if it is a user message). Invalid ones get
    /// the built-in's 400; valid `data:` images are refused clearly instead
    /// of being dropped, as the native method takes no image content here.
    pub fn images(messages: &[Value]) -> Result<(), ChatError> {
        fn role(m: &Value) -> Option<&str> {
            m.get("role").and_then(Value::as_str).map(prompt::js_trim)
        }
        let active = messages.iter().rev().find(|m| matches!(role(m), Some("user" | "tool" | "function")));
        let Some(active) = active.filter(|m| role(m) == Some("user")) else {
            return Ok(());
        };
        let Some(parts) = active.get("content").and_then(Value::as_array) else {
            return Ok(());
        };
        let mut any = false;
        for part in parts.iter().filter(|p| p.get("type").and_then(Value::as_str) == Some("image_url")) {
            let url = match part.get("image_url") {
                Some(Value::String(s)) => Some(s.as_str()),
                Some(Value::Object(o)) => o.get("url").and_then(Value::as_str),
                _ => None,
            }
            .map(prompt::js_trim)
            .filter(|u| !u.is_empty());
            // Plain URLs need `images.allowUrl` (off by default): invalid here.
            if !url.is_some_and(valid_data_url) {
                return Err(invalid(INVALID_IMAGE.into()));
            }
            any = true;
        }
        if any {
            return Err(invalid(IMAGES_UNSUPPORTED.into()));
        }
        Ok(())
    }

    /// `data:<mime>;base64,<payload>` with a non-empty payload.
    fn valid_data_url(url: &str) -> bool {
        let Some(rest) = url.strip_prefix("data:") else {
            return false;
        };
        let Some((meta, payload)) = rest.split_once(',') else {
            return false;
        };
        meta.split(';').any(|p| p.eq_ignore_ascii_case("base64")) && !payload.trim().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn turn(v: Value) -> Result<ChatTurn, ChatError> {
        validate(&v, RouteHeaders::default())
    }

    fn msg(r: Result<ChatTurn, ChatError>) -> String {
        r.unwrap_err().message().to_string()
    }

    fn with(field: &str, v: Value) -> Value {
        let mut body = json!({"messages":[{"role":"user","content":"hi"}]});
        body[field] = v;
        body
    }

    #[test]
    fn bad_json_messages_follow_v8() {
        assert_eq!(
            decode(br#"{"model":"openclaw","messages":["#).unwrap_err().message(),
            "Unexpected end of JSON input"
        );
        assert_eq!(decode(b"").unwrap(), json!({}));
        assert_eq!(decode(b"  \n").unwrap(), json!({}));
        assert_eq!(
            decode(b"{x}").unwrap_err().message(),
            "Expected property name or '}' in JSON at position 1 (line 1 column 2)"
        );
        assert_eq!(decode(b"\xef\xbb\xbf{}").unwrap(), json!({}), "a BOM is trimmed, as JS trim does");
        assert_eq!(decode(b"{\"a\":\"\xff\"}").unwrap(), json!({"a": "\u{FFFD}"}), "invalid UTF-8 is replaced");
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(decode(deep.as_bytes()).unwrap_err().status(), 400);
    }

    #[test]
    fn minimal_turn() {
        let t = turn(json!({"messages":[{"role":"user","content":"hi"}]})).unwrap();
        assert_eq!(t.model, "openclaw");
        assert!(!t.stream && !t.include_usage);
        assert_eq!(t.agent, AgentTarget::Default);
        assert_eq!(t.prompt.message, "hi");
        let t = turn(json!({"model":"openclaw/main","stream":true,"stream_options":{"include_usage":true},
            "messages":[{"role":"user","content":"hi"}]}))
        .unwrap();
        assert_eq!(t.model, "openclaw/main");
        assert!(t.stream && t.include_usage);
        let t =
            turn(json!({"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]})).unwrap();
        assert!(!t.include_usage, "usage chunk only when streaming");
    }

    #[test]
    fn schema_messages_match_zod() {
        assert_eq!(msg(turn(json!([]))), ": Invalid input: expected object, received array");
        assert_eq!(msg(turn(json!(null))), ": Invalid input: expected object, received null");
        assert_eq!(msg(turn(with("model", json!(5)))), "model: Invalid input: expected string, received number");
        assert_eq!(msg(turn(with("model", json!(null)))), "model: Invalid input: expected string, received null");
        assert!(turn(with("stream", json!(null))).is_ok());
        assert_eq!(
            msg(turn(with("stream", json!("true")))),
            "stream: Invalid input: expected boolean, received string"
        );
        assert_eq!(
            msg(turn(with("stream_options", json!([])))),
            "stream_options: Invalid input: expected object, received array"
        );
        assert_eq!(
            msg(turn(with("stream_options", json!({"include_usage":null})))),
            "stream_options.include_usage: Invalid input: expected boolean, received null"
        );
        assert_eq!(msg(turn(json!({"messages":{}}))), "messages: Invalid input: expected array, received object");
        assert_eq!(msg(turn(with("user", json!(5)))), "user: Invalid input: expected string, received number");
        assert_eq!(msg(turn(with("max_tokens", json!(0)))), "max_tokens: Too small: expected number to be >0");
        assert_eq!(
            msg(turn(with("max_tokens", json!(1.5)))),
            "max_tokens: Invalid input: expected int, received number"
        );
        assert_eq!(
            msg(turn(with("max_tokens", json!("5")))),
            "max_tokens: Invalid input: expected number, received string"
        );
        assert_eq!(
            msg(turn(with("max_tokens", json!(1e300)))),
            "max_tokens: Too big: expected int to be <=9007199254740991"
        );
        assert_eq!(
            msg(turn(with("temperature", json!("1")))),
            "temperature: Invalid input: expected number, received string"
        );
        assert_eq!(msg(turn(with("stop", json!([1])))), "stop: Invalid input");
        // First failing field in schema order, not body order.
        assert_eq!(msg(turn(json!({"stop":5,"model":5}))), "model: Invalid input: expected string, received number");
    }

    #[test]
    fn post_schema_messages() {
        assert_eq!(msg(turn(json!({}))), MISSING_USER_MESSAGE);
        assert_eq!(msg(turn(json!({"messages":[]}))), MISSING_USER_MESSAGE);
        assert_eq!(msg(turn(json!({"messages":[{"role":"system","content":"be brief"}]}))), MISSING_USER_MESSAGE);
        assert_eq!(msg(turn(with("temperature", json!(5)))), "`temperature` must be between 0 and 2.");
        assert_eq!(msg(turn(with("presence_penalty", json!(-3)))), "`presence_penalty` must be between -2.0 and 2.0.");
        assert_eq!(msg(turn(with("seed", json!(1.5)))), "`seed` must be an integer.");
        assert_eq!(
            msg(turn(with("stop", json!(["a", "b", "c", "d", "e"])))),
            "Invalid stop: stop supports at most 4 sequences"
        );
        assert_eq!(msg(turn(with("stop", json!("")))), "Invalid stop: stop entries must be non-empty strings");
        assert_eq!(
            msg(turn(with("response_format", json!({"type":"xml"})))),
            "Invalid response_format: response_format.type must be text, json_object, or json_schema"
        );
        assert_eq!(msg(turn(with("model", json!("gpt-4o")))), route::INVALID_MODEL);
        assert!(turn(with("temperature", json!(2))).is_ok(), "bounds are inclusive");
    }

    #[test]
    fn tools_and_images_are_refused_not_dropped() {
        let e = turn(with("tools", json!([{"type":"function","function":{"name":"f"}}]))).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.message(), TOOLS_UNSUPPORTED);
        assert!(turn(with("tools", json!([]))).is_ok());
        assert!(turn(with("tool_choice", json!("auto"))).is_ok());
        assert_eq!(
            msg(turn(with("tool_choice", json!("required")))),
            "Invalid tools/tool_choice: tool_choice=required but no tools were provided"
        );
        let img = json!({"messages":[{"role":"user","content":[{"type":"text","text":"see"},{"type":"image_url","image_url":"data:image/png;base64,AA"}]}]});
        assert_eq!(msg(turn(img)), IMAGES_UNSUPPORTED);
        let url =
            json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]});
        assert_eq!(msg(turn(url)), INVALID_IMAGE, "plain URLs are invalid unless images.allowUrl");
        let older = json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":"http://x"}]},{"role":"user","content":"now"}]});
        assert!(turn(older).is_ok(), "only the active turn's images count");
    }
}
