//! Runtime-tunable behaviour of the demo gateway (the "knobs"), shared by the Rust API (`DemoGateway::set`) and
//! `POST /__demo/config` (JSON, snake_case, durations in `*_ms` fields).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the gateway answers `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandshakeMode {
    /// Validate like the real gateway.
    #[default]
    Normal,
    /// Read `connect` and never answer it (the connection stays open).
    NeverAnswer,
    /// Accept, but grant `scopes: []` whatever was asked (like a non-local client).
    ClearScopes,
    /// Always answer with the captured token-mismatch error and close 1008.
    RejectToken,
}

/// Shape of `stream:"assistant"` event data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssistantForm {
    /// `{text (cumulative), delta, itemId}`, as captured.
    #[default]
    Full,
    /// `{delta, itemId}` only.
    DeltaOnly,
    /// `{text (cumulative), itemId}` only.
    TextOnly,
    /// First delta, then `{text:"",delta:"",replace:true}` with a new itemId, then the whole reply afresh.
    ReplaceThenText,
}

/// What a run does after `accepted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Stream the reply and finish ok.
    #[default]
    Normal,
    /// Fail like an upstream HTTP 400 (`ws-agent-upstream-400.jsonl`).
    #[serde(rename = "upstream_400")]
    Upstream400,
    /// Fail like an upstream HTTP 500 after `upstream500_retries` retries (`ws-agent-upstream-500.jsonl`).
    #[serde(rename = "upstream_500")]
    Upstream500,
    /// Send nothing after `accepted` until the run is aborted (or its `timeout` param elapses).
    Hang,
}

/// All knobs. `Default` is the captured real-gateway behaviour with no artificial delays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    pub handshake: HandshakeMode,
    pub assistant_form: AssistantForm,
    pub mode: Mode,
    /// Delay between assistant deltas (0 = back-to-back).
    #[serde(rename = "delta_delay_ms", with = "ms")]
    pub delta_delay: Duration,
    /// Delay between `accepted` and the first run event.
    #[serde(rename = "first_event_delay_ms", with = "ms")]
    pub first_event_delay: Duration,
    /// Fixed reply deltas; `None` = echo `"You said: " + message`, one word (plus its trailing space) per delta.
    pub reply: Option<Vec<String>>,
    /// Advertised `policy.tickIntervalMs` and tick period (read when a connection completes its handshake).
    #[serde(rename = "tick_interval_ms", with = "ms")]
    pub tick_interval: Duration,
    /// Before a run's events, broadcast a malformed frame, an `agent` event for an unknown runId and
    /// (when `Some(n)` with n > 0) an oversized, valid event frame of about n bytes.
    pub send_garbage_before_events: Option<usize>,
    /// Stop sending ticks and events (responses are still sent).
    pub silent: bool,
    /// Number of retries in `upstream_500` mode (the real gateway does 8 over ~80 s).
    pub upstream500_retries: u32,
    /// Delay of each retry in `upstream_500` mode.
    #[serde(rename = "upstream500_retry_delay_ms", with = "ms")]
    pub upstream500_retry_delay: Duration,
    /// Also broadcast `task` upsert events like the real gateway (off by default: noise for benchmarks).
    pub task_events: bool,
    /// Delay before answering a bad token (the real gateway takes ~260 ms).
    #[serde(rename = "auth_failure_delay_ms", with = "ms")]
    pub auth_failure_delay: Duration,
    /// `gateway.trustedProxies` (exact addresses): peers whose forwarding
    /// headers are accepted; anyone else's get the 403.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Advertised `policy.maxPayload` and the largest frame read after `connect` (read at handshake): a
    /// longer frame gets close 1009 and the connection ends, as the real gateway does.
    pub max_payload: u64,
    /// `Some(n)`: before its reply, each run sends one `assistant` event of its own carrying about n bytes of
    /// filler text (a frame too large for a client with a smaller frame limit).
    pub oversized_run_event: Option<usize>,
    /// When the shared secret changes (`DemoGateway::set_secret`), keep the connections that authenticated with
    /// the old one open (2026.5.7 until its restart) instead of closing them with 4001 "gateway auth changed"
    /// (2026.9.6).
    pub keep_links_on_auth_change: bool,
    /// Judge clients as the gateway judges a remote peer: without a `device` block the scopes are cleared;
    /// with one, it must verify and be approved (`DemoGateway::approve_pairing`), else `PAIRING_REQUIRED`.
    pub require_pairing: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            handshake: HandshakeMode::Normal,
            assistant_form: AssistantForm::Full,
            mode: Mode::Normal,
            delta_delay: Duration::ZERO,
            first_event_delay: Duration::ZERO,
            reply: None,
            tick_interval: Duration::from_millis(30_000),
            send_garbage_before_events: None,
            silent: false,
            upstream500_retries: 2,
            upstream500_retry_delay: Duration::from_millis(20),
            task_events: false,
            auth_failure_delay: Duration::ZERO,
            trusted_proxies: Vec::new(),
            max_payload: crate::protocol::MAX_PAYLOAD,
            oversized_run_event: None,
            keep_links_on_auth_change: false,
            require_pairing: false,
        }
    }
}

impl Behaviour {
    /// Shallow-merge a JSON object of knobs into `self` (what `POST /__demo/config` does).
    pub fn merge_json(&mut self, patch: &serde_json::Value) -> Result<(), String> {
        let patch = patch.as_object().ok_or_else(|| "config patch must be a JSON object".to_string())?;
        let mut cur = serde_json::to_value(&*self).map_err(|e| e.to_string())?;
        let obj = cur.as_object_mut().expect("Behaviour serialises to an object");
        for (k, v) in patch {
            if !obj.contains_key(k) {
                return Err(format!("unknown knob '{k}'"));
            }
            obj.insert(k.clone(), v.clone());
        }
        *self = serde_json::from_value(cur).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The reply deltas for a prompt.
    pub fn reply_deltas(&self, message: &str) -> Vec<String> {
        match &self.reply {
            Some(list) => list.clone(),
            None => echo_deltas(message),
        }
    }
}

/// `"You said: " + message`, split into words each carrying its trailing whitespace.
pub fn echo_deltas(message: &str) -> Vec<String> {
    let text = format!("You said: {}", message.trim());
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_space = false;
    for ch in text.chars() {
        if ch.is_whitespace() {
            in_space = true;
            cur.push(ch);
        } else {
            if in_space && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            in_space = false;
            cur.push(ch);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Number of whitespace-separated words (the demo's "input tokens").
pub fn word_count(message: &str) -> u64 {
    message.split_whitespace().count() as u64
}

mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_splits_words_with_trailing_space() {
        assert_eq!(echo_deltas("  hi  there "), vec!["You ", "said: ", "hi  ", "there"]);
        assert_eq!(word_count(" a b\nc "), 3);
    }

    #[test]
    fn merge_json_changes_only_given_knobs() {
        let mut b = Behaviour::default();
        b.merge_json(&serde_json::json!({"mode":"upstream_500","delta_delay_ms":5,"reply":["a","b"]})).unwrap();
        assert_eq!(b.mode, Mode::Upstream500);
        assert_eq!(b.delta_delay, Duration::from_millis(5));
        assert_eq!(b.reply_deltas("x"), vec!["a", "b"]);
        assert_eq!(b.tick_interval, Duration::from_millis(30_000));
        assert!(b.merge_json(&serde_json::json!({"nope":1})).is_err());
        assert!(b.merge_json(&serde_json::json!({"mode":"bogus"})).is_err());
        let v = serde_json::to_value(&b).unwrap();
        assert_eq!(v["mode"], "upstream_500");
        assert_eq!(v["handshake"], "normal");
    }
}
