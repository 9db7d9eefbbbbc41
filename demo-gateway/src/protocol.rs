//! Pure wire-frame builders for the OpenClaw native WebSocket protocol (v4), with key names and key order copied
//! from the real-gateway captures in `shared/spec/captures/` (openclaw 2026.9.6). No I/O, no state.

use crate::json::{raw_array, Obj};

pub const PROTOCOL_VERSION: u64 = 4;
pub const MIN_PROBE_PROTOCOL: u64 = 3;
pub const SERVER_VERSION: &str = "2026.9.6";
pub const BUILD_ID: &str = "2026.9.6-demo-gateway";
pub const MAX_PAYLOAD: u64 = 26_214_400;
pub const MAX_BUFFERED_BYTES: u64 = 52_428_800;
pub const PROVIDER: &str = "demo";
pub const MODEL: &str = "demo-model";

pub use crate::names::*;

// ---------------------------------------------------------------------------------------------------------------
// Generic frames

/// `{"type":"event","event":E,"payload":P}` without a frame `seq` (only `connect.challenge` looks like this).
pub fn event_no_seq(event: &str, payload: &str) -> String {
    Obj::with_capacity(payload.len() + 48).str("type", "event").str("event", event).raw("payload", payload).finish()
}

/// Everything of an event frame up to and including `"seq":`; the connection appends its own counter and `}`.
/// This is what lets one serialisation be shared by every subscribed connection.
pub fn event_prefix(event: &str, payload: &str) -> String {
    let mut s = Obj::with_capacity(payload.len() + event.len() + 48)
        .str("type", "event")
        .str("event", event)
        .raw("payload", payload)
        .raw("seq", "")
        .finish();
    s.pop(); // the closing brace: the connection appends `<seq>}`
    s
}

/// Complete an [`event_prefix`] with the per-connection frame `seq`.
pub fn finish_event(prefix: &str, seq: u64) -> String {
    let mut s = String::with_capacity(prefix.len() + 21);
    s.push_str(prefix);
    s.push_str(&seq.to_string());
    s.push('}');
    s
}

pub fn res_ok(id: &str, payload: &str) -> String {
    Obj::with_capacity(payload.len() + 48)
        .str("type", "res")
        .str("id", id)
        .bool("ok", true)
        .raw("payload", payload)
        .finish()
}

pub fn res_err(id: &str, error: &str) -> String {
    Obj::with_capacity(error.len() + 48).str("type", "res").str("id", id).bool("ok", false).raw("error", error).finish()
}

/// `ok:false` with both `payload` and `error` (final res of a failed run).
pub fn res_err_with_payload(id: &str, payload: &str, error: &str) -> String {
    Obj::with_capacity(payload.len() + error.len() + 48)
        .str("type", "res")
        .str("id", id)
        .bool("ok", false)
        .raw("payload", payload)
        .raw("error", error)
        .finish()
}

/// `ErrorShape` `{code, message, details?}`.
pub fn error_shape(code: &str, message: &str, details: Option<&str>) -> String {
    let o = Obj::new().str("code", code).str("message", message);
    match details {
        Some(d) => o.raw("details", d).finish(),
        None => o.finish(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Handshake

pub fn challenge(nonce: &str, ts: u64) -> String {
    let payload =
        Obj::new().str("nonce", nonce).num("ts", ts).strs("capabilities", &["model-catalog-snapshot"]).finish();
    event_no_seq("connect.challenge", &payload)
}

pub const MSG_FIRST_NOT_CONNECT: &str = "invalid handshake: first request must be connect";
pub const MSG_TOKEN_MISMATCH: &str = "unauthorized: gateway token mismatch (provide gateway auth token)";
pub const MSG_PASSWORD_MISMATCH: &str = "unauthorized: gateway password mismatch (provide gateway password)";
pub const MSG_DEVICE_REQUIRED: &str = "device identity required";
pub const MSG_PROTOCOL_MISMATCH: &str = "protocol mismatch";
pub const MSG_INVALID_ROLE: &str = "invalid role";
pub const MSG_CONTROL_UI_ORIGIN: &str =
    "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)";
pub const MSG_CONTROL_UI_DEVICE: &str = "control ui requires device identity (use HTTPS or localhost secure context)";

/// Error for a token (or password, when the gateway runs in password mode) mismatch (`ws-handshake-bad-token.jsonl`).
pub fn err_auth_mismatch(password_mode: bool) -> String {
    if password_mode {
        let d = Obj::new()
            .str("code", "AUTH_PASSWORD_MISMATCH")
            .str("authReason", "password_mismatch")
            .bool("canRetryWithDeviceToken", false)
            .str("recommendedNextStep", "update_auth_credentials")
            .finish();
        error_shape("INVALID_REQUEST", MSG_PASSWORD_MISMATCH, Some(&d))
    } else {
        let d = Obj::new()
            .str("code", "AUTH_TOKEN_MISMATCH")
            .str("authReason", "token_mismatch")
            .bool("canRetryWithDeviceToken", false)
            .str("recommendedNextStep", "update_auth_credentials")
            .finish();
        error_shape("INVALID_REQUEST", MSG_TOKEN_MISMATCH, Some(&d))
    }
}

/// `ws-matrix/backend-no-auth.jsonl`, `backend-empty-token.jsonl`, `role-node-no-device.jsonl`.
pub fn err_device_required() -> String {
    error_shape("NOT_PAIRED", MSG_DEVICE_REQUIRED, Some(r#"{"code":"DEVICE_IDENTITY_REQUIRED"}"#))
}

/// `ws-matrix/protocol-3-only.jsonl`.
pub fn err_protocol_mismatch(min: i64, max: i64) -> String {
    let d = Obj::new()
        .str("code", "PROTOCOL_MISMATCH")
        .int("clientMinProtocol", min)
        .int("clientMaxProtocol", max)
        .num("expectedProtocol", PROTOCOL_VERSION)
        .num("minimumProbeProtocol", MIN_PROBE_PROTOCOL)
        .finish();
    error_shape("INVALID_REQUEST", MSG_PROTOCOL_MISMATCH, Some(&d))
}

pub fn err_control_ui_origin() -> String {
    error_shape(
        "INVALID_REQUEST",
        MSG_CONTROL_UI_ORIGIN,
        Some(r#"{"code":"CONTROL_UI_ORIGIN_NOT_ALLOWED","reason":"origin missing or invalid"}"#),
    )
}

pub fn err_control_ui_device() -> String {
    error_shape("INVALID_REQUEST", MSG_CONTROL_UI_DEVICE, Some(r#"{"code":"CONTROL_UI_DEVICE_IDENTITY_REQUIRED"}"#))
}

pub fn err_invalid_request(message: &str) -> String {
    error_shape("INVALID_REQUEST", message, None)
}

/// `ws-matrix/backend-token-read-only.jsonl`.
pub fn err_missing_scope(scope: &str) -> String {
    let d =
        Obj::new().str("code", "MISSING_SCOPE").str("missingScope", scope).strs("requiredScopes", &[scope]).finish();
    error_shape("FORBIDDEN", &format!("missing scope: {scope}"), Some(&d))
}

/// Inputs of a `hello-ok` payload.
#[derive(Debug, Clone)]
pub struct HelloOk<'a> {
    pub boot_id: &'a str,
    pub conn_id: &'a str,
    pub instance_id: &'a str,
    pub now_ms: u64,
    pub uptime_ms: u64,
    pub agents: &'a [String],
    /// `"token"` or `"password"`.
    pub auth_method: &'a str,
    pub scopes: &'a [String],
    pub tick_interval_ms: u64,
    pub max_payload: u64,
    /// `auth.deviceToken`, issued to a paired device.
    pub device_token: Option<&'a str>,
}

/// Trimmed but key-order-faithful copy of `ws-hello-ok.json`.
pub fn hello_ok_payload(h: &HelloOk<'_>) -> String {
    let default_agent = h.agents.first().map(String::as_str).unwrap_or("main");
    let main_session_key = format!("agent:{default_agent}:main");
    let server = Obj::new()
        .str("version", SERVER_VERSION)
        .str("buildId", BUILD_ID)
        .str("bootId", h.boot_id)
        .str("controlUiBuildSource", "bundled")
        .str("connId", h.conn_id);
    let features =
        Obj::with_capacity(4096).strs("methods", METHODS).strs("events", EVENTS).strs("capabilities", CAPABILITIES);
    let presence = Obj::new()
        .str("host", "demo-gateway")
        .str("ip", "127.0.0.1")
        .str("version", SERVER_VERSION)
        .str("platform", std::env::consts::OS)
        .str("deviceFamily", "Linux")
        .str("mode", "gateway")
        .str("reason", "self")
        .str("instanceId", h.instance_id)
        .str("text", &format!("Gateway: demo-gateway (127.0.0.1) · app {SERVER_VERSION} · mode gateway · reason self"))
        .num("ts", h.now_ms)
        .finish();
    let agents: Vec<String> = h
        .agents
        .iter()
        .enumerate()
        .map(|(i, a)| Obj::new().str("agentId", a).bool("isDefault", i == 0).finish())
        .collect();
    let health = Obj::new()
        .bool("ok", true)
        .num("ts", h.now_ms)
        .num("durationMs", 0)
        .raw("plugins", r#"{"loaded":[],"errors":[],"unavailable":[]}"#)
        .raw("configReload", r#"{"hotReloadStatus":"active"}"#)
        .raw("channels", "{}")
        .raw("channelOrder", "[]")
        .raw("channelLabels", "{}")
        .num("heartbeatSeconds", 0)
        .str("defaultAgentId", default_agent)
        .raw("agents", &raw_array(&agents));
    let session_defaults = Obj::new()
        .str("defaultAgentId", default_agent)
        .bool("modelConfigured", true)
        .str("ownership", "sole")
        .bool("selectionRequired", false)
        .str("mainKey", "main")
        .str("mainSessionKey", &main_session_key)
        .str("scope", "per-sender");
    let snapshot = Obj::with_capacity(1024)
        .raw("suspension", r#"{"phase":"accepting"}"#)
        .raw("presence", &raw_array(&[presence]))
        .obj("health", health)
        .raw("stateVersion", r#"{"presence":1,"health":1}"#)
        .num("uptimeMs", h.uptime_ms)
        .obj("sessionDefaults", session_defaults);
    let auth = Obj::new()
        .opt_str("deviceToken", h.device_token)
        .str("method", h.auth_method)
        .str("role", "operator")
        .strs("scopes", h.scopes);
    let policy = Obj::new()
        .num("maxPayload", h.max_payload)
        .num("maxBufferedBytes", MAX_BUFFERED_BYTES)
        .num("tickIntervalMs", h.tick_interval_ms);
    Obj::with_capacity(6144)
        .str("type", "hello-ok")
        .num("protocol", PROTOCOL_VERSION)
        .obj("server", server)
        .obj("features", features)
        .obj("snapshot", snapshot)
        .obj("auth", auth)
        .obj("policy", policy)
        .finish()
}

pub fn tick_payload(ts: u64) -> String {
    Obj::new().num("ts", ts).finish()
}

// ---------------------------------------------------------------------------------------------------------------
// Agent runs

/// Identity of one run, shared by all of its events.
#[derive(Debug, Clone)]
pub struct RunRef<'a> {
    pub run_id: &'a str,
    pub session_key: &'a str,
    pub session_id: &'a str,
    pub agent_id: &'a str,
}

/// `res` payload sent right after `agent` is accepted (`ws-agent-run.jsonl`).
pub fn accepted_payload(r: &RunRef<'_>, accepted_at: u64) -> String {
    Obj::new()
        .str("runId", r.run_id)
        .str("sessionKey", r.session_key)
        .str("agentId", r.agent_id)
        .str("status", "accepted")
        .num("acceptedAt", accepted_at)
        .finish()
}

/// Duplicate `idempotencyKey` while the first run is still going.
pub fn in_flight_payload(run_id: &str) -> String {
    Obj::new().str("runId", run_id).str("status", "in_flight").finish()
}

/// Order A (start, model, finishing): runId, sessionKey, sessionId, agentId, stream, data, seq, ts.
fn agent_a(r: &RunRef<'_>, stream: &str, data: &str, seq: u64, ts: u64) -> String {
    Obj::with_capacity(data.len() + 256)
        .str("runId", r.run_id)
        .str("sessionKey", r.session_key)
        .str("sessionId", r.session_id)
        .str("agentId", r.agent_id)
        .str("stream", stream)
        .raw("data", data)
        .num("seq", seq)
        .num("ts", ts)
        .finish()
}

pub fn lifecycle_start(r: &RunRef<'_>, seq: u64, started_at: u64) -> String {
    let data = Obj::new().str("phase", "start").num("startedAt", started_at).finish();
    agent_a(r, "lifecycle", &data, seq, started_at)
}

pub fn lifecycle_model(r: &RunRef<'_>, seq: u64, ts: u64) -> String {
    let data = Obj::new().str("phase", "model").str("provider", PROVIDER).str("model", MODEL).finish();
    agent_a(r, "lifecycle", &data, seq, ts)
}

pub fn lifecycle_finishing(r: &RunRef<'_>, seq: u64, ended_at: u64) -> String {
    let data = Obj::new()
        .str("phase", "finishing")
        .str("stopReason", "stop")
        .bool("aborted", false)
        .str("livenessState", "working")
        .num("endedAt", ended_at)
        .finish();
    agent_a(r, "lifecycle", &data, seq, ended_at)
}

/// Failure details shared by lifecycle/chat error events (`ws-agent-upstream-400.jsonl`).
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub message: &'a str,
    pub failover_reason: &'a str,
    pub runtime_failure_kind: &'a str,
}

fn error_observation(f: &Failure<'_>) -> String {
    Obj::new()
        .str("provider", PROVIDER)
        .str("model", MODEL)
        .str("failoverReason", f.failover_reason)
        .str("providerRuntimeFailureKind", f.runtime_failure_kind)
        .finish()
}

pub fn lifecycle_finishing_error(r: &RunRef<'_>, seq: u64, ended_at: u64, f: &Failure<'_>) -> String {
    let data = Obj::new()
        .str("phase", "finishing")
        .str("error", f.message)
        .raw("errorObservation", &error_observation(f))
        .bool("aborted", false)
        .str("livenessState", "blocked")
        .num("endedAt", ended_at)
        .finish();
    agent_a(r, "lifecycle", &data, seq, ended_at)
}

/// The `{phase:"model",provider:null,model:null}` reset event: runId, agentId, sessionId, sessionKey, stream, data, seq, ts.
pub fn lifecycle_model_reset(r: &RunRef<'_>, seq: u64, ts: u64) -> String {
    Obj::with_capacity(256)
        .str("runId", r.run_id)
        .str("agentId", r.agent_id)
        .str("sessionId", r.session_id)
        .str("sessionKey", r.session_key)
        .str("stream", "lifecycle")
        .raw("data", r#"{"phase":"model","provider":null,"model":null}"#)
        .num("seq", seq)
        .num("ts", ts)
        .finish()
}

/// Order B (end, error): runId, stream, data, sessionKey, sessionId, agentId, seq, ts.
fn agent_b(r: &RunRef<'_>, data: &str, seq: u64, ts: u64) -> String {
    Obj::with_capacity(data.len() + 256)
        .str("runId", r.run_id)
        .str("stream", "lifecycle")
        .raw("data", data)
        .str("sessionKey", r.session_key)
        .str("sessionId", r.session_id)
        .str("agentId", r.agent_id)
        .num("seq", seq)
        .num("ts", ts)
        .finish()
}

fn terminal_receipt(r: &RunRef<'_>) -> String {
    let pm = Obj::new().str("provider", PROVIDER).str("model", MODEL).finish();
    let eff = Obj::new().str("provider", PROVIDER).str("model", MODEL).str("responseModel", MODEL).finish();
    Obj::new()
        .str("runId", r.run_id)
        .str("sessionId", r.session_id)
        .str("turnId", r.run_id)
        .raw("requested", &pm)
        .raw("effective", &eff)
        .raw("successfulToolNames", "[]")
        .bool("rerouted", false)
        .str("terminalDisposition", "visible")
        .finish()
}

pub fn lifecycle_end(r: &RunRef<'_>, seq: u64, started_at: u64, ended_at: u64, text: &str) -> String {
    let reply = Obj::new().str("disposition", "visible").str("text", text).finish();
    let data = Obj::with_capacity(512 + text.len())
        .str("phase", "end")
        .num("startedAt", started_at)
        .num("endedAt", ended_at)
        .bool("aborted", false)
        .str("stopReason", "stop")
        .str("livenessState", "working")
        .bool("executionSettled", true)
        .raw("terminalReceipt", &terminal_receipt(r))
        .raw("terminalReply", &reply)
        .finish();
    agent_b(r, &data, seq, ended_at)
}

pub fn lifecycle_error(r: &RunRef<'_>, seq: u64, started_at: u64, ended_at: u64, f: &Failure<'_>) -> String {
    let data = Obj::new()
        .str("phase", "error")
        .num("startedAt", started_at)
        .num("endedAt", ended_at)
        .str("error", f.message)
        .raw("errorObservation", &error_observation(f))
        .bool("executionSettled", true)
        .finish();
    agent_b(r, &data, seq, ended_at)
}

/// Aborted run (shape of `ws-listener-during-http-client-disconnect.jsonl`, with the abort's own reason).
pub fn lifecycle_aborted(
    r: &RunRef<'_>,
    seq: u64,
    started_at: u64,
    ended_at: u64,
    error: &str,
    stop_reason: &str,
) -> String {
    let data = Obj::new()
        .str("phase", "error")
        .num("startedAt", started_at)
        .num("endedAt", ended_at)
        .str("error", error)
        .bool("aborted", true)
        .str("stopReason", stop_reason)
        .bool("executionSettled", true)
        .finish();
    agent_b(r, &data, seq, ended_at)
}

/// How `stream:"assistant"` data looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssistantData<'a> {
    /// `{text, delta, itemId}` as captured.
    Full { text: &'a str, delta: &'a str },
    /// `{delta, itemId}` (newer runtimes, issue #82988).
    DeltaOnly { delta: &'a str },
    /// `{text, itemId}`.
    TextOnly { text: &'a str },
    /// `{itemId, text:"", delta:"", replace:true}` (`ws-agent-upstream-500.jsonl`).
    Replace,
}

/// Assistant event: runId, stream, data, sessionKey, agentId, seq, ts.
pub fn assistant(r: &RunRef<'_>, seq: u64, ts: u64, item_id: &str, d: AssistantData<'_>) -> String {
    let data = match d {
        AssistantData::Full { text, delta } => Obj::with_capacity(text.len() + delta.len() + 64)
            .str("text", text)
            .str("delta", delta)
            .str("itemId", item_id),
        AssistantData::DeltaOnly { delta } => Obj::new().str("delta", delta).str("itemId", item_id),
        AssistantData::TextOnly { text } => Obj::new().str("text", text).str("itemId", item_id),
        AssistantData::Replace => {
            Obj::new().str("itemId", item_id).str("text", "").str("delta", "").bool("replace", true)
        }
    }
    .finish();
    Obj::with_capacity(data.len() + 200)
        .str("runId", r.run_id)
        .str("stream", "assistant")
        .raw("data", &data)
        .str("sessionKey", r.session_key)
        .str("agentId", r.agent_id)
        .num("seq", seq)
        .num("ts", ts)
        .finish()
}

/// Usage event: runId, sessionKey, stream, data, agentId, seq, ts.
pub fn usage(r: &RunRef<'_>, seq: u64, ts: u64, output_tokens: u64) -> String {
    Obj::new()
        .str("runId", r.run_id)
        .str("sessionKey", r.session_key)
        .str("stream", "usage")
        .obj("data", Obj::new().num("outputTokens", output_tokens))
        .str("agentId", r.agent_id)
        .num("seq", seq)
        .num("ts", ts)
        .finish()
}

/// Retry notice: runId, sessionKey, stream:"run_status", data, agentId, seq, ts (`ws-agent-upstream-500.jsonl`).
pub fn run_status_retrying(
    r: &RunRef<'_>,
    seq: u64,
    ts: u64,
    retry_attempt: u64,
    max_retries: u64,
    delay_ms: u64,
) -> String {
    let secs = delay_ms.div_ceil(1000);
    let data = Obj::new()
        .str("phase", "retrying")
        .str(
            "message",
            &format!("Provider temporarily unavailable. Retrying in {secs}s ({retry_attempt}/{max_retries})."),
        )
        .num("retryAttempt", retry_attempt)
        .num("maxRetries", max_retries)
        .num("delayMs", delay_ms)
        .num("attempt", retry_attempt + 1)
        .num("maxAttempts", max_retries + 1)
        .str("reason", "server_error")
        .finish();
    Obj::new()
        .str("runId", r.run_id)
        .str("sessionKey", r.session_key)
        .str("stream", "run_status")
        .raw("data", &data)
        .str("agentId", r.agent_id)
        .num("seq", seq)
        .num("ts", ts)
        .finish()
}

fn chat_message(text: &str, ts: u64) -> String {
    Obj::with_capacity(text.len() + 96)
        .str("role", "assistant")
        .raw("content", &raw_array(&[Obj::new().str("type", "text").str("text", text).finish()]))
        .num("timestamp", ts)
        .finish()
}

fn chat_head(r: &RunRef<'_>, seq: u64, state: &str) -> Obj {
    Obj::with_capacity(256)
        .str("runId", r.run_id)
        .str("sessionKey", r.session_key)
        .str("agentId", r.agent_id)
        .num("seq", seq)
        .str("state", state)
}

/// `chat` delta: runId, sessionKey, agentId, seq, state, deltaText, [replace], message.
pub fn chat_delta(r: &RunRef<'_>, seq: u64, ts: u64, delta_text: &str, replace: bool, full_text: &str) -> String {
    let o = chat_head(r, seq, "delta").str("deltaText", delta_text);
    let o = if replace { o.bool("replace", true) } else { o };
    o.raw("message", &chat_message(full_text, ts)).finish()
}

pub fn chat_final(r: &RunRef<'_>, seq: u64, ts: u64, text: &str) -> String {
    chat_head(r, seq, "final").str("stopReason", "stop").raw("message", &chat_message(text, ts)).finish()
}

pub fn chat_error(r: &RunRef<'_>, seq: u64, f: &Failure<'_>) -> String {
    chat_head(r, seq, "error").str("errorMessage", f.message).raw("errorDetail", &error_observation(f)).finish()
}

/// `chat` aborted; `message` only when some text was produced.
pub fn chat_aborted(r: &RunRef<'_>, seq: u64, ts: u64, stop_reason: &str, text: &str) -> String {
    let o = chat_head(r, seq, "aborted").str("stopReason", stop_reason);
    if text.is_empty() {
        o.finish()
    } else {
        o.raw("message", &chat_message(text, ts)).finish()
    }
}

/// `task` upsert event (optional; `ws-agent-run.jsonl`). `state` is the execution state, `status` the task status.
#[allow(clippy::too_many_arguments)]
pub fn task_upserted(
    r: &RunRef<'_>,
    task_id: &str,
    title: &str,
    status: &str,
    state: &str,
    created_at: u64,
    updated_at: u64,
    ended_at: Option<u64>,
) -> String {
    let exec = Obj::new().str("state", state).finish();
    let task = Obj::with_capacity(512)
        .str("id", task_id)
        .str("taskId", task_id)
        .str("kind", "cli")
        .str("runtime", "cli")
        .str("status", status)
        .raw("execution", &exec)
        .str("title", title)
        .str("agentId", r.agent_id)
        .str("sessionKey", r.session_key)
        .str("childSessionKey", r.session_key)
        .bool("hasTranscript", true)
        .str("ownerKey", r.session_key)
        .str("runId", r.run_id)
        .str("sourceId", r.run_id)
        .num("createdAt", created_at)
        .num("updatedAt", updated_at)
        .num("startedAt", created_at);
    let task = match ended_at {
        Some(e) => task.num("endedAt", e).str("terminalSummary", "completed"),
        None => task,
    }
    .str("deliveryStatus", "not_applicable")
    .finish();
    Obj::new().str("action", "upserted").raw("task", &task).finish()
}

/// Token usage of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
}

fn result_json(r: &RunRef<'_>, text: &str, duration_ms: u64, u: Usage, aborted: bool, stop_reason: &str) -> String {
    let usage = Obj::new()
        .num("input", u.input)
        .num("output", u.output)
        .num("cacheRead", 0)
        .num("cacheWrite", 0)
        .num("total", u.input + u.output)
        .finish();
    let agent_meta = Obj::new()
        .str("sessionId", r.session_id)
        .str("provider", PROVIDER)
        .str("model", MODEL)
        .raw("usage", &usage)
        .finish();
    let meta = Obj::new()
        .num("durationMs", duration_ms)
        .raw("agentMeta", &agent_meta)
        .bool("aborted", aborted)
        .str("stopReason", stop_reason)
        .finish();
    let payloads = if text.is_empty() && aborted {
        "[]".to_string()
    } else {
        raw_array(&[Obj::new().str("text", text).null("mediaUrl").finish()])
    };
    Obj::with_capacity(text.len() + 400).raw("payloads", &payloads).raw("meta", &meta).finish()
}

/// Final `res` payload of a successful run.
pub fn final_ok_payload(r: &RunRef<'_>, text: &str, duration_ms: u64, u: Usage) -> String {
    Obj::with_capacity(text.len() + 512)
        .str("runId", r.run_id)
        .str("status", "ok")
        .str("summary", "completed")
        .raw("result", &result_json(r, text, duration_ms, u, false, "stop"))
        .finish()
}

/// Final `res` payload of an aborted (`stop_reason` "rpc") or timed-out ("timeout") run.
pub fn final_aborted_payload(r: &RunRef<'_>, text: &str, duration_ms: u64, u: Usage, stop_reason: &str) -> String {
    Obj::with_capacity(text.len() + 512)
        .str("runId", r.run_id)
        .str("status", "timeout")
        .str("summary", "aborted")
        .str("stopReason", stop_reason)
        .raw("result", &result_json(r, text, duration_ms, u, true, stop_reason))
        .finish()
}

/// Final `res` (ok:false) payload + error of a failed run (`ws-agent-upstream-400.jsonl`).
pub fn final_error_parts(run_id: &str, message: &str) -> (String, String) {
    let payload = Obj::new().str("runId", run_id).str("status", "error").str("summary", message).finish();
    (payload, error_shape("UNAVAILABLE", message, None))
}

/// `chat.abort` / `sessions.abort` result.
pub fn abort_result(run_ids: &[String]) -> String {
    Obj::new().bool("ok", true).bool("aborted", !run_ids.is_empty()).strs("runIds", run_ids).finish()
}

pub const MSG_UPSTREAM_400: &str = "LLM request failed: provider rejected the request schema or tool payload.";
pub const MSG_UPSTREAM_500: &str = "⚠️ demo/demo-model request failed (provider internal error, HTTP 500). This is usually temporary — try again shortly.";

pub const FAILURE_400: Failure<'static> =
    Failure { message: MSG_UPSTREAM_400, failover_reason: "format", runtime_failure_kind: "schema" };
pub const FAILURE_500: Failure<'static> =
    Failure { message: MSG_UPSTREAM_500, failover_reason: "server_error", runtime_failure_kind: "timeout" };

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
