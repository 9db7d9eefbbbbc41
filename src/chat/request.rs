//! The OpenAI request body: JSON decoding with the gateway's error wording,
//! field validation as the built-in endpoint's schema does it, and the
//! resulting [`ChatTurn`] (domain type) the rest of the route works with.
//! Pure.

use std::borrow::Cow;

use super::body::{Any, Body, BodyFields, Json, Message};
use super::json_error;
use super::prompt::{self, Prompt};
use crate::api::images;
pub use crate::api::route::RouteHeaders;
use crate::api::route::{self, AgentTarget, SessionChoice};
use crate::error::ApiError;
use crate::gateway::{Attachment, ModelOverride};

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
    /// Images of the active user turn, as native attachments.
    pub attachments: Vec<Attachment>,
    /// `x-openclaw-model`.
    pub model_override: Option<ModelOverride>,
}

/// Decodes and validates a request body into a turn.
pub fn parse(body: &[u8], headers: RouteHeaders<'_>) -> Result<ChatTurn, ApiError> {
    // `from_utf8` first: `from_utf8_lossy` checks a valid body ~3x slower.
    let text = std::str::from_utf8(body).map_or_else(|_| String::from_utf8_lossy(body), Cow::Borrowed);
    validate(&decode(&text)?, headers)
}

/// Decodes the body as the gateway does: bytes as UTF-8 (invalid sequences
/// become U+FFFD, done by the caller), JS-trimmed, an empty body is `{}`, and
/// a parse failure is a 400 carrying V8's `JSON.parse` message. The result
/// borrows from `text`.
pub fn decode(text: &str) -> Result<Body<'_>, ApiError> {
    decode_json(text, || Json::Obj(BodyFields::default()))
}

/// Decodes a JSON request body the gateway's way into any type: `empty`
/// stands for an empty body, errors carry V8's `JSON.parse` wording.
pub fn decode_json<'a, T: serde::Deserialize<'a>>(text: &'a str, empty: impl FnOnce() -> T) -> Result<T, ApiError> {
    let text = prompt::js_trim(text);
    if text.is_empty() {
        return Ok(empty());
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
        ApiError::InvalidRequest(message)
    })
}

/// Validates the decoded body into a turn, in the built-in endpoint's order:
/// the schema (first failing field in schema order), token caps, `response_format`,
/// `stop`, sampling ranges, agent, session, tools, images, then the prompt.
pub fn validate(body: &Body<'_>, headers: RouteHeaders<'_>) -> Result<ChatTurn, ApiError> {
    let Json::Obj(obj) = body else {
        return Err(invalid(format!(": Invalid input: expected object, received {}", body.type_name())));
    };
    schema::check(obj)?;
    checks::response_format(obj)?;
    checks::stop(obj)?;
    checks::sampling(obj)?;
    let model = obj.model.as_ref().and_then(Json::as_str);
    let agent = route::agent_target(headers.agent_id, model)?;
    let user = obj.user.as_ref().and_then(Json::as_str);
    let session = route::session_choice("openai", headers.session_key, user)?;
    let model_override = route::model_override(headers.model_override)?;
    checks::tools(obj)?;
    let messages: &[Message] = obj.messages.as_ref().and_then(Json::as_arr).unwrap_or(&[]);
    let (attachments, image_turn) = checks::images(messages)?;
    let prompt = prompt::fold(messages, image_turn);
    if prompt.message.is_empty() {
        return Err(invalid(MISSING_USER_MESSAGE.into()));
    }
    let stream = obj.stream.as_ref().is_some_and(Json::is_true);
    let include_usage = stream
        && obj
            .stream_options
            .as_ref()
            .and_then(Json::as_obj)
            .and_then(|o| o.include_usage.as_ref())
            .is_some_and(Json::is_true);
    Ok(ChatTurn {
        model: model.unwrap_or("openclaw").to_string(),
        stream,
        include_usage,
        agent,
        session,
        prompt,
        channel: message_channel(headers.message_channel),
        attachments,
        model_override,
    })
}

/// `normalizeMessageChannel(header) ?? "webchat"`: a channel id is a
/// lowercase token; anything else falls back to `webchat`.
pub fn message_channel(header: Option<&str>) -> String {
    match header.map(prompt::js_trim).map(str::to_lowercase) {
        Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => c,
        _ => "webchat".to_string(),
    }
}

pub const INVALID_IMAGE: &str = "Invalid image_url content in `messages`.";

fn invalid(message: String) -> ApiError {
    ApiError::InvalidRequest(message)
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

    /// `want` is zod's type name (`string`, `boolean`, `number`, `array`, `object`).
    fn expect<O, E>(field: Option<&Json<'_, O, E>>, path: &str, kind: Kind, want: &str) -> Result<(), ApiError> {
        match (field, kind) {
            (None, _) | (Some(Json::Null), Kind::Nullish) => Ok(()),
            (Some(v), _) if v.type_name() == want => Ok(()),
            (Some(v), _) => Err(invalid(format!("{path}: Invalid input: expected {want}, received {}", v.type_name()))),
        }
    }

    fn positive_int(field: Option<&Any<'_>>, key: &str) -> Result<(), ApiError> {
        expect(field, key, Kind::Nullish, "number")?;
        let Some(n) = field.and_then(Json::as_f64) else {
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

    pub fn check(obj: &BodyFields<'_>) -> Result<(), ApiError> {
        use Kind::*;
        expect(obj.model.as_ref(), "model", Optional, "string")?;
        expect(obj.stream.as_ref(), "stream", Nullish, "boolean")?;
        expect(obj.stream_options.as_ref(), "stream_options", Nullish, "object")?;
        if let Some(Json::Obj(o)) = &obj.stream_options {
            expect(o.include_usage.as_ref(), "stream_options.include_usage", Optional, "boolean")?;
        }
        expect(obj.tools.as_ref(), "tools", Optional, "array")?;
        expect(obj.messages.as_ref(), "messages", Optional, "array")?;
        expect(obj.user.as_ref(), "user", Optional, "string")?;
        positive_int(obj.max_tokens.as_ref(), "max_tokens")?;
        positive_int(obj.max_completion_tokens.as_ref(), "max_completion_tokens")?;
        expect(obj.temperature.as_ref(), "temperature", Nullish, "number")?;
        expect(obj.top_p.as_ref(), "top_p", Nullish, "number")?;
        expect(obj.frequency_penalty.as_ref(), "frequency_penalty", Nullish, "number")?;
        expect(obj.presence_penalty.as_ref(), "presence_penalty", Nullish, "number")?;
        expect(obj.seed.as_ref(), "seed", Nullish, "number")?;
        match &obj.stop {
            None | Some(Json::Null) | Some(Json::Str(_)) => Ok(()),
            Some(Json::Arr(a)) if a.iter().all(|s| s.as_str().is_some()) => Ok(()),
            Some(_) => Err(invalid("stop: Invalid input".into())),
        }
    }
}

/// The checks the built-in runs after the schema.
mod checks {
    use super::*;

    fn present<'v, 'a, O, E>(field: &'v Option<Json<'a, O, E>>) -> Option<&'v Json<'a, O, E>> {
        field.as_ref().filter(|v| !v.is_null())
    }

    pub fn response_format(obj: &BodyFields<'_>) -> Result<(), ApiError> {
        let Some(v) = present(&obj.response_format) else {
            return Ok(());
        };
        let Json::Obj(o) = v else {
            return Err(invalid("Invalid response_format: response_format must be an object".into()));
        };
        match o.kind.as_ref().and_then(Json::as_str) {
            Some("text" | "json_object" | "json_schema") => Ok(()),
            _ => Err(invalid(
                "Invalid response_format: response_format.type must be text, json_object, or json_schema".into(),
            )),
        }
    }

    pub fn stop(obj: &BodyFields<'_>) -> Result<(), ApiError> {
        let stops: Vec<&str> = match present(&obj.stop) {
            Some(Json::Str(s)) => vec![s],
            Some(Json::Arr(a)) => a.iter().filter_map(Json::as_str).collect(),
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
    pub fn sampling(obj: &BodyFields<'_>) -> Result<(), ApiError> {
        for (field, key, min, max, label) in [
            (&obj.temperature, "temperature", 0.0, 2.0, "0 and 2"),
            (&obj.top_p, "top_p", 0.0, 1.0, "0 and 1"),
            (&obj.frequency_penalty, "frequency_penalty", -2.0, 2.0, "-2.0 and 2.0"),
            (&obj.presence_penalty, "presence_penalty", -2.0, 2.0, "-2.0 and 2.0"),
        ] {
            if let Some(n) = present(field).and_then(Json::as_f64) {
                if !(min..=max).contains(&n) {
                    return Err(invalid(format!("`{key}` must be between {label}.")));
                }
            }
        }
        if let Some(n) = present(&obj.seed).and_then(Json::as_f64) {
            if n.fract() != 0.0 {
                return Err(invalid("`seed` must be an integer.".into()));
            }
        }
        Ok(())
    }

    /// Client tools cannot reach the agent over the native protocol: a
    /// non-empty `tools` is refused, never silently dropped. `tool_choice`
    /// without tools is validated as the built-in validates it.
    pub fn tools(obj: &BodyFields<'_>) -> Result<(), ApiError> {
        if obj.tools.as_ref().and_then(Json::as_arr).is_some_and(|t| !t.is_empty()) {
            return Err(ApiError::Inexpressible(TOOLS_UNSUPPORTED));
        }
        let prefix = "Invalid tools/tool_choice: ";
        match &obj.tool_choice {
            None | Some(Json::Null) => Ok(()),
            Some(Json::Str(s)) if s == "auto" || s == "none" => Ok(()),
            Some(Json::Str(s)) if s == "required" => {
                Err(invalid(format!("{prefix}tool_choice=required but no tools were provided")))
            }
            Some(Json::Obj(o)) => match &o.kind {
                Some(Json::Str(t)) if t == "function" => {
                    match o
                        .function
                        .as_ref()
                        .and_then(Json::as_obj)
                        .and_then(|f| f.name.as_ref())
                        .and_then(Json::as_str)
                        .map(super::prompt::js_trim)
                    {
                        Some(name) if !name.is_empty() => {
                            Err(invalid(format!("{prefix}tool_choice requested unknown tool: {name}")))
                        }
                        _ => Err(invalid(format!("{prefix}tool_choice.function.name is required"))),
                    }
                }
                Some(Json::Str(t)) => Err(invalid(format!("{prefix}tool_choice {t} is not supported"))),
                _ => Err(invalid(format!("{prefix}unsupported tool_choice type"))),
            },
            Some(_) => Err(invalid(format!("{prefix}tool_choice must be a string or object"))),
        }
    }

    /// Images of the active user turn (`resolveActiveTurnContext`: the last
    /// user/tool/function message, if it is a user message), as native
    /// attachments, with that message's index. Any problem is the built-in's
    /// one 400; plain URLs need `images.allowUrl` (off by default): invalid.
    pub fn images(messages: &[Message<'_>]) -> Result<(Vec<Attachment>, Option<usize>), ApiError> {
        fn role<'v>(m: &'v Message<'_>) -> Option<&'v str> {
            m.as_obj()?.role.as_ref().and_then(Json::as_str).map(prompt::js_trim)
        }
        let active = messages.iter().rposition(|m| matches!(role(m), Some("user" | "tool" | "function")));
        let Some(index) = active.filter(|&i| role(&messages[i]) == Some("user")) else {
            return Ok((Vec::new(), None));
        };
        let Some(parts) = messages[index].as_obj().and_then(|m| m.content.as_ref()).and_then(Json::as_arr) else {
            return Ok((Vec::new(), None));
        };
        let mut sources = Vec::new();
        for part in parts.iter().filter_map(Json::as_obj) {
            if part.kind.as_ref().and_then(Json::as_str) != Some("image_url") {
                continue;
            }
            let url = match &part.image_url {
                Some(Json::Str(s)) => Some(&**s),
                Some(Json::Obj(o)) => o.url.as_ref().and_then(Json::as_str),
                _ => None,
            }
            .map(prompt::js_trim)
            .filter(|u| !u.is_empty());
            let source = url.ok_or(images::ImageError::Empty).and_then(images::parse_data_url);
            sources.push(source.map_err(bad_image)?);
        }
        let found = !sources.is_empty();
        let attachments = images::attachments(sources.into_iter()).map_err(bad_image)?;
        Ok((attachments, found.then_some(index)))
    }

    fn bad_image(e: images::ImageError) -> ApiError {
        tracing::debug!(reason = %e, "invalid image_url content");
        invalid(INVALID_IMAGE.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use serde_json::Value;

    fn turn(v: Value) -> Result<ChatTurn, ApiError> {
        parse(v.to_string().as_bytes(), RouteHeaders::default())
    }

    fn decode(body: &[u8]) -> Result<(), ApiError> {
        super::decode(&String::from_utf8_lossy(body)).map(drop)
    }

    /// The message of a body parsed as a whole.
    fn parsed(body: &[u8]) -> String {
        msg(parse(body, RouteHeaders::default()))
    }

    fn msg(r: Result<ChatTurn, ApiError>) -> String {
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
        assert_eq!(parsed(b""), MISSING_USER_MESSAGE, "an empty body is {{}}");
        assert_eq!(parsed(b"  \n"), MISSING_USER_MESSAGE);
        assert_eq!(
            decode(b"{x}").unwrap_err().message(),
            "Expected property name or '}' in JSON at position 1 (line 1 column 2)"
        );
        assert_eq!(parsed(b"\xef\xbb\xbf{}"), MISSING_USER_MESSAGE, "a BOM is trimmed, as JS trim does");
        let t = parse(b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", RouteHeaders::default());
        assert_eq!(t.unwrap().prompt.message, "\u{FFFD}", "invalid UTF-8 is replaced");
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
    fn tools_are_refused_and_images_become_attachments() {
        let e = turn(with("tools", json!([{"type":"function","function":{"name":"f"}}]))).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.message(), TOOLS_UNSUPPORTED);
        assert!(turn(with("tools", json!([]))).is_ok());
        assert!(turn(with("tool_choice", json!("auto"))).is_ok());
        assert_eq!(
            msg(turn(with("tool_choice", json!("required")))),
            "Invalid tools/tool_choice: tool_choice=required but no tools were provided"
        );
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        let img = json!({"messages":[{"role":"user","content":[{"type":"text","text":"see"},{"type":"image_url","image_url":format!("data:image/jpeg;base64,{png}")}]}]});
        let t = turn(img).unwrap();
        assert_eq!(t.attachments.len(), 1);
        assert_eq!((t.attachments[0].mime_type.as_str(), t.prompt.message.as_str()), ("image/png", "see"));
        let only = json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":format!("data:image/png;base64,{png}")}}]}]});
        assert_eq!(turn(only).unwrap().prompt.message, "User sent image(s) with no text.");
        let not_base64 =
            json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":"data:image/png,AA"}]}]});
        assert_eq!(msg(turn(not_base64)), INVALID_IMAGE);
        let nine: Vec<Value> =
            (0..9).map(|_| json!({"type":"image_url","image_url":format!("data:image/png;base64,{png}")})).collect();
        assert_eq!(msg(turn(json!({"messages":[{"role":"user","content":nine}]}))), INVALID_IMAGE);
        let url =
            json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]});
        assert_eq!(msg(turn(url)), INVALID_IMAGE, "plain URLs are invalid unless images.allowUrl");
        let older = json!({"messages":[{"role":"user","content":[{"type":"image_url","image_url":"http://x"}]},{"role":"user","content":"now"}]});
        assert!(turn(older).is_ok(), "only the active turn's images count");
    }
}
