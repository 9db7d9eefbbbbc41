//! The `POST /v1/responses` body as the built-in validates it: its strict
//! zod schema (`CreateResponseBodySchema`, 2026.9.6), with zod's first
//! issue as the 400 message, then the input folded into one prompt as
//! `buildAgentPrompt` folds it. Pure.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::api::route::{self, AgentTarget, RouteHeaders, SessionChoice};
use crate::chat::prompt::{conversation_message, js_trim, Entry, Role};
use crate::error::ApiError;

pub const MISSING_USER_MESSAGE: &str = "Missing user message in `input`.";
const IMAGE_ONLY_USER_MESSAGE: &str = "User sent image(s) with no text.";
const FILE_ONLY_USER_MESSAGE: &str = "User sent file(s) with no text.";
pub const TOOLS_UNSUPPORTED: &str =
    "`tools` are not supported through clawbridge: the gateway's native `agent` method takes no client tools.";
/// What a remote `input_image` gets when it cannot be handed on: the
/// built-in's answer when its own fetch fails.
pub const REMOTE_IMAGE: &str = "invalid request";
pub const FILES_UNSUPPORTED: &str =
    "`input_file` content is not supported through clawbridge: the native `agent` method takes no files; send text or images.";

/// A validated responses request, ready to become a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesTurn {
    /// Echoed in every response, as sent.
    pub model: String,
    pub stream: bool,
    pub agent: AgentTarget,
    pub session: SessionChoice,
    pub previous_response_id: Option<String>,
    pub message: String,
    pub extra_system_prompt: Option<String>,
    pub channel: String,
    pub attachments: Vec<crate::gateway::Attachment>,
    pub model_override: Option<crate::gateway::ModelOverride>,
}

/// Decodes and validates a body into a turn, in the built-in's order.
pub fn parse(body: &[u8], headers: RouteHeaders<'_>) -> Result<ResponsesTurn, ApiError> {
    let text = std::str::from_utf8(body).map_or_else(|_| String::from_utf8_lossy(body), Cow::Borrowed);
    let value: Value = crate::chat::request::decode_json(&text, || Value::Object(Map::new()))?;
    let obj = schema::check(&value)?;
    let model = obj.get("model").and_then(Value::as_str).unwrap_or_default();
    let agent = route::agent_target(headers.agent_id, Some(model))?;
    let model_override = route::model_override(headers.model_override)?;
    let input = &obj["input"];
    if input.as_array().is_some_and(|items| items.iter().any(has_file)) {
        return Err(ApiError::Inexpressible(FILES_UNSUPPORTED));
    }
    if obj.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::Inexpressible(TOOLS_UNSUPPORTED));
    }
    let user = obj.get("user").and_then(Value::as_str);
    let session = route::session_choice("openresponses", headers.session_key, user)?;
    let (message, system, active) = fold(input);
    let attachments = images(input.as_array().map_or(&[][..], Vec::as_slice), active)?;
    let instructions = obj.get("instructions").and_then(Value::as_str).filter(|s| !s.is_empty());
    let extra: Vec<&str> = [instructions, system.as_deref()].into_iter().flatten().collect();
    if message.is_empty() {
        return Err(ApiError::InvalidRequest(MISSING_USER_MESSAGE.into()));
    }
    Ok(ResponsesTurn {
        model: model.to_string(),
        stream: obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        agent,
        session,
        previous_response_id: obj.get("previous_response_id").and_then(Value::as_str).map(str::to_string),
        message,
        extra_system_prompt: (!extra.is_empty()).then(|| extra.join("\n\n")),
        channel: crate::chat::request::message_channel(headers.message_channel),
        attachments,
        model_override,
    })
}

fn has_file(item: &Value) -> bool {
    item["content"].as_array().is_some_and(|parts| parts.iter().any(|p| p["type"] == "input_file"))
}

/// The `input_image`s of the active user message, as attachments. Any
/// problem is the built-in's `invalid request`; remote URLs are never
/// fetched (answered as the built-in answers a fetch that fails).
fn images(items: &[Value], active: Option<usize>) -> Result<Vec<crate::gateway::Attachment>, ApiError> {
    let refuse = |e: crate::api::images::ImageError| {
        tracing::debug!(reason = %e, "invalid input_image");
        ApiError::InvalidRequest("invalid request".into())
    };
    let Some(parts) = active.and_then(|i| items[i]["content"].as_array()) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for source in parts.iter().filter(|p| p["type"] == "input_image").map(|p| &p["source"]) {
        if source["type"] != "base64" {
            // The built-in fetches it (and answers `invalid request` when
            // its fetch fails); clawbridge fetches nothing.
            return Err(ApiError::Inexpressible(REMOTE_IMAGE));
        }
        let data = source["data"].as_str().unwrap_or_default();
        out.push(crate::api::images::attachment(source["media_type"].as_str(), data).map_err(refuse)?);
    }
    Ok(out)
}

/// `buildAgentPrompt`: the user message, the system text of `input`, and
/// the index of the active user message.
fn fold(input: &Value) -> (String, Option<String>, Option<usize>) {
    let items = match input {
        Value::String(s) => return (s.clone(), None, None),
        Value::Array(items) => items,
        _ => return (String::new(), None, None),
    };
    // A tool result starts its own turn: no earlier user message is active.
    let active = items
        .iter()
        .rposition(|i| i["type"] == "function_call_output" || (i["type"] == "message" && i["role"] == "user"))
        .filter(|&i| items[i]["type"] == "message");
    let mut system = Vec::new();
    let mut entries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let str_of = |k: &str| item[k].as_str().unwrap_or_default();
        match str_of("type") {
            "message" => {
                let text = content_text(&item["content"]);
                let mut body = js_trim(&text).to_string();
                if body.is_empty() && Some(i) == active {
                    body = placeholder(&item["content"]).to_string();
                }
                if body.is_empty() {
                    continue;
                }
                match str_of("role") {
                    "system" | "developer" => system.push(body),
                    "assistant" => entries.push(entry(Role::Assistant, "Assistant".into(), body)),
                    _ => entries.push(entry(Role::User, "User".into(), body)),
                }
            }
            "function_call" => {
                let id = item["call_id"].as_str().or(item["id"].as_str()).unwrap_or_default();
                let body = format!("tool_call id={id} name={} arguments={}", str_of("name"), str_of("arguments"));
                entries.push(entry(Role::Assistant, "Assistant".into(), body));
            }
            "function_call_output" => {
                entries.push(entry(Role::Tool, format!("Tool:{}", str_of("call_id")), str_of("output").to_string()));
            }
            _ => {}
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    (conversation_message(&entries), system, active)
}

fn entry(role: Role, sender: String, body: String) -> Entry<'static> {
    Entry { role, sender: Cow::Owned(sender), body: Cow::Owned(body) }
}

/// `extractTextContent`: a string as is, else the text parts joined by `\n`.
fn content_text(content: &Value) -> Cow<'_, str> {
    match content {
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(parts) => Cow::Owned(
            parts
                .iter()
                .filter(|p| matches!(p["type"].as_str(), Some("input_text" | "output_text")))
                .filter_map(|p| p["text"].as_str())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => Cow::Borrowed(""),
    }
}

fn placeholder(content: &Value) -> &'static str {
    let has = |kind: &str| content.as_array().is_some_and(|parts| parts.iter().any(|p| p["type"] == kind));
    if has("input_image") {
        IMAGE_ONLY_USER_MESSAGE
    } else if has("input_file") {
        FILE_ONLY_USER_MESSAGE
    } else {
        ""
    }
}

/// zod 4 on `CreateResponseBodySchema`: keys in schema order, then unknown
/// keys (`.strict()`); the first issue is `"<path>: <message>"`.
mod schema {
    use super::*;

    fn invalid(path: &str, message: String) -> ApiError {
        ApiError::InvalidRequest(format!("{path}: {message}"))
    }

    /// zod's name for a value's type in "received …".
    fn received(v: Option<&Value>) -> &'static str {
        match v {
            None => "undefined",
            Some(Value::Null) => "null",
            Some(Value::Bool(_)) => "boolean",
            Some(Value::Number(_)) => "number",
            Some(Value::String(_)) => "string",
            Some(Value::Array(_)) => "array",
            Some(Value::Object(_)) => "object",
        }
    }

    fn expected(path: &str, want: &str, v: Option<&Value>) -> ApiError {
        invalid(path, format!("Invalid input: expected {want}, received {}", received(v)))
    }

    fn optional(obj: &Map<String, Value>, key: &str, want: &str, ok: impl Fn(&Value) -> bool) -> Result<(), ApiError> {
        match obj.get(key) {
            None => Ok(()),
            Some(v) if ok(v) => Ok(()),
            v => Err(expected(key, want, v)),
        }
    }

    fn number_in(obj: &Map<String, Value>, key: &str, min: f64, max: f64) -> Result<(), ApiError> {
        optional(obj, key, "number", Value::is_number)?;
        let Some(n) = obj.get(key).and_then(Value::as_f64) else { return Ok(()) };
        if n < min {
            return Err(invalid(key, format!("Too small: expected number to be >={min}")));
        }
        if n > max {
            return Err(invalid(key, format!("Too big: expected number to be <={max}")));
        }
        Ok(())
    }

    fn positive_int(obj: &Map<String, Value>, key: &str) -> Result<(), ApiError> {
        optional(obj, key, "number", Value::is_number)?;
        let Some(n) = obj.get(key).and_then(Value::as_f64) else { return Ok(()) };
        if n.fract() != 0.0 {
            return Err(invalid(key, "Invalid input: expected int, received number".into()));
        }
        if n > 9_007_199_254_740_991.0 {
            return Err(invalid(key, "Too big: expected int to be <=9007199254740991".into()));
        }
        if n <= 0.0 {
            return Err(invalid(key, "Too small: expected number to be >0".into()));
        }
        Ok(())
    }

    fn one_of(obj: &Map<String, Value>, key: &str, options: &[&str]) -> Result<(), ApiError> {
        match obj.get(key) {
            None => Ok(()),
            Some(Value::String(s)) if options.contains(&s.as_str()) => Ok(()),
            Some(_) => {
                let list = options.iter().map(|o| format!("\"{o}\"")).collect::<Vec<_>>().join("|");
                Err(invalid(key, format!("Invalid option: expected one of {list}")))
            }
        }
    }

    const KEYS: [&str; 17] = [
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "stream",
        "max_output_tokens",
        "max_tool_calls",
        "user",
        "temperature",
        "top_p",
        "metadata",
        "store",
        "previous_response_id",
        "reasoning",
        "truncation",
    ];

    pub fn check(value: &Value) -> Result<&Map<String, Value>, ApiError> {
        let Value::Object(obj) = value else {
            return Err(expected("", "object", Some(value)));
        };
        match obj.get("model") {
            Some(Value::String(_)) => {}
            v => return Err(expected("model", "string", v)),
        }
        match obj.get("input") {
            Some(Value::String(_)) => {}
            Some(Value::Array(items)) if items.iter().all(items::valid) => {
                // A refinement that failed on an otherwise valid item is not
                // folded into the union's "Invalid input": zod reports it.
                if let Some(i) = items.iter().position(items::phase_off_assistant) {
                    return Err(invalid(
                        &format!("input.{i}.phase"),
                        "`phase` is only valid on assistant messages.".into(),
                    ));
                }
            }
            _ => return Err(invalid("input", "Invalid input".into())),
        }
        optional(obj, "instructions", "string", Value::is_string)?;
        optional(obj, "tools", "array", Value::is_array)?;
        if let Some(Value::Array(tools)) = obj.get("tools") {
            for (i, tool) in tools.iter().enumerate() {
                items::tool(tool, i)?;
            }
        }
        if obj.get("tool_choice").is_some_and(|c| !items::tool_choice(c)) {
            return Err(invalid("tool_choice", "Invalid input".into()));
        }
        items::text(obj.get("text"))?;
        optional(obj, "stream", "boolean", Value::is_boolean)?;
        positive_int(obj, "max_output_tokens")?;
        positive_int(obj, "max_tool_calls")?;
        optional(obj, "user", "string", Value::is_string)?;
        number_in(obj, "temperature", 0.0, 2.0)?;
        number_in(obj, "top_p", 0.0, 1.0)?;
        match obj.get("metadata") {
            None => {}
            Some(Value::Object(m)) => {
                if let Some((k, v)) = m.iter().find(|(_, v)| !v.is_string()) {
                    return Err(expected(&format!("metadata.{k}"), "string", Some(v)));
                }
            }
            v => return Err(expected("metadata", "record", v)),
        }
        optional(obj, "store", "boolean", Value::is_boolean)?;
        optional(obj, "previous_response_id", "string", Value::is_string)?;
        match obj.get("reasoning") {
            None => {}
            Some(Value::Object(r)) => {
                one_of(r, "effort", &["low", "medium", "high"]).map_err(|e| prefixed("reasoning", e))?;
                one_of(r, "summary", &["auto", "concise", "detailed"]).map_err(|e| prefixed("reasoning", e))?;
            }
            v => return Err(expected("reasoning", "object", v)),
        }
        one_of(obj, "truncation", &["auto", "disabled"])?;
        let unknown: Vec<String> =
            obj.keys().filter(|k| !KEYS.contains(&k.as_str())).map(|k| format!("\"{k}\"")).collect();
        match unknown.len() {
            0 => Ok(obj),
            1 => Err(invalid("", format!("Unrecognized key: {}", unknown[0]))),
            _ => Err(invalid("", format!("Unrecognized keys: {}", unknown.join(", ")))),
        }
    }

    /// A nested object's issue, its path under `parent`.
    fn prefixed(parent: &str, e: ApiError) -> ApiError {
        ApiError::InvalidRequest(format!("{parent}.{}", e.message()))
    }

    /// The item and part schemas. Inside `input` zod reports only the
    /// union's "Invalid input", so these answer yes or no.
    mod items {
        use super::*;

        /// Exactly these keys may be present (`.strict()`), `required` must be.
        fn keys(o: &Map<String, Value>, required: &[&str], optional: &[&str]) -> bool {
            required.iter().all(|k| o.contains_key(*k))
                && o.keys().all(|k| required.contains(&k.as_str()) || optional.contains(&k.as_str()))
        }

        fn str_or_absent(o: &Map<String, Value>, key: &str) -> bool {
            o.get(key).is_none_or(Value::is_string)
        }

        fn status_ok(o: &Map<String, Value>) -> bool {
            o.get("status").is_none_or(|s| matches!(s.as_str(), Some("in_progress" | "completed" | "incomplete")))
        }

        pub fn valid(item: &Value) -> bool {
            let Some(o) = item.as_object() else { return false };
            match o.get("type").and_then(Value::as_str) {
                Some("message") => {
                    let role = o.get("role").and_then(Value::as_str);
                    keys(o, &["type", "role", "content"], &["id", "phase", "status"])
                        && str_or_absent(o, "id")
                        && matches!(role, Some("system" | "developer" | "user" | "assistant"))
                        && match &o["content"] {
                            Value::String(_) => true,
                            Value::Array(parts) => parts.iter().all(part),
                            _ => false,
                        }
                        && o.get("phase").is_none_or(|p| matches!(p.as_str(), Some("commentary" | "final_answer")))
                        && status_ok(o)
                }
                Some("function_call") => {
                    keys(o, &["type", "name", "arguments"], &["id", "call_id", "status"])
                        && ["id", "call_id", "name", "arguments"].iter().all(|k| str_or_absent(o, k))
                        && status_ok(o)
                }
                Some("function_call_output") => {
                    keys(o, &["type", "call_id", "output"], &[]) && o["call_id"].is_string() && o["output"].is_string()
                }
                Some("reasoning") => {
                    keys(o, &["type"], &["content", "encrypted_content", "summary"])
                        && ["content", "encrypted_content", "summary"].iter().all(|k| str_or_absent(o, k))
                }
                Some("item_reference") => keys(o, &["type", "id"], &[]) && o["id"].is_string(),
                _ => false,
            }
        }

        /// `.refine(phase === undefined || role === "assistant")`.
        pub fn phase_off_assistant(item: &Value) -> bool {
            item["type"] == "message" && item.get("phase").is_some() && item["role"] != "assistant"
        }

        fn part(p: &Value) -> bool {
            let Some(o) = p.as_object() else { return false };
            match o.get("type").and_then(Value::as_str) {
                Some("input_text" | "output_text") => keys(o, &["type", "text"], &[]) && o["text"].is_string(),
                Some("input_image") => keys(o, &["type", "source"], &[]) && source(&o["source"], true),
                Some("input_file") => keys(o, &["type", "source"], &[]) && source(&o["source"], false),
                _ => false,
            }
        }

        const IMAGE_TYPES: [&str; 6] =
            ["image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif"];

        fn source(s: &Value, image: bool) -> bool {
            let Some(o) = s.as_object() else { return false };
            let nonempty = |k: &str| o.get(k).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
            match o.get("type").and_then(Value::as_str) {
                Some("url") => o.get("url").and_then(Value::as_str).is_some_and(|u| url::Url::parse(u).is_ok()),
                Some("base64") => {
                    let media = o.get("media_type").and_then(Value::as_str);
                    nonempty("data")
                        && if image {
                            media.is_some_and(|m| IMAGE_TYPES.contains(&m))
                        } else {
                            media.is_some_and(|m| !m.is_empty()) && str_or_absent(o, "filename")
                        }
                }
                _ => false,
            }
        }

        pub fn tool(t: &Value, i: usize) -> Result<(), ApiError> {
            let path = format!("tools.{i}");
            let Some(o) = t.as_object() else { return Err(expected(&path, "object", Some(t))) };
            if o.get("type").and_then(Value::as_str) != Some("function") {
                return Err(invalid(&format!("{path}.type"), "Invalid input: expected \"function\"".into()));
            }
            match o.get("name") {
                Some(Value::String(n)) if !n.is_empty() => Ok(()),
                Some(Value::String(_)) => Err(invalid(&format!("{path}.name"), "Tool name cannot be empty".into())),
                v => Err(expected(&format!("{path}.name"), "string", v)),
            }
        }

        pub fn tool_choice(c: &Value) -> bool {
            match c {
                Value::String(s) => matches!(s.as_str(), "auto" | "none" | "required"),
                Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
                    let name_ok = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|n| !n.is_empty());
                    (keys(o, &["type", "name"], &[]) && name_ok(o.get("name")))
                        || (keys(o, &["type", "function"], &[])
                            && o["function"].as_object().is_some_and(|f| name_ok(f.get("name"))))
                }
                _ => false,
            }
        }

        pub fn text(t: Option<&Value>) -> Result<(), ApiError> {
            let Some(t) = t else { return Ok(()) };
            let Some(o) = t.as_object() else { return Err(expected("text", "object", Some(t))) };
            if let Some(format) = o.get("format") {
                let Some(f) = format.as_object() else { return Err(expected("text.format", "object", Some(format))) };
                if f.get("type").and_then(Value::as_str) != Some("text") {
                    return Err(invalid("text.format.type", "Invalid input: expected \"text\"".into()));
                }
                if let Some(k) = f.keys().find(|k| *k != "type") {
                    return Err(invalid("text.format", format!("Unrecognized key: \"{k}\"")));
                }
            }
            match o.keys().find(|k| *k != "format") {
                Some(k) => Err(invalid("text", format!("Unrecognized key: \"{k}\""))),
                None => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn turn(v: Value) -> Result<ResponsesTurn, ApiError> {
        parse(v.to_string().as_bytes(), RouteHeaders::default())
    }

    fn msg(v: Value) -> String {
        turn(v).unwrap_err().message().to_string()
    }

    #[test]
    fn string_and_item_inputs() {
        let t = turn(json!({"model":"openclaw","input":"hi"})).unwrap();
        assert_eq!((t.message.as_str(), t.extra_system_prompt.as_deref(), t.stream), ("hi", None, false));
        let t = turn(json!({"model":"openclaw","instructions":"be brief","stream":true,"input":[
            {"type":"message","role":"system","content":"sys"},
            {"type":"message","role":"developer","content":[{"type":"input_text","text":"dev"}]},
            {"type":"message","role":"user","content":"first"},
            {"type":"message","role":"assistant","content":[{"type":"output_text","text":"answer"}]},
            {"type":"message","role":"user","content":"second"}]}))
        .unwrap();
        assert!(t.stream);
        assert_eq!(t.extra_system_prompt.as_deref(), Some("be brief\n\nsys\n\ndev"));
        assert_eq!(
            t.message,
            "[Chat messages since your last reply - for context]\nUser: first\nAssistant: answer\n\n[Current message - respond to this]\nUser: second"
        );
        let t = turn(json!({"model":"openclaw","user":"Bob","input":"x"})).unwrap();
        assert_eq!(t.session.key("main"), "agent:main:openresponses-user:bob");
        let t = turn(json!({"model":"openclaw","input":"x"})).unwrap();
        assert!(t.session.key("main").starts_with("agent:main:openresponses:"));
    }

    #[test]
    fn schema_errors_are_zods_first_issue() {
        assert_eq!(msg(json!({"input":"x"})), "model: Invalid input: expected string, received undefined");
        assert_eq!(msg(json!({"model":"openclaw"})), "input: Invalid input");
        assert_eq!(msg(json!({"model":"openclaw","input":[{"role":"user","content":"x"}]})), "input: Invalid input");
        assert_eq!(msg(json!({"model":"openclaw","input":"x","foo":1})), ": Unrecognized key: \"foo\"");
        assert_eq!(
            msg(json!({"model":"openclaw","input":"x","stream":"yes"})),
            "stream: Invalid input: expected boolean, received string"
        );
        assert_eq!(
            msg(json!({"model":"openclaw","input":"x","temperature":3})),
            "temperature: Too big: expected number to be <=2"
        );
        assert_eq!(
            msg(json!({"model":"openclaw","input":"x","truncation":"x"})),
            "truncation: Invalid option: expected one of \"auto\"|\"disabled\""
        );
        assert_eq!(msg(json!({"model":"openclaw","input":[]})), MISSING_USER_MESSAGE);
        let phase =
            json!({"model":"openclaw","input":[{"type":"message","role":"user","content":"x","phase":"commentary"}]});
        assert_eq!(msg(phase), "input.0.phase: `phase` is only valid on assistant messages.");
        assert_eq!(msg(json!({"model":"gpt-4o","input":"x"})), route::INVALID_MODEL);
        assert_eq!(msg(json!([])), ": Invalid input: expected object, received array");
    }

    #[test]
    fn images_become_attachments_files_and_tools_are_refused() {
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        let img = json!({"model":"openclaw","input":[{"type":"message","role":"user","content":[
            {"type":"input_image","source":{"type":"base64","media_type":"image/png","data":png}}]}]});
        let t = turn(img).unwrap();
        assert_eq!((t.attachments.len(), t.message.as_str()), (1, "User sent image(s) with no text."));
        let url = json!({"model":"openclaw","input":[{"type":"message","role":"user","content":[
            {"type":"input_text","text":"x"},{"type":"input_image","source":{"type":"url","url":"https://example.com/a.png"}}]}]});
        assert_eq!(msg(url), "invalid request");
        let file = json!({"model":"openclaw","input":[{"type":"message","role":"user","content":[
            {"type":"input_file","source":{"type":"base64","media_type":"text/plain","data":"eA=="}}]}]});
        assert_eq!(msg(file), FILES_UNSUPPORTED);
        let tools = json!({"model":"openclaw","input":"x","tools":[{"type":"function","name":"f"}]});
        assert_eq!(msg(tools), TOOLS_UNSUPPORTED);
    }
}
