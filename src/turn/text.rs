//! Turns `agent` assistant events into append-only stream content, a port of
//! the gateway's `agent-event-assistant-text` merge rules (2026.9.6): items
//! (`itemId`) are joined by up to two newlines, snapshots (`text`) that
//! extend the text replace it, anything else appends `delta`, `replace`
//! resets, and `replaceable` (provisional) text is held back until the end.
//! Pure.

use crate::gateway::AssistantData;

pub const APPEND_ONLY_ERROR: &str = "Assistant output cannot be represented as an append-only response stream.";
pub const NO_RESPONSE: &str = "No response from OpenClaw.";

#[derive(Debug, Clone)]
struct Scope {
    item_id: String,
    prefix: String,
    boundary_newlines: usize,
    separator_len: usize,
}

#[derive(Debug, Clone, Default)]
struct Merged {
    text: String,
    scope: Option<Scope>,
}

/// One streamed completion's text state.
#[derive(Debug, Default)]
pub struct StreamText {
    assistant: Merged,
    pending: Option<Merged>,
    /// What the client has; always a prefix of, or equal to, `assistant.text`
    /// while `in_sync`.
    streamed: String,
    /// `streamed` equals `assistant.text` (the gateway's `previous === streamed`).
    in_sync: bool,
    /// Set when the text was revised in a way the stream cannot express.
    pub error: Option<&'static str>,
}

impl StreamText {
    pub fn new() -> Self {
        StreamText { in_sync: true, ..Default::default() }
    }

    /// Applies one assistant event; returns content to send now.
    pub fn on_event(&mut self, data: &AssistantData) -> Option<String> {
        if data.text.is_none() && data.delta.is_none() {
            return None;
        }
        if data.replaceable || self.pending.is_some() {
            let mut base = self.pending.take().unwrap_or_else(|| self.assistant.clone());
            let as_replace = data.item_id.is_none() && data.text.is_some();
            merge(&mut base, data, as_replace || data.replace);
            self.pending = Some(base);
            return None;
        }
        let appended = merge(&mut self.assistant, data, data.replace);
        let content = match appended {
            Some(a) if self.in_sync => Some(a),
            _ => self.assistant.text.strip_prefix(self.streamed.as_str()).map(str::to_string),
        };
        match content {
            None => {
                self.error.get_or_insert(APPEND_ONLY_ERROR);
                self.in_sync = false;
                None
            }
            Some(c) => {
                self.streamed.push_str(&c);
                self.in_sync = true;
                (!c.is_empty()).then_some(c)
            }
        }
    }

    /// What the client has been sent so far.
    pub fn streamed(&self) -> &str {
        &self.streamed
    }

    /// Whether the stream could end now with what it sent: text went out,
    /// nothing is held back as provisional, nothing was revised.
    pub fn settled(&self) -> bool {
        self.error.is_none() && self.pending.is_none() && !self.streamed.is_empty()
    }

    /// The text still to send when the run resolves (`resolveAssistantTextCompletion`),
    /// or the append-only error. `result_text` is `None` when no payload had text.
    pub fn completion(&self, result_text: Option<&str>) -> Result<Option<String>, &'static str> {
        let streamed = self.streamed.as_str();
        let text: &str = match &self.pending {
            Some(p) => match result_text {
                Some(r) => r,
                None if !p.text.is_empty() => &p.text,
                None if !streamed.is_empty() => "",
                None => NO_RESPONSE,
            },
            None if !streamed.is_empty() => &self.assistant.text,
            None => match result_text.unwrap_or(&self.assistant.text) {
                "" => NO_RESPONSE,
                t => t,
            },
        };
        match text.strip_prefix(streamed) {
            Some("") => Ok(None),
            Some(rest) => Ok(Some(rest.to_string())),
            None => Err(APPEND_ONLY_ERROR),
        }
    }
}

/// `mergeAssistantText(previous, input, "append-only")`, in place. Returns the
/// appended text when the merge recorded append provenance.
fn merge(prev: &mut Merged, input: &AssistantData, replace: bool) -> Option<String> {
    let delta = input.delta.as_deref();
    let mut same_scope = false;
    match input.item_id.as_deref() {
        None => prev.scope = None,
        Some(id) if prev.scope.as_ref().is_some_and(|s| s.item_id == id) => same_scope = true,
        Some(id) => {
            let prefix = if input.replace && input.replaceable { String::new() } else { prev.text.clone() };
            let boundary = if prefix.is_empty() || prefix.ends_with("\n\n") {
                0
            } else if prefix.ends_with('\n') {
                1
            } else {
                2
            };
            prev.scope = Some(Scope { item_id: id.to_string(), prefix, boundary_newlines: boundary, separator_len: 0 });
        }
    }
    if let Some(scope) = prev.scope.as_mut() {
        let offset = scope.prefix.len() + scope.separator_len;
        let item_len_utf16 =
            if same_scope { prev.text.get(offset..).map_or(0, |t| t.encode_utf16().count()) } else { 0 };
        if input.text.is_none() && same_scope && item_len_utf16 >= 2 {
            let appended = delta.unwrap_or("").to_string();
            prev.text.push_str(&appended);
            return Some(appended);
        }
        let item_text = match &input.text {
            Some(t) => t.clone(),
            None => {
                let base = if same_scope { prev.text.get(offset..).unwrap_or("") } else { "" };
                format!("{base}{}", delta.unwrap_or(""))
            }
        };
        let leading = if item_text.starts_with("\n\n") {
            2
        } else if item_text.starts_with('\n') {
            1
        } else {
            0
        };
        if scope.prefix.is_empty() {
            scope.boundary_newlines = scope.boundary_newlines.min(scope.separator_len + leading);
        }
        scope.separator_len = if item_text.is_empty() { 0 } else { scope.boundary_newlines.saturating_sub(leading) };
        prev.text = format!("{}{}{}", scope.prefix, "\n".repeat(scope.separator_len), item_text);
        return None;
    }
    match &input.text {
        None => {
            let appended = delta.unwrap_or("").to_string();
            prev.text.push_str(&appended);
            Some(appended)
        }
        Some(text) if replace => {
            prev.text.clone_from(text);
            None
        }
        Some(text) => match text.strip_prefix(prev.text.as_str()) {
            Some(rest) => {
                let appended = rest.to_string();
                prev.text.clone_from(text);
                Some(appended)
            }
            None => {
                let appended = delta.unwrap_or(text).to_string();
                prev.text.push_str(&appended);
                Some(appended)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(text: Option<&str>, delta: Option<&str>, item: Option<&str>) -> AssistantData {
        AssistantData {
            text: text.map(Into::into),
            delta: delta.map(Into::into),
            item_id: item.map(Into::into),
            ..Default::default()
        }
    }

    fn run(events: &[AssistantData]) -> (Vec<String>, StreamText) {
        let mut s = StreamText::new();
        let out = events.iter().filter_map(|e| s.on_event(e)).collect();
        (out, s)
    }

    /// The cases the gateway's own functions were run on (see README, fidelity).
    #[test]
    fn gateway_merge_vectors() {
        let (out, s) = run(&[
            ev(Some("Hello"), Some("Hello"), Some("r:1")),
            ev(Some("Hello, world"), Some(", world"), Some("r:1")),
            ev(Some("Hello, world!"), Some("!"), Some("r:1")),
        ]);
        assert_eq!(out, ["Hello", ", world", "!"]);
        assert_eq!(s.completion(Some("Hello, world!")), Ok(None));

        let (out, _) = run(&[ev(None, Some("Hel"), None), ev(None, Some("lo"), None)]);
        assert_eq!(out, ["Hel", "lo"]);

        let (out, _) = run(&[ev(None, Some("A"), Some("1")), ev(None, Some("B"), Some("2"))]);
        assert_eq!(out, ["A", "\n\nB"]);

        let (out, _) = run(&[ev(Some("Hello"), None, None), ev(Some("Goodbye"), None, None)]);
        assert_eq!(out, ["Hello", "Goodbye"], "a non-extending snapshot appends");

        let mut replace = ev(Some("Bye"), None, None);
        replace.replace = true;
        let (out, s) = run(&[ev(Some("Hello"), None, None), replace]);
        assert_eq!(out, ["Hello"]);
        assert_eq!(s.error, Some(APPEND_ONLY_ERROR));
    }

    #[test]
    fn provisional_text_is_held_until_the_end() {
        let mut draft = ev(Some("draft"), None, None);
        draft.replaceable = true;
        let mut fin = ev(Some("final"), None, None);
        fin.replaceable = true;
        let (out, s) = run(&[draft, fin]);
        assert!(out.is_empty());
        assert_eq!(s.completion(None), Ok(Some("final".into())));
    }

    #[test]
    fn completion_rules() {
        let s = StreamText::new();
        assert_eq!(s.completion(Some("Result text")), Ok(Some("Result text".into())));
        assert_eq!(s.completion(None), Ok(Some(NO_RESPONSE.into())));
        assert_eq!(s.completion(Some("")), Ok(Some(NO_RESPONSE.into())));
        let (_, s) = run(&[ev(None, Some("abc"), None)]);
        assert_eq!(s.completion(Some("xyz")), Ok(None), "the result text is ignored once text streamed");
    }

    #[test]
    fn retry_reset_before_any_text_is_harmless() {
        let mut reset = ev(Some(""), Some(""), None);
        reset.replace = true;
        let (out, s) = run(&[reset, ev(Some("Hi"), Some("Hi"), None)]);
        assert_eq!(out, ["Hi"]);
        assert_eq!(s.error, None);
    }
}
