//! The task that owns the gateway WebSocket: connect, handshake as the
//! gateway's own backend client, demultiplex every run's frames by run id,
//! watch the tick, and reconnect with backoff. Handlers talk to it only
//! through channels, so the run table needs no lock.
//!
//! One request must not break the link every run shares: an `agent` frame
//! over the gateway's `maxPayload` is never sent (the gateway would close
//! the link with 1009), and an inbound frame over `limits.max_frame_bytes`
//! stops only its own run. The socket itself reads frames up to
//! [`transport_bound`]; only a frame over that resets the link.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::{self, protocol::frame::CloseFrame, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::decode::{self, AgentData, Payload};
use super::frames::{self, AgentResPayload};
use super::handshake;
use super::readiness::{NotReady, ServerInfo};
use super::rotation::{self, Rotation};
use super::run_events::{RunSender, SendError};
use super::{CallError, CallReply, Command, Credentials, Cut, Finish, Gateway, GatewaySettings, LinkState, RunEvent};
use crate::metrics;

pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Retries while the gateway waits for an operator to approve the device:
/// from 1 s, doubling, to 4 s (the gateway reuses the pending request).
const PAIRING_RETRY_MIN: Duration = Duration::from_secs(1);
const PAIRING_RETRY_MAX: Duration = Duration::from_secs(4);

/// Most `chat.abort`s kept for runs lost with a link (the oldest go first).
const MAX_LOST_ABORTS: usize = 4096;

/// The gateway's frame limit when `hello-ok` announces none: 25 MiB, its
/// `MAX_PAYLOAD_BYTES` (2026.9.6).
pub const DEFAULT_MAX_PAYLOAD: usize = 25 * 1024 * 1024;

/// The largest frame the socket reads: twice `limits.max_frame_bytes`.
/// A frame up to this is read whole and, when over `max_frame_bytes`,
/// dropped, stopping only its run; tungstenite cannot skip a frame without
/// buffering it, so a larger one ends the link (every run on it is told so).
pub fn transport_bound(max_frame_bytes: usize) -> usize {
    max_frame_bytes.saturating_mul(2)
}

/// The connection task, not yet running; see [`channel`].
pub struct Driver {
    settings: GatewaySettings,
    hooks: LinkHooks,
    commands: mpsc::Receiver<Command>,
    state: watch::Sender<LinkState>,
}

/// How the link follows the gateway's file when it is reloaded.
pub struct LinkHooks {
    /// The secret to authenticate with; a new value makes the link
    /// re-handshake (see [`serve`]).
    pub credentials: watch::Receiver<Credentials>,
    /// Woken when the gateway says its auth changed (close 4001, or a
    /// refused `connect`), so the file is re-read at once, not at the next poll.
    pub reread: Arc<Notify>,
}

impl Driver {
    /// Runs the connection until every [`Gateway`] handle is dropped.
    pub async fn run(self) {
        run(self.settings, self.hooks, self.commands, self.state).await
    }
}

/// Creates the handle and the task that serves it. The handle works from
/// any runtime; the driver runs on whichever runtime calls `Driver::run`.
pub fn channel(settings: GatewaySettings, hooks: LinkHooks) -> (Gateway, Driver) {
    let (commands, rx) = mpsc::channel(4096);
    let (state_tx, state) = watch::channel(LinkState::Down { reason: "not connected yet".into() });
    let run_buffer_bytes = settings.run_buffer_bytes;
    let handle = Gateway { commands, state, run_buffer_bytes };
    (handle, Driver { settings, hooks, commands: rx, state: state_tx })
}

/// What the task is waiting on, by request id: a run's frames, or the
/// one answer of a call (`agents.list` and the like).
pub(super) enum Slot {
    Run(RunSlot),
    Call(CallReply),
}

/// A run the task is tracking.
pub(super) struct RunSlot {
    events: RunSender,
    accepted: bool,
    /// The request is gone and the run must be aborted, but the gateway has
    /// not named the run's session yet (2026.5.x names it only in the run's
    /// events, and refuses an abort with any other key): the abort is sent
    /// when it does ([`on_frame`]). Holds the request's key, the fallback
    /// if the link is lost first.
    abort_pending: Option<Arc<str>>,
}

impl Slot {
    fn run(&self) -> Option<&RunSlot> {
        match self {
            Slot::Run(r) => Some(r),
            Slot::Call(_) => None,
        }
    }

    fn run_mut(&mut self) -> Option<&mut RunSlot> {
        match self {
            Slot::Run(r) => Some(r),
            Slot::Call(_) => None,
        }
    }
}

/// Most calls waiting for their answer on one link; more are refused.
const MAX_CALLS: usize = 1024;

pub(super) type Runs = HashMap<Arc<str>, Slot>;

pub(super) struct Link {
    pub(super) ws: Ws,
    pub(super) tick: Duration,
    /// `policy.maxPayload` from `hello-ok`: the largest frame the gateway reads.
    max_payload: usize,
    /// The protocol and server version `hello-ok` announced.
    pub(super) server: ServerInfo,
    /// The gateway issued this device a token on this link.
    pub(super) paired: bool,
}

/// Why a link ended: `reason` for logs and readiness, `client` for the
/// runs it carried (fixed words and numbers only).
pub(super) struct Down {
    pub(super) reason: NotReady,
    pub(super) client: Arc<str>,
}

impl Down {
    const LOST: &'static str = "upstream gateway connection lost";

    pub(super) fn new(reason: impl Into<NotReady>) -> Self {
        Down { reason: reason.into(), client: Arc::from(Self::LOST) }
    }

    pub(super) fn with_client(reason: impl Into<NotReady>, client: String) -> Self {
        Down { reason: reason.into(), client: Arc::from(format!("{}: {client}", Self::LOST)) }
    }

    /// The gateway closed the socket (`frame`: its close frame, if any).
    pub(super) fn closed(frame: Option<CloseFrame>) -> Self {
        let code = frame.as_ref().map(|c| u16::from(c.code));
        let frame_reason = frame.as_ref().map(|c| c.reason.to_string());
        let reason = format!(
            "gateway closed the socket: {}",
            frame.map(|c| format!("{} {}", u16::from(c.code), c.reason)).unwrap_or_default()
        );
        let device_removed = frame_reason.as_deref() == Some(DEVICE_REMOVED);
        match code {
            Some(AUTH_CHANGED) if device_removed => Down::with_client(
                reason,
                "the gateway closed the link of clawbridge's device (WebSocket close code 4001 \"device removed\": the device was revoked or removed, or its token rotated), so the run was stopped; retry it".into(),
            ),
            Some(AUTH_CHANGED) => Down::with_client(
                reason,
                "the gateway's auth changed and it closed the link this run was on (WebSocket close code 4001 \"gateway auth changed\"), so the run was stopped; retry it".into(),
            ),
            Some(code) => Down::with_client(reason, format!("the gateway closed the link (WebSocket close code {code})")),
            None => Down::new(reason),
        }
    }

    /// Tells every run in `runs` it was lost.
    pub(super) fn cut_all(&self, runs: &mut Runs) {
        for (_, slot) in runs.drain() {
            match slot {
                Slot::Run(RunSlot { events, .. }) => {
                    let _ = events.send(RunEvent::Cut(Box::new(Cut::LinkLost(self.client.clone()))));
                }
                Slot::Call(reply) => {
                    let _ = reply.send(Err(CallError::LinkLost(self.client.clone())));
                }
            }
        }
    }
}

/// The close code the gateway (2026.9.6) sends to links that authenticated
/// with a shared secret that is no longer its secret.
pub(super) const AUTH_CHANGED: u16 = 4001;
/// The reason of the 4001 close the gateway sends when an operator revokes
/// or removes this device.
pub(super) const DEVICE_REMOVED: &str = "device removed";

async fn run(
    settings: GatewaySettings,
    mut hooks: LinkHooks,
    mut commands: mpsc::Receiver<Command>,
    state: watch::Sender<LinkState>,
) {
    let mut runs: Runs = HashMap::new();
    // `chat.abort`s for runs lost with a link, sent on the next one.
    let mut lost: VecDeque<(Arc<str>, Arc<str>)> = VecDeque::new();
    let mut backoff = settings.reconnect_min;
    // The pairing request last logged in full.
    let mut pairing_logged: Option<Option<String>> = None;
    loop {
        metrics::GATEWAY_CONNECTED.set(0);
        let creds = hooks.credentials.borrow_and_update().clone();
        let down = match connect(&settings, &creds).await {
            Ok((link, default_agent)) => {
                tracing::info!(
                    upstream = %settings.upstream,
                    protocol = link.server.protocol,
                    server_version = %link.server.version,
                    device_paired = link.paired,
                    tick_ms = link.tick.as_millis() as u64,
                    max_payload = link.max_payload,
                    "gateway connected"
                );
                settings.info.connected(link.server.clone(), link.paired);
                metrics::GATEWAY_CONNECTED.set(1);
                backoff = settings.reconnect_min;
                metrics::register_agent(&default_agent);
                state.send_replace(LinkState::Ready { default_agent });
                let mut ctx =
                    Serving { hooks: &mut hooks, commands: &mut commands, settings: &settings, state: &state };
                match serve(link, creds, &mut ctx, &mut runs, &mut lost).await {
                    None => return, // every handle is gone: the process is exiting
                    Some(down) => down,
                }
            }
            Err(reason) => {
                metrics::GATEWAY_HANDSHAKE_FAILURES.inc();
                if reason.rereads() {
                    // Perhaps the secret changed and the file was not polled yet.
                    hooks.reread.notify_one();
                }
                Down::new(reason)
            }
        };
        settings.info.down(&down.reason);
        match &down.reason {
            NotReady::PairingRequired(p) => {
                // Printed whole once per request; the retries stay quiet.
                if pairing_logged.as_ref() != Some(&p.request_id) {
                    tracing::warn!(
                        upstream = %settings.upstream,
                        device_id = %p.device_id,
                        request_id = p.request_id.as_deref().unwrap_or("unknown"),
                        approve = %p.approve_command(),
                        "the gateway requires pairing: approve this device on the gateway with `{}`; clawbridge retries and becomes ready once approved",
                        p.approve_command()
                    );
                    pairing_logged = Some(p.request_id.clone());
                } else {
                    tracing::debug!(
                        request_id = p.request_id.as_deref().unwrap_or("unknown"),
                        "still waiting for pairing approval"
                    );
                }
                backoff = backoff.max(PAIRING_RETRY_MIN);
            }
            reason => {
                pairing_logged = None;
                tracing::warn!(upstream = %settings.upstream, %reason, "gateway link down");
            }
        }
        metrics::GATEWAY_CONNECTED.set(0);
        state.send_replace(LinkState::Down { reason: down.reason.clone() });
        // Aborts waiting for the session's name go out on the next link, with the request's key.
        for (run_id, slot) in &runs {
            if let Some(key) = slot.run().and_then(|r| r.abort_pending.as_ref()) {
                lost.push_back((run_id.clone(), key.clone()));
            }
        }
        down.cut_all(&mut runs);
        metrics::GATEWAY_RUNS.set(0);
        // While down, refuse new runs at once instead of queueing them.
        let deadline = Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                // A new secret: try it now rather than after the backoff.
                Ok(()) = hooks.credentials.changed() => break,
                cmd = commands.recv() => match cmd {
                    None => return,
                    Some(Command::Start { events, .. }) => {
                        let _ = events.send(RunEvent::Cut(Box::new(Cut::LinkLost(down.client.clone()))));
                    }
                    Some(Command::Call { reply, .. }) => {
                        let _ = reply.send(Err(CallError::LinkLost(down.client.clone())));
                    }
                    // A run lost with the link may still be running on the
                    // gateway: abort it once a link is back.
                    Some(Command::Abort { run_id, session_key }) => {
                        if lost.len() >= MAX_LOST_ABORTS {
                            lost.pop_front();
                        }
                        lost.push_back((run_id, session_key));
                    }
                },
            }
        }
        backoff = match &down.reason {
            NotReady::PairingRequired(_) => (backoff * 2).min(PAIRING_RETRY_MAX),
            _ => (backoff * 2).min(settings.reconnect_max),
        };
        metrics::GATEWAY_RECONNECTS.inc();
    }
}

/// What `serve` works with besides the link and its runs.
struct Serving<'a> {
    hooks: &'a mut LinkHooks,
    commands: &'a mut mpsc::Receiver<Command>,
    settings: &'a GatewaySettings,
    state: &'a watch::Sender<LinkState>,
}

/// Opens the socket and completes `connect`; returns the link and the
/// gateway's default agent id.
pub(super) async fn connect(settings: &GatewaySettings, creds: &Credentials) -> Result<(Link, Arc<str>), NotReady> {
    let fut = async {
        let mut ws = super::dial::dial(settings).await?;
        let hello = handshake::handshake(&mut ws, creds, settings.device.as_ref()).await?;
        let link = Link {
            ws,
            tick: Duration::from_millis(hello.tick_ms.max(100)),
            max_payload: hello.max_payload.unwrap_or(DEFAULT_MAX_PAYLOAD),
            server: hello.server,
            paired: hello.paired,
        };
        Ok::<_, NotReady>((link, hello.default_agent))
    };
    match timeout(settings.handshake_timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(NotReady::from(format!(
            "gateway handshake timed out after {} ms",
            settings.handshake_timeout.as_millis()
        ))),
    }
}

/// Serves one live link until it dies. Returns `None` when every handle is
/// dropped, else why the link ended. When the secret changes, a link with
/// the new one is opened beside it and takes over (`rotation`).
async fn serve(
    mut link: Link,
    mut creds: Credentials,
    cx: &mut Serving<'_>,
    runs: &mut Runs,
    lost: &mut VecDeque<(Arc<str>, Arc<str>)>,
) -> Option<Down> {
    let settings = cx.settings;
    // `chat.abort` frames carry a session key that already fit in the run's
    // `agent` frame, so they need no size check.
    for (run_id, session_key) in lost.drain(..) {
        let frame = frames::abort_request(&format!("abort-{run_id}"), &session_key, &run_id);
        metrics::ABORTS_SENT.inc();
        if let Err(e) = link.ws.send(Message::Text(frame.into())).await {
            return Some(Down::new(format!("send chat.abort: {e}")));
        }
    }
    let watchdog = sleep(link.tick * 2);
    tokio::pin!(watchdog);
    let mut rot = Rotation::default();
    let down = loop {
        let silence = link.tick * 2;
        let retry_at = rot.retry_at;
        let retire_at = rot.retiring.as_ref().map(|r| r.deadline);
        tokio::select! {
            biased;
            msg = link.ws.next() => {
                watchdog.as_mut().reset(Instant::now() + silence);
                match msg {
                    Some(Ok(Message::Text(text))) if text.len() > settings.max_frame_bytes => {
                        on_oversized(&text, runs, settings.max_frame_bytes);
                    }
                    Some(Ok(Message::Text(text))) => {
                        if let Some(frame) = on_frame(&text, runs) {
                            if let Err(e) = link.ws.send(Message::Text(frame.into())).await {
                                break Some(Down::new(format!("send chat.abort: {e}")));
                            }
                        }
                    }
                    Some(Ok(Message::Close(c))) => {
                        if c.as_ref().is_some_and(|c| u16::from(c.code) == AUTH_CHANGED) {
                            cx.hooks.reread.notify_one();
                        }
                        break Some(Down::closed(c));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(tungstenite::Error::Capacity(e))) => {
                        metrics::GATEWAY_FRAMES_DROPPED.with_label_values(&["oversized"]).inc();
                        let bound = transport_bound(settings.max_frame_bytes);
                        break Some(Down::with_client(
                            format!("gateway frame over the {bound}-byte transport bound (2 x limits.max_frame_bytes): {e}; resetting the link"),
                            format!("the gateway sent a frame over clawbridge's {bound}-byte transport limit (2 x limits.max_frame_bytes), so the shared link was reset"),
                        ));
                    }
                    Some(Err(e)) => break Some(Down::new(format!("gateway socket error: {e}"))),
                    None => break Some(Down::new("gateway closed the socket")),
                }
            }
            msg = rotation::next_frame(&mut rot.retiring), if rot.retiring.is_some() => {
                rot.on_retiring_frame(msg, settings.max_frame_bytes).await;
            }
            cmd = cx.commands.recv() => match cmd {
                None => return None,
                Some(Command::Start { run_id, frame, events }) => {
                    // The gateway weighs the UTF-8 bytes of the frame against its
                    // `maxPayload` and closes the whole link (1009) when over.
                    if frame.len() > link.max_payload {
                        tracing::warn!(run_id = %run_id, bytes = frame.len(), max_payload = link.max_payload, "agent request over the gateway's frame limit; not sent");
                        let _ = events.send(RunEvent::Cut(Box::new(Cut::RequestTooLarge { bytes: frame.len(), limit: link.max_payload })));
                        continue;
                    }
                    if let Err(e) = link.ws.send(Message::Text(frame.into())).await {
                        let down = Down::new(format!("send agent request: {e}"));
                        let _ = events.send(RunEvent::Cut(Box::new(Cut::LinkLost(down.client.clone()))));
                        break Some(down);
                    }
                    runs.insert(run_id, Slot::Run(RunSlot { events, accepted: false, abort_pending: None }));
                }
                Some(Command::Call { id, frame, reply }) => {
                    let calls = runs.values().filter(|s| matches!(s, Slot::Call(_))).count();
                    if calls >= MAX_CALLS || frame.len() > link.max_payload {
                        let _ = reply.send(Err(CallError::Refused));
                        continue;
                    }
                    if let Err(e) = link.ws.send(Message::Text(frame.into())).await {
                        let down = Down::new(format!("send call: {e}"));
                        let _ = reply.send(Err(CallError::LinkLost(down.client.clone())));
                        break Some(down);
                    }
                    runs.insert(id, Slot::Call(reply));
                }
                Some(Command::Abort { run_id, session_key }) => {
                    // Not named yet (hung up before the accept, or before the
                    // first event on 2026.5.x): abort once the gateway names it.
                    let unnamed = runs.get_mut(&run_id).and_then(Slot::run_mut).filter(|s| s.events.session_key().is_none());
                    if let Some(slot) = unnamed {
                        slot.abort_pending = Some(session_key);
                        continue;
                    }
                    let frame = frames::abort_request(&format!("abort-{run_id}"), &session_key, &run_id);
                    metrics::ABORTS_SENT.inc();
                    // A run of the old link is aborted where it runs.
                    if rot.abort_retiring(&run_id, &frame).await {
                        continue;
                    }
                    runs.remove(&run_id);
                    if let Err(e) = link.ws.send(Message::Text(frame.into())).await {
                        break Some(Down::new(format!("send chat.abort: {e}")));
                    }
                }
            },
            Ok(()) = cx.hooks.credentials.changed() => {
                let next = cx.hooks.credentials.borrow_and_update().clone();
                if next == creds {
                    rot.cancel();
                } else {
                    tracing::info!(upstream = %settings.upstream, "gateway secret changed: opening a link with the new secret beside the current one");
                    rot.start(settings, next);
                }
            }
            (next, result) = rotation::handshake(&mut rot.pending), if rot.pending.is_some() => match result {
                Ok((new_link, default_agent)) => {
                    let old = std::mem::replace(&mut link, new_link);
                    creds = next;
                    watchdog.as_mut().reset(Instant::now() + link.tick * 2);
                    let moved = runs.len();
                    rot.retire(old, std::mem::take(runs));
                    metrics::GATEWAY_ROTATIONS.inc();
                    settings.info.connected(link.server.clone(), link.paired);
                    metrics::register_agent(&default_agent);
                    cx.state.send_replace(LinkState::Ready { default_agent });
                    tracing::info!(
                        upstream = %settings.upstream,
                        runs_on_old_link = moved,
                        "gateway link re-authenticated with the new secret; new runs use it, runs in flight finish on the old link"
                    );
                }
                Err(reason) => {
                    tracing::warn!(%reason, "handshake with the new secret failed (the gateway may not have applied it yet); the current link serves on, retrying");
                    rot.retry_at = Some(Instant::now() + rotation::RETRY);
                }
            },
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                rot.retry_at = None;
                let latest = cx.hooks.credentials.borrow().clone();
                if latest != creds {
                    rot.start(settings, latest);
                }
            }
            _ = tokio::time::sleep_until(retire_at.unwrap_or_else(Instant::now)), if retire_at.is_some() => {
                rot.retiring_silent();
            }
            _ = &mut watchdog => {
                let ms = silence.as_millis();
                break Some(Down::with_client(
                    format!("no frame from the gateway for {ms} ms (2 tick intervals)"),
                    format!("no frame from the gateway for {ms} ms"),
                ));
            }
        }
        metrics::GATEWAY_RUNS.set((runs.len() + rot.retiring_runs()) as i64);
    };
    // Runs still on the old link share the fate of the current one.
    if let Some(old) = rot.retiring.take() {
        runs.extend(old.runs);
    }
    down
}

/// Routes one text frame to its run. Frames for other clients' runs are
/// normal (the gateway broadcasts every run to every operator) and ignored.
/// Returns a `chat.abort` to send when the frame named the session of a run
/// whose abort was waiting for it.
pub(super) fn on_frame(text: &str, runs: &mut Runs) -> Option<String> {
    metrics::GATEWAY_FRAMES.inc();
    // One pass: another client's run (the gateway broadcasts all of them)
    // has its `data` skipped, not decoded.
    let frame = match decode::decode(text, &|run| runs.contains_key(run)) {
        Ok(f) => f,
        Err(e) => {
            metrics::GATEWAY_FRAMES_DROPPED.with_label_values(&["malformed"]).inc();
            tracing::warn!(error = %e, len = text.len(), "dropping malformed gateway frame");
            return None;
        }
    };
    match (frame.kind.as_ref(), frame.payload) {
        ("event", Payload::Agent(ev)) => {
            // One lookup: another client's run (the gateway broadcasts them all) stops here.
            let slot = runs.get(ev.run_id.as_ref()).and_then(Slot::run)?;
            // The gateway's name for the run's session, which its aborts need.
            if let Some(key) = ev.session_key.as_deref() {
                slot.events.name_session(key);
            }
            if slot.abort_pending.is_some() {
                return pending_abort(runs, &ev.run_id);
            }
            let event = match ev.data {
                AgentData::Assistant(d) => RunEvent::Assistant(d),
                AgentData::Lifecycle(d) if matches!(d.phase.as_str(), "end" | "error" | "finishing") => {
                    RunEvent::Lifecycle(d)
                }
                _ => return None,
            };
            deliver(runs, &ev.run_id, event);
        }
        ("res", payload) => {
            let id = frame.id.as_deref()?;
            let slot = match runs.get_mut(id)? {
                Slot::Run(slot) => slot,
                Slot::Call(_) => {
                    let Some(Slot::Call(reply)) = runs.remove(id) else { unreachable!() };
                    let answer = match (frame.ok, payload) {
                        (Some(true), Payload::Raw(p)) => Ok(p.get().to_string()),
                        (Some(true), _) => Ok("null".to_string()),
                        _ => Err(CallError::Gateway(frame.error.unwrap_or_default())),
                    };
                    let _ = reply.send(answer);
                    return None;
                }
            };
            let payload: Option<AgentResPayload> = match payload {
                Payload::Raw(p) => serde_json::from_str(p.get()).ok(),
                _ => None,
            };
            let status = payload.as_ref().map(|p| p.status.as_str()).unwrap_or("");
            if frame.ok == Some(true) && !slot.accepted && (status == "accepted" || status == "in_flight") {
                slot.accepted = true;
                let p = payload.unwrap_or_else(empty_payload);
                // 2026.5.12+ name the canonical session here; older releases only in events.
                if let Some(key) = p.session_key.as_deref() {
                    slot.events.name_session(key);
                }
                if slot.abort_pending.is_some() {
                    return pending_abort(runs, id);
                }
                let event =
                    RunEvent::Accepted(Box::new(super::Accepted { session_key: p.session_key, agent_id: p.agent_id }));
                deliver(runs, id, event);
                return None;
            }
            let was_accepted = slot.accepted;
            let Some(Slot::Run(RunSlot { events, .. })) = runs.remove(id) else { unreachable!() };
            let event = if frame.ok != Some(true) && !was_accepted && payload.is_none() {
                RunEvent::Rejected(Box::new(frame.error.unwrap_or_default()))
            } else {
                RunEvent::Finished(Box::new(finish(frame.ok == Some(true), payload, frame.error)))
            };
            let _ = events.send(event);
        }
        _ => {}
    }
    None
}

/// The `chat.abort` of a run whose abort waited for the gateway to name its
/// session, if it has now; the run is forgotten then. Until then the slot is
/// kept (its request is gone: nothing is delivered) until the run ends.
fn pending_abort(runs: &mut Runs, run_id: &str) -> Option<String> {
    let key = runs.get(run_id)?.run()?.events.session_key()?;
    runs.remove(run_id);
    metrics::ABORTS_SENT.inc();
    tracing::debug!(run_id = %run_id, "the gateway named the run's session: sending its abort");
    Some(frames::abort_request(&format!("abort-{run_id}"), &key, run_id))
}

/// A frame over `limits.max_frame_bytes` (and within the transport bound):
/// dropped; if it is an `agent` event or a `res` of one of this link's runs,
/// that run is stopped with an error saying so. Only this rare path scans
/// the frame for its run id; `data` is skipped, not decoded.
pub(super) fn on_oversized(text: &str, runs: &mut Runs, limit: usize) {
    metrics::GATEWAY_FRAMES.inc();
    metrics::GATEWAY_FRAMES_DROPPED.with_label_values(&["oversized"]).inc();
    let run = match decode::decode(text, &|_| false) {
        Ok(f) => match (f.kind.as_ref(), f.payload) {
            ("event", Payload::Agent(ev)) if matches!(ev.stream.as_ref(), "assistant" | "lifecycle") => Some(ev.run_id),
            ("res", _) => f.id,
            _ => None,
        },
        Err(_) => None,
    };
    let slot = run.as_deref().and_then(|id| runs.remove(id).map(|slot| (id, slot)));
    match slot {
        Some((run_id, Slot::Run(RunSlot { events, .. }))) => {
            tracing::warn!(run_id = %run_id, bytes = text.len(), limit, "gateway frame over limits.max_frame_bytes; stopping its run");
            let _ = events.send(RunEvent::Cut(Box::new(Cut::FrameTooLarge { bytes: text.len(), limit })));
        }
        Some((_, Slot::Call(reply))) => {
            let _ = reply.send(Err(CallError::Refused));
        }
        None => tracing::warn!(bytes = text.len(), limit, "dropping a gateway frame over limits.max_frame_bytes"),
    }
}

/// Hands an event to its run; a reader that fell behind is cut loose and
/// its run aborted, so one slow client cannot stall the shared link.
fn deliver(runs: &mut Runs, run_id: &str, event: RunEvent) {
    let Some(Slot::Run(RunSlot { events, .. })) = runs.get(run_id) else { return };
    match events.send(event) {
        Ok(()) => {}
        Err(SendError::Closed) => {
            runs.remove(run_id);
        }
        Err(SendError::OverLimit) => {
            let Some(Slot::Run(RunSlot { events, .. })) = runs.remove(run_id) else { return };
            metrics::GATEWAY_FRAMES_DROPPED.with_label_values(&["slow_reader"]).inc();
            tracing::warn!(run_id = %run_id, "run reader fell behind; dropping the run");
            // Terminal events always fit. The session key is unknown here;
            // the handler, told why, sends the abort itself.
            let limit = events.limit();
            let _ = events.send(RunEvent::Cut(Box::new(Cut::SlowReader { limit })));
        }
    }
}

fn empty_payload() -> AgentResPayload {
    AgentResPayload { status: String::new(), stop_reason: None, session_key: None, agent_id: None, result: None }
}

fn finish(ok: bool, payload: Option<AgentResPayload>, error: Option<frames::ErrorShape>) -> Finish {
    let payload = payload.unwrap_or_else(empty_payload);
    let (text, usage, meta_stop) = match payload.result {
        Some(result) => {
            // `resolveAssistantResultText`: no string text at all is "none",
            // otherwise the non-empty texts joined by a blank line.
            let texts: Vec<&str> = result.payloads.iter().filter_map(|p| p.text.as_deref()).collect();
            let text = (!texts.is_empty())
                .then(|| texts.iter().filter(|t| !t.is_empty()).copied().collect::<Vec<_>>().join("\n\n"));
            let meta = result.meta.unwrap_or_default();
            let usage = meta.agent_meta.and_then(|a| a.usage());
            (text, usage, meta.stop_reason)
        }
        None => (None, None, None),
    };
    Finish { ok, status: payload.status, text, usage, stop_reason: meta_stop.or(payload.stop_reason), error }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026.5.7's accepted `res` has no `sessionKey`: the run's key is the
    /// one its `agent` events carry (measured: `agent:main:probe-d7f4a7` for
    /// a request key `Probe-d7f4a7`), and that is what its abort must use.
    #[test]
    fn the_session_key_comes_from_the_accept_or_the_first_event() {
        let mut runs: Runs = HashMap::new();
        let (tx, rx) = super::super::run_events::channel(1 << 20);
        runs.insert(Arc::from("r1"), Slot::Run(RunSlot { events: tx, accepted: false, abort_pending: None }));
        on_frame(
            r#"{"type":"res","id":"r1","ok":true,"payload":{"runId":"r1","status":"accepted","acceptedAt":1}}"#,
            &mut runs,
        );
        assert_eq!(rx.session_key(), None, "2026.5.7: no key in the accept");
        on_frame(
            r#"{"type":"event","event":"agent","payload":{"runId":"r1","stream":"lifecycle","data":{"phase":"start"},"sessionKey":"agent:main:probe-d7f4a7"}}"#,
            &mut runs,
        );
        on_frame(
            r#"{"type":"event","event":"agent","payload":{"runId":"other","stream":"lifecycle","data":{"phase":"start"},"sessionKey":"agent:main:x"}}"#,
            &mut runs,
        );
        assert_eq!(rx.session_key().as_deref(), Some("agent:main:probe-d7f4a7"));

        // 2026.9.6 names it in the accept already.
        let (tx, rx) = super::super::run_events::channel(1 << 20);
        runs.insert(Arc::from("r2"), Slot::Run(RunSlot { events: tx, accepted: false, abort_pending: None }));
        on_frame(
            r#"{"type":"res","id":"r2","ok":true,"payload":{"runId":"r2","sessionKey":"agent:main:probe-76d8cc","agentId":"main","status":"accepted"}}"#,
            &mut runs,
        );
        assert_eq!(rx.session_key().as_deref(), Some("agent:main:probe-76d8cc"));
    }

    /// A request gone before the gateway named its run's session (2026.5.7:
    /// the run queued behind another of the same session has no event yet):
    /// the abort waits for the name, then goes out with it.
    #[test]
    fn an_abort_waits_for_the_session_name() {
        let mut runs: Runs = HashMap::new();
        let (tx, rx) = super::super::run_events::channel(1 << 20);
        runs.insert(
            Arc::from("r1"),
            Slot::Run(RunSlot { events: tx, accepted: false, abort_pending: Some(Arc::from("Probe-1")) }),
        );
        drop(rx); // the request is gone
        let accept = r#"{"type":"res","id":"r1","ok":true,"payload":{"runId":"r1","status":"accepted"}}"#;
        assert_eq!(on_frame(accept, &mut runs), None);
        assert!(runs.contains_key("r1"), "kept until the session is named");
        let start = r#"{"type":"event","event":"agent","payload":{"runId":"r1","stream":"lifecycle","data":{"phase":"start"},"sessionKey":"agent:main:probe-1"}}"#;
        let frame = on_frame(start, &mut runs).expect("the abort, now");
        assert_eq!(frame, frames::abort_request("abort-r1", "agent:main:probe-1", "r1"));
        assert!(runs.is_empty());

        // Named in the accept (2026.9.6): the abort goes out with it.
        let (tx, _rx) = super::super::run_events::channel(1 << 20);
        runs.insert(
            Arc::from("r2"),
            Slot::Run(RunSlot { events: tx, accepted: false, abort_pending: Some(Arc::from("k")) }),
        );
        let accept = r#"{"type":"res","id":"r2","ok":true,"payload":{"runId":"r2","sessionKey":"agent:main:k","status":"accepted"}}"#;
        assert_eq!(on_frame(accept, &mut runs), Some(frames::abort_request("abort-r2", "agent:main:k", "r2")));

        // The run ends before it is named: nothing to abort.
        let (tx, _rx) = super::super::run_events::channel(1 << 20);
        runs.insert(
            Arc::from("r3"),
            Slot::Run(RunSlot { events: tx, accepted: true, abort_pending: Some(Arc::from("k")) }),
        );
        let end = r#"{"type":"res","id":"r3","ok":false,"error":{"code":"UNAVAILABLE","message":"x"}}"#;
        assert_eq!(on_frame(end, &mut runs), None);
        assert!(runs.is_empty());
    }
}
