//! Folds OpenAI `messages` into the one prompt an `agent` run takes, exactly
//! as the gateway's built-in endpoint does (`buildAgentPrompt` in 2026.9.6):
//! system and developer texts become `extraSystemPrompt`; the conversation
//! becomes `Sender: text` lines under the history and current-message
//! markers. Pure; checked against vectors produced by the gateway's own code.

use std::borrow::Cow;

use super::body::{Any, Arguments, Content, Json, Message, ToolCall};

pub const HISTORY_MARKER: &str = "[Chat messages since your last reply - for context]";
pub const CURRENT_MARKER: &str = "[Current message - respond to this]";
/// An assistant turn the gateway recorded as failed; never part of a prompt.
const STREAM_ERROR_PLACEHOLDER: &str = "[assistant turn failed before producing content]";

/// The folded prompt. `message` may be empty: the caller answers 400.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompt {
    pub message: String,
    pub extra_system_prompt: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    Tool,
}

/// One conversation line; texts borrow from the request where they can.
pub struct Entry<'a> {
    pub role: Role,
    pub sender: Cow<'a, str>,
    pub body: Cow<'a, str>,
}

/// JavaScript's `String.prototype.trim` (differs from `str::trim`: it strips
/// U+FEFF but not U+0085).
pub fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_whitespace)
}

fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\u{FEFF}'
    )
}

/// `js_trim` of a `Cow`, still borrowed when it was.
fn trim_cow(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(js_trim(b)),
        Cow::Owned(o) if js_trim(&o).len() == o.len() => Cow::Owned(o),
        Cow::Owned(o) => Cow::Owned(js_trim(&o).to_string()),
    }
}

/// `normalizeOptionalString`: a trimmed, non-empty string or nothing.
fn opt_str<'v>(v: Option<&'v Any<'_>>) -> Option<&'v str> {
    v.and_then(Json::as_str).map(js_trim).filter(|s| !s.is_empty())
}

/// Text of a `content` value: a string as is; for an array, the text parts
/// joined with `"\n"`. `None` for other types, and for arrays with no text.
fn content_text<'v>(content: Option<&'v Content<'_>>) -> Option<Cow<'v, str>> {
    match content? {
        Json::Str(s) => Some(Cow::Borrowed(s)),
        Json::Arr(parts) => {
            let texts: Vec<Option<&str>> = parts
                .iter()
                .map(|part| {
                    let obj = part.as_obj()?;
                    let kind = obj.kind.as_ref().and_then(Json::as_str);
                    match (kind, obj.text.as_ref().and_then(Json::as_str)) {
                        (Some("text" | "input_text"), Some(text)) => Some(text),
                        _ => obj.input_text.as_ref().and_then(Json::as_str),
                    }
                })
                .collect();
            let joined = texts.iter().flatten().filter(|t| !t.is_empty()).copied().collect::<Vec<_>>().join("\n");
            let keep = !js_trim(&joined).is_empty() || texts.iter().all(Option::is_some);
            keep.then_some(Cow::Owned(joined))
        }
        _ => None,
    }
}

/// `tool_call id=<id> name=<name> arguments=<args>` per valid call, one per line.
fn tool_calls_summary(calls: Option<&Json<'_, super::body::Skip, ToolCall<'_>>>) -> String {
    let Some(Json::Arr(calls)) = calls else {
        return String::new();
    };
    calls
        .iter()
        .filter_map(|call| {
            let call = call.as_obj()?;
            let id = opt_str(call.id.as_ref())?;
            let function = call.function.as_ref()?.as_obj()?;
            let name = opt_str(function.name.as_ref())?;
            let args: Cow<str> = match &function.arguments {
                None | Some(Arguments::Null) => Cow::Borrowed(""),
                Some(Arguments::Str(s)) => Cow::Borrowed(s),
                Some(Arguments::Other(v)) => Cow::Owned(v.to_string()),
            };
            Some(format!("tool_call id={id} name={name} arguments={args}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text of a user turn that sent only images.
pub const IMAGE_ONLY_USER_MESSAGE: &str = "User sent image(s) with no text.";

/// Folds `messages`; `image_turn` is the index of the active user message
/// when it carries images (a text-less one then reads as such).
pub fn fold(messages: &[Message<'_>], image_turn: Option<usize>) -> Prompt {
    let mut system: Vec<Cow<str>> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    for (index, msg) in messages.iter().enumerate() {
        let Some(obj) = msg.as_obj() else { continue };
        let Some(raw_role) = opt_str(obj.role.as_ref()) else {
            continue;
        };
        let rare = obj.rare();
        let content = if raw_role == "function" && obj.content.as_ref().is_some_and(Json::is_null) {
            Some(Cow::Borrowed(""))
        } else {
            content_text(obj.content.as_ref()).map(trim_cow)
        };
        let role = match raw_role {
            "system" | "developer" => {
                if let Some(text) = content.filter(|t| !t.is_empty()) {
                    system.push(text);
                }
                continue;
            }
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" | "function" => Role::Tool,
            _ => continue,
        };
        let content = match content {
            Some(c) if !c.is_empty() => Some(c),
            _ if role == Role::User && image_turn == Some(index) => Some(Cow::Borrowed(IMAGE_ONLY_USER_MESSAGE)),
            c => c,
        };
        let summary =
            if role == Role::Assistant { tool_calls_summary(rare.tool_calls.as_ref()) } else { String::new() };
        let body: Cow<str> = match (content.as_deref().unwrap_or(""), summary.as_str()) {
            (_, "") => content.clone().unwrap_or_default(),
            ("", s) => Cow::Owned(s.to_string()),
            (c, s) => Cow::Owned(format!("{c}\n{s}")),
        };
        let name = opt_str(rare.name.as_ref());
        let call_id = opt_str(rare.tool_call_id.as_ref());
        let is_tool_result = role == Role::Tool
            && if raw_role == "function" { name.is_some() } else { call_id.is_some() }
            && content.is_some()
            && (raw_role != "function" || matches!(obj.content, Some(Json::Str(_) | Json::Null)));
        if body.is_empty() && !is_tool_result {
            continue;
        }
        if role == Role::Assistant
            && opt_str(rare.stop_reason.as_ref()) == Some("error")
            && js_trim(&body) == STREAM_ERROR_PLACEHOLDER
        {
            continue;
        }
        let sender: Cow<str> = match (role, call_id, name) {
            (Role::User, _, _) => Cow::Borrowed("User"),
            (Role::Assistant, _, _) => Cow::Borrowed("Assistant"),
            (Role::Tool, Some(id), _) => Cow::Owned(format!("Tool:{id}")),
            (Role::Tool, None, Some(name)) => Cow::Owned(format!("Tool:{name}")),
            (Role::Tool, None, None) => Cow::Borrowed("Tool"),
        };
        entries.push(Entry { role, sender, body });
    }
    let extra_system_prompt = (!system.is_empty()).then(|| system.join("\n\n"));
    Prompt { message: conversation_message(&entries), extra_system_prompt }
}

/// `buildAgentMessageFromConversationEntries` + `buildHistoryContext`,
/// shared by every API that folds a conversation.
pub fn conversation_message(entries: &[Entry]) -> String {
    let Some(current) = entries.iter().rposition(|e| e.role != Role::Assistant).or(entries.len().checked_sub(1)) else {
        return String::new();
    };
    let last = &entries[current];
    if current == 0 && last.role != Role::Tool {
        return last.body.to_string();
    }
    let line = |e: &Entry, out: &mut String| {
        out.push_str(&e.sender);
        out.push_str(": ");
        out.push_str(&e.body);
    };
    let earlier = &entries[..current];
    let history_len: usize = earlier.iter().map(|e| e.sender.len() + 3 + e.body.len()).sum();
    let mut out = String::with_capacity(
        HISTORY_MARKER.len() + history_len + CURRENT_MARKER.len() + last.sender.len() + last.body.len() + 8,
    );
    out.push_str(HISTORY_MARKER);
    out.push('\n');
    let history_start = out.len();
    for (i, e) in earlier.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        line(e, &mut out);
    }
    if js_trim(&out[history_start..]).is_empty() {
        out.clear();
        line(last, &mut out);
        return out;
    }
    out.push_str("\n\n");
    out.push_str(CURRENT_MARKER);
    out.push('\n');
    line(last, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Vectors produced by running the gateway's own prompt code (openclaw 2026.9.6).
    #[test]
    fn matches_the_gateway_vectors() {
        let path = format!("{}/tests/fixtures/prompt-vectors.json", env!("CARGO_MANIFEST_DIR"));
        let vectors: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(vectors.len() >= 20);
        for v in vectors {
            let text = v["messages"].to_string();
            let messages: Vec<Message> = serde_json::from_str(&text).unwrap();
            let got = fold(&messages, None);
            assert_eq!(got.message, v["message"].as_str().unwrap(), "message for {}", v["messages"]);
            assert_eq!(
                got.extra_system_prompt.as_deref(),
                v["extraSystemPrompt"].as_str(),
                "system for {}",
                v["messages"]
            );
        }
    }

    #[test]
    fn js_trim_differs_from_rust_trim() {
        assert_eq!(js_trim("\u{FEFF} a \u{3000}"), "a");
        assert_eq!(js_trim("\u{85}a"), "\u{85}a");
    }
}
