//! Folds OpenAI `messages` into the one prompt an `agent` run takes, exactly
//! as the gateway's built-in endpoint does (`buildAgentPrompt` in 2026.9.6):
//! system and developer texts become `extraSystemPrompt`; the conversation
//! becomes `Sender: text` lines under the history and current-message
//! markers. Pure; checked against vectors produced by the gateway's own code.

use serde_json::Value;

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
enum Role {
    User,
    Assistant,
    Tool,
}

struct Entry {
    role: Role,
    sender: String,
    body: String,
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

/// `normalizeOptionalString`: a trimmed, non-empty string or nothing.
fn opt_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).map(js_trim).filter(|s| !s.is_empty())
}

/// Text of a `content` value: a string as is; for an array, the text parts
/// joined with `"\n"`. `None` for other types, and for arrays with no text.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<Option<&str>> = parts
                .iter()
                .map(|part| {
                    let obj = part.as_object()?;
                    let kind = obj.get("type").and_then(Value::as_str);
                    match (kind, obj.get("text").and_then(Value::as_str)) {
                        (Some("text" | "input_text"), Some(text)) => Some(text),
                        _ => obj.get("input_text").and_then(Value::as_str),
                    }
                })
                .collect();
            let joined = texts.iter().flatten().filter(|t| !t.is_empty()).copied().collect::<Vec<_>>().join("\n");
            let keep = !js_trim(&joined).is_empty() || texts.iter().all(Option::is_some);
            keep.then_some(joined)
        }
        _ => None,
    }
}

/// `tool_call id=<id> name=<name> arguments=<args>` per valid call, one per line.
fn tool_calls_summary(calls: Option<&Value>) -> String {
    let Some(Value::Array(calls)) = calls else {
        return String::new();
    };
    calls
        .iter()
        .filter_map(|call| {
            let id = opt_str(call.as_object()?.get("id"))?;
            let function = call.get("function")?.as_object()?;
            let name = opt_str(function.get("name"))?;
            let args = match function.get("arguments") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            Some(format!("tool_call id={id} name={name} arguments={args}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Folds `messages` (a non-array is treated as empty).
pub fn fold(messages: &[Value]) -> Prompt {
    let mut system: Vec<String> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    for msg in messages {
        let Some(obj) = msg.as_object() else { continue };
        let Some(raw_role) = opt_str(obj.get("role")) else {
            continue;
        };
        let content = if raw_role == "function" && obj.get("content") == Some(&Value::Null) {
            Some(String::new())
        } else {
            content_text(obj.get("content")).map(|t| js_trim(&t).to_string())
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
        let summary = if role == Role::Assistant { tool_calls_summary(obj.get("tool_calls")) } else { String::new() };
        let body = [content.as_deref().unwrap_or(""), summary.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        let name = opt_str(obj.get("name"));
        let call_id = opt_str(obj.get("tool_call_id"));
        let is_tool_result = role == Role::Tool
            && if raw_role == "function" { name.is_some() } else { call_id.is_some() }
            && content.is_some()
            && (raw_role != "function" || matches!(obj.get("content"), Some(Value::String(_) | Value::Null)));
        if body.is_empty() && !is_tool_result {
            continue;
        }
        if role == Role::Assistant
            && opt_str(obj.get("stopReason")) == Some("error")
            && js_trim(&body) == STREAM_ERROR_PLACEHOLDER
        {
            continue;
        }
        let sender = match (role, call_id, name) {
            (Role::User, _, _) => "User".to_string(),
            (Role::Assistant, _, _) => "Assistant".to_string(),
            (Role::Tool, Some(id), _) => format!("Tool:{id}"),
            (Role::Tool, None, Some(name)) => format!("Tool:{name}"),
            (Role::Tool, None, None) => "Tool".to_string(),
        };
        entries.push(Entry { role, sender, body });
    }
    let extra_system_prompt = (!system.is_empty()).then(|| system.join("\n\n"));
    Prompt { message: conversation_message(&entries), extra_system_prompt }
}

/// `buildAgentMessageFromConversationEntries` + `buildHistoryContext`.
fn conversation_message(entries: &[Entry]) -> String {
    let Some(current) = entries.iter().rposition(|e| e.role != Role::Assistant).or(entries.len().checked_sub(1)) else {
        return String::new();
    };
    let last = &entries[current];
    if current == 0 && last.role != Role::Tool {
        return last.body.clone();
    }
    let history = entries[..current].iter().map(|e| format!("{}: {}", e.sender, e.body)).collect::<Vec<_>>().join("\n");
    let current_line = format!("{}: {}", last.sender, last.body);
    if js_trim(&history).is_empty() {
        return current_line;
    }
    [HISTORY_MARKER, &history, "", CURRENT_MARKER, &current_line].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors produced by running the gateway's own prompt code (openclaw 2026.9.6).
    #[test]
    fn matches_the_gateway_vectors() {
        let path = format!("{}/tests/fixtures/prompt-vectors.json", env!("CARGO_MANIFEST_DIR"));
        let vectors: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(vectors.len() >= 20);
        for v in vectors {
            let messages = v["messages"].as_array().unwrap();
            let got = fold(messages);
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
