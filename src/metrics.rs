//! Every Prometheus metric clawbridge exports, registered once in the default
//! registry (the one `prometheus::gather()` and pingora-prometheus read).
//! Label values are fixed sets chosen in code, never request data.

use std::collections::HashSet;
use std::sync::{LazyLock, RwLock};

use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

/// Buckets for whole LLM turns: tens of milliseconds to ten minutes.
const TURN_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// Buckets for gaps between streamed tokens.
const GAP_BUCKETS: &[f64] = &[0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Most distinct `agent` label values; agents beyond it count as `other`.
const MAX_AGENT_LABELS: usize = 64;

/// The agents the gateway is configured with (its file's `agents.list`)
/// and its default agent: the only `agent` label values besides `other`.
static AGENTS: LazyLock<RwLock<HashSet<String>>> = LazyLock::new(Default::default);

/// Admits `id` as an `agent` label value (bounded).
pub fn register_agent(id: &str) {
    let mut agents = AGENTS.write().unwrap_or_else(|e| e.into_inner());
    if agents.len() < MAX_AGENT_LABELS && !agents.contains(id) {
        agents.insert(id.to_string());
    }
}

/// The `agent` label for a run's agent: the agent if it is a configured
/// one, else `other`. A client can name any agent in a session key, so the
/// label never comes from the request itself.
pub fn agent_label(agent: &str) -> &str {
    if AGENTS.read().unwrap_or_else(|e| e.into_inner()).contains(agent) {
        agent
    } else {
        "other"
    }
}

macro_rules! metric {
    ($name:ident: $ty:ty = $init:expr) => {
        pub static $name: LazyLock<$ty> = LazyLock::new(|| $init.expect(concat!("register ", stringify!($name))));
    };
}

metric!(CHAT_REQUESTS: IntCounterVec = register_int_counter_vec!(
    "clawbridge_chat_requests_total",
    "Requests to the OpenAI routes clawbridge serves (api: chat, responses, models) by outcome, status class, agent and stream mode.",
    &["api", "outcome", "status_class", "agent", "stream"]
));
metric!(CHAT_DURATION: HistogramVec = register_histogram_vec!(
    "clawbridge_chat_request_duration_seconds",
    "Time from request start to the last byte of the response, per OpenAI route (api).",
    &["api", "outcome", "stream"],
    TURN_BUCKETS.to_vec()
));
metric!(TIME_TO_FIRST_TOKEN: HistogramVec = register_histogram_vec!(
    "clawbridge_chat_time_to_first_token_seconds",
    "Time from request start to the first content delta sent to the client.",
    &["agent", "stream"],
    TURN_BUCKETS.to_vec()
));
metric!(INTER_TOKEN: HistogramVec = register_histogram_vec!(
    "clawbridge_chat_inter_token_seconds",
    "Time between consecutive content deltas of one streamed completion.",
    &["agent"],
    GAP_BUCKETS.to_vec()
));
metric!(STREAMED_CHUNKS: IntCounter = register_int_counter!(
    "clawbridge_chat_streamed_chunks_total",
    "Content chunks written to streaming clients."
));
metric!(TOKENS: IntCounterVec = register_int_counter_vec!(
    "clawbridge_chat_tokens_total",
    "Tokens reported in run usage, by kind (prompt or completion).",
    &["kind", "agent"]
));
metric!(INFLIGHT_STREAMS: IntGauge = register_int_gauge!(
    "clawbridge_chat_inflight_streams",
    "Streaming chat completions currently open."
));
metric!(INFLIGHT_RUNS: IntGauge = register_int_gauge!(
    "clawbridge_chat_inflight_runs",
    "Chat completions (stream or not) waiting on a gateway run."
));
metric!(CLIENT_DISCONNECTS: IntCounterVec = register_int_counter_vec!(
    "clawbridge_client_disconnects_total",
    "Clients that went away before their completion finished, by phase.",
    &["phase"]
));
metric!(ABORTS_SENT: IntCounter = register_int_counter!(
    "clawbridge_gateway_aborts_sent_total",
    "chat.abort requests sent to the gateway."
));
metric!(AUTH_FAILURES: IntCounterVec = register_int_counter_vec!(
    "clawbridge_auth_failures_total",
    "Rejected chat requests by reason (missing, mismatch, rate_limited).",
    &["reason"]
));
metric!(PASSTHROUGH: IntCounterVec = register_int_counter_vec!(
    "clawbridge_passthrough_requests_total",
    "Requests forwarded to the gateway unchanged, by kind (http or websocket) and status class.",
    &["kind", "status_class"]
));
metric!(GATEWAY_CONNECTED: IntGauge = register_int_gauge!(
    "clawbridge_gateway_connected",
    "1 while the gateway WebSocket is authenticated with write scope, else 0."
));
metric!(GATEWAY_RUNS: IntGauge = register_int_gauge!(
    "clawbridge_gateway_runs_tracked",
    "Runs the gateway connection is demultiplexing right now (the run table)."
));
metric!(GATEWAY_RECONNECTS: IntCounter = register_int_counter!(
    "clawbridge_gateway_reconnects_total",
    "Reconnection attempts to the gateway after a link failure."
));
metric!(GATEWAY_HANDSHAKE_FAILURES: IntCounter = register_int_counter!(
    "clawbridge_gateway_handshake_failures_total",
    "Gateway connection attempts that failed before hello-ok with write scope."
));
metric!(GATEWAY_FRAMES: IntCounter = register_int_counter!(
    "clawbridge_gateway_frames_received_total",
    "Text frames received from the gateway."
));
metric!(GATEWAY_FRAMES_DROPPED: IntCounterVec = register_int_counter_vec!(
    "clawbridge_gateway_frames_dropped_total",
    "Gateway frames or run events dropped, by reason.",
    &["reason"]
));
metric!(CONFIG_RELOADS: IntCounterVec = register_int_counter_vec!(
    "clawbridge_config_reloads_total",
    "Re-reads of the gateway's config file after a change or SIGHUP, by result (ok, error).",
    &["result"]
));
metric!(GATEWAY_ROTATIONS: IntCounter = register_int_counter!(
    "clawbridge_gateway_link_rotations_total",
    "New gateway links opened because the gateway secret changed."
));
metric!(GATEWAY_PAIRING: IntGaugeVec = register_int_gauge_vec!(
    "clawbridge_gateway_pairing",
    "1 for the device pairing state of the gateway link: paired (the gateway issued a device token), pending (it asks an operator to approve the device), none (no pairing needed, or not known yet).",
    &["state"]
));
metric!(GATEWAY_INFO: IntGaugeVec = register_int_gauge_vec!(
    "clawbridge_gateway_info",
    "Always 1; the protocol and server version the current gateway link negotiated (only the current link's series).",
    &["protocol", "server_version"]
));
metric!(BUILD_INFO: IntGaugeVec = register_int_gauge_vec!(
    "clawbridge_build_info",
    "Always 1; labels carry the version.",
    &["version"]
));

/// Forces registration of every metric so the first scrape shows them all.
pub fn init() {
    BUILD_INFO.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    for m in [&*INFLIGHT_STREAMS, &*INFLIGHT_RUNS, &*GATEWAY_CONNECTED, &*GATEWAY_RUNS] {
        m.set(0);
    }
    LazyLock::force(&CHAT_REQUESTS);
    LazyLock::force(&CHAT_DURATION);
    LazyLock::force(&TIME_TO_FIRST_TOKEN);
    LazyLock::force(&INTER_TOKEN);
    LazyLock::force(&STREAMED_CHUNKS);
    LazyLock::force(&TOKENS);
    LazyLock::force(&CLIENT_DISCONNECTS);
    LazyLock::force(&ABORTS_SENT);
    LazyLock::force(&AUTH_FAILURES);
    LazyLock::force(&PASSTHROUGH);
    LazyLock::force(&GATEWAY_RECONNECTS);
    LazyLock::force(&GATEWAY_HANDSHAKE_FAILURES);
    LazyLock::force(&GATEWAY_FRAMES);
    LazyLock::force(&GATEWAY_FRAMES_DROPPED);
    LazyLock::force(&GATEWAY_ROTATIONS);
    for result in ["ok", "error"] {
        CONFIG_RELOADS.with_label_values(&[result]);
    }
    set_pairing("none");
    LazyLock::force(&GATEWAY_INFO);
}

/// The pairing states, one of them 1 at a time.
pub const PAIRING_STATES: [&str; 3] = ["paired", "pending", "none"];

/// Sets the `clawbridge_gateway_pairing` one-hot gauge.
pub fn set_pairing(state: &str) {
    for s in PAIRING_STATES {
        GATEWAY_PAIRING.with_label_values(&[s]).set(i64::from(s == state));
    }
}

/// `2xx`, `4xx`, ... for the `status_class` label.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Counts an open stream in `clawbridge_chat_inflight_streams` while alive.
pub struct InflightStream(());

impl InflightStream {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        INFLIGHT_STREAMS.inc();
        InflightStream(())
    }
}

impl Drop for InflightStream {
    fn drop(&mut self) {
        INFLIGHT_STREAMS.dec();
    }
}
