//! The gateway client as the chat layer sees it: a cheap, cloneable handle
//! that starts runs, aborts them, and reports the link state. Runs from every
//! HTTP request are multiplexed over one long-lived WebSocket owned by the
//! task in `connection.rs`; this module holds only the handle and the domain
//! types that cross the channel.

mod connection;
pub mod decode;
pub mod device;
mod dial;
pub mod frames;
mod handshake;
pub mod readiness;
mod rotation;
pub(crate) mod run_events;
pub mod run_request;

pub use run_events::RunEvents;
pub use run_request::{Attachment, ModelOverride, RunRequest};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

pub use connection::{channel, Driver, LinkHooks};
pub use dial::LinkTls;
pub use frames::{AssistantData, ErrorShape, LifecycleData, RunUsage};
pub use readiness::{LinkInfo, LinkInfoCell, NotReady, Pairing, PairingState, ServerInfo};

/// Connection settings, derived from [`crate::config::Config`]. The secret
/// is apart ([`Credentials`]): it can change while the link runs.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// `host:port`.
    pub upstream: String,
    /// `Some`: the link is `wss://`, verified (`upstream_tls`).
    pub tls: Option<LinkTls>,
    pub handshake_timeout: Duration,
    pub max_frame_bytes: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Bytes of events queued per run before the run is declared a slow reader.
    pub run_buffer_bytes: usize,
    /// The device identity presented in `connect` (`None`: device-less).
    pub device: Option<Arc<device::DeviceAuth>>,
    /// What `/readyz` and the metrics show of the current link.
    pub info: Arc<LinkInfoCell>,
}

/// What the link authenticates with. A new value (the gateway's file was
/// reloaded with another secret) makes the link re-handshake: a new link
/// is opened with it and takes new runs, while the old one finishes its own.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub kind: frames::SecretKind,
    pub secret: crate::config::Secret,
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.secret.matches(other.secret.expose().as_bytes())
    }
}

impl Credentials {
    pub fn of(file: &crate::config::GatewayFile) -> Self {
        use crate::config::AuthMode;
        let kind = match file.auth_mode {
            AuthMode::Token => frames::SecretKind::Token,
            AuthMode::Password => frames::SecretKind::Password,
            AuthMode::None => frames::SecretKind::None,
        };
        Credentials { kind, secret: file.secret.clone().unwrap_or_else(|| crate::config::Secret::new(String::new())) }
    }
}

/// What the chat layer sees of the link.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkState {
    /// Not connected yet, or reconnecting; `reason` is the last failure
    /// (typed for `/readyz`; the chat layer sees only "not ready").
    Down { reason: NotReady },
    /// Authenticated with write scope.
    Ready { default_agent: Arc<str> },
}

/// One event of one run, already demultiplexed by run id.
#[derive(Debug)]
pub enum RunEvent {
    /// First `res`: the gateway accepted the run, in this (canonical) session.
    Accepted(Box<Accepted>),
    /// First `res` was `ok:false` (bad params, unknown agent, missing scope).
    Rejected(Box<ErrorShape>),
    Assistant(Box<AssistantData>),
    /// Lifecycle `end` or `error` (other phases are not forwarded).
    Lifecycle(Box<LifecycleData>),
    /// The second, authoritative `res`.
    Finished(Box<Finish>),
    /// The link stopped the run before its end (never sent, cut, or lost).
    Cut(Box<Cut>),
}

/// Why the link stopped a run; `Display` is the sentence a client reads
/// (never a secret: built only from sizes and fixed text).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Cut {
    /// The `agent` frame is over the gateway's `maxPayload`: it was never
    /// sent (the gateway would close the whole link with 1009).
    #[error(
        "Request too large for the gateway: it is {bytes} bytes once encoded as the gateway's agent request, over the gateway's {limit}-byte frame limit"
    )]
    RequestTooLarge { bytes: usize, limit: usize },
    /// A frame for this run was over `limits.max_frame_bytes`; the frame
    /// was dropped and the run stopped, the link serves on.
    #[error(
        "the gateway sent a {bytes}-byte frame for this run, over clawbridge's {limit}-byte frame limit (limits.max_frame_bytes); the run was stopped"
    )]
    FrameTooLarge { bytes: usize, limit: usize },
    /// The client fell `limit` bytes of queued events behind.
    #[error(
        "the client read the reply too slowly: over {limit} bytes of it were waiting (limits.run_buffer_bytes); the run was stopped"
    )]
    SlowReader { limit: usize },
    /// The shared link went down; the text says why, in words fit for a client.
    #[error("{0}")]
    LinkLost(Arc<str>),
}

impl Cut {
    /// Fixed label for the outcome metric and the access log.
    pub fn label(&self) -> &'static str {
        match self {
            Cut::RequestTooLarge { .. } => "request_too_large",
            Cut::FrameTooLarge { .. } => "frame_too_large",
            Cut::SlowReader { .. } => "slow_reader",
            Cut::LinkLost(_) => "gateway_lost",
        }
    }
}

/// The canonical session and agent of an accepted run.
#[derive(Debug, Default)]
pub struct Accepted {
    pub session_key: Option<String>,
    pub agent_id: Option<String>,
}

/// The final `res` of a run, reduced to what a completion needs.
#[derive(Debug, Default)]
pub struct Finish {
    pub ok: bool,
    /// `ok`, `error` or `timeout` (aborted).
    pub status: String,
    /// `payloads[].text`: non-empty ones joined with `"\n\n"`; `None` when
    /// no payload carried text at all.
    pub text: Option<String>,
    pub usage: Option<RunUsage>,
    pub stop_reason: Option<String>,
    pub error: Option<ErrorShape>,
}

pub(crate) enum Command {
    Start { run_id: Arc<str>, frame: String, events: run_events::RunSender },
    Abort { run_id: Arc<str>, session_key: Arc<str> },
    Call { id: Arc<str>, frame: String, reply: CallReply },
}

/// Where the answer of a call goes: its `payload` as raw JSON.
pub(crate) type CallReply = oneshot::Sender<Result<String, CallError>>;

/// Why a call has no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The gateway answered `ok:false`.
    #[error("gateway refused the call: {} {}", .0.code, .0.message)]
    Gateway(ErrorShape),
    #[error("{0}")]
    LinkLost(Arc<str>),
    /// Too many calls waiting, or a frame over the gateway's limit.
    #[error("call not sent: too many calls waiting or request too large")]
    Refused,
    #[error("the gateway did not answer within {0:?}")]
    Timeout(Duration),
}

/// Cloneable handle to the connection task.
#[derive(Clone)]
pub struct Gateway {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<LinkState>,
    run_buffer_bytes: usize,
}

impl Gateway {
    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Registers a run and sends its `agent` frame. Events arrive on the
    /// returned receiver; a closed receiver without [`RunEvent::Finished`]
    /// means the run was dropped (link lost or the reader fell behind).
    pub async fn start(&self, run_id: Arc<str>, frame: String) -> Option<RunEvents> {
        let (tx, rx) = run_events::channel(self.run_buffer_bytes);
        self.commands.send(Command::Start { run_id, frame, events: tx }).await.ok()?;
        Some(rx)
    }

    /// Calls a gateway method (`agents.list`, `models.list` …) on the link
    /// and waits up to `wait` for its answer, decoded as `T`.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: &impl serde::Serialize,
        wait: Duration,
    ) -> Result<T, CallError> {
        let id: Arc<str> = Arc::from(format!("call-{}", uuid::Uuid::new_v4()));
        let frame = frames::request(&id, method, params);
        let (reply, answer) = oneshot::channel();
        let lost = || CallError::LinkLost("gateway task stopped".into());
        self.commands.send(Command::Call { id, frame, reply }).await.map_err(|_| lost())?;
        let raw = match tokio::time::timeout(wait, answer).await {
            Err(_) => return Err(CallError::Timeout(wait)),
            Ok(Err(_)) => return Err(lost()),
            Ok(Ok(answer)) => answer?,
        };
        serde_json::from_str(&raw).map_err(|e| {
            CallError::Gateway(ErrorShape { code: "DECODE".into(), message: format!("{method} answer: {e}") })
        })
    }

    /// Sends `chat.abort` for the run and forgets it. Never blocks the caller:
    /// used from drop paths.
    pub fn abort(&self, run_id: Arc<str>, session_key: Arc<str>) {
        let cmd = Command::Abort { run_id, session_key };
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.commands.try_send(cmd) {
            let commands = self.commands.clone();
            tokio::spawn(async move {
                let _ = commands.send(cmd).await;
            });
        }
    }
}
