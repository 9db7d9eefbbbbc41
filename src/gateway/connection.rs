//! The task that owns the gateway WebSocket: connect, handshake as the
//! gateway's own backend client, demultiplex every run's frames by run id,
//! watch the tick, and reconnect with backoff. Handlers talk to it only
//! through channels, so the run table needs no lock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, timeout, Instant};
use tokio_tungstenite::tungstenite::{self, protocol::WebSocketConfig, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::decode::{self, AgentData, Payload};
use super::frames::{self, AgentResPayload, HelloOk, InFrame};
use super::run_events::{RunSender, SendError};
use super::{Command, Finish, Gateway, GatewaySettings, LinkState, RunEvent};
use crate::metrics;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Most `chat.abort`s kept for runs lost with a link (the oldest go first).
const MAX_LOST_ABORTS: usize = 4096;

/// The connection task, not yet running; see [`channel`].
pub struct Driver {
    settings: GatewaySettings,
    commands: mpsc::Receiver<Command>,
    state: watch::Sender<LinkState>,
}

impl Driver {
    /// Runs the connection until every [`Gateway`] handle is dropped.
    pub async fn run(self) {
        run(self.settings, self.commands, self.state).await
    }
}

/// Creates the handle and the task that serves it. The handle works from
/// any runtime; the driver runs on whichever runtime calls `Driver::run`.
pub fn channel(settings: GatewaySettings) -> (Gateway, Driver) {
    let (commands, rx) = mpsc::channel(4096);
    let (state_tx, state) = watch::channel(LinkState::Down { reason: "not connected yet".into() });
    let run_buffer_bytes = settings.run_buffer_bytes;
    let handle = Gateway { commands, state, run_buffer_bytes };
    (handle, Driver { settings, commands: rx, state: state_tx })
}

/// A run the task is tracking.
struct Slot {
    events: RunSender,
    accepted: bool,
}

struct Link {
    ws: Ws,
    tick: Duration,
}

async fn run(settings: GatewaySettings, mut commands: mpsc::Receiver<Command>, state: watch::Sender<LinkState>) {
    let mut runs: HashMap<Arc<str>, Slot> = HashMap::new();
    // `chat.abort`s for runs lost with a link, sent on the next one.
    let mut lost: VecDeque<(Arc<str>, Arc<str>)> = VecDeque::new();
    let mut backoff = settings.reconnect_min;
    loop {
        metrics::GATEWAY_CONNECTED.set(0);
        let reason: Arc<str> = match connect(&settings).await {
            Ok((link, default_agent)) => {
                tracing::info!(upstream = %settings.upstream, tick_ms = link.tick.as_millis() as u64, "gateway connected");
                metrics::GATEWAY_CONNECTED.set(1);
                backoff = settings.reconnect_min;
                metrics::register_agent(&default_agent);
                state.send_replace(LinkState::Ready { default_agent });
                let reason = serve(link, &mut commands, &mut runs, &mut lost, &settings).await;
                match reason {
                    None => return, // every handle is gone: the process is exiting
                    Some(reason) => reason,
                }
            }
            Err(reason) => {
                metrics::GATEWAY_HANDSHAKE_FAILURES.inc();
                reason
            }
        };
        tracing::warn!(upstream = %settings.upstream, %reason, "gateway link down");
        metrics::GATEWAY_CONNECTED.set(0);
        state.send_replace(LinkState::Down { reason: reason.clone() });
        for (_, slot) in runs.drain() {
            let _ = slot.events.send(RunEvent::Lost(reason.clone()));
        }
        metrics::GATEWAY_RUNS.set(0);
        // While down, refuse new runs at once instead of queueing them.
        let deadline = Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                cmd = commands.recv() => match cmd {
                    None => return,
                    Some(Command::Start { events, .. }) => {
                        let _ = events.send(RunEvent::Lost(reason.clone()));
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
        backoff = (backoff * 2).min(settings.reconnect_max);
        metrics::GATEWAY_RECONNECTS.inc();
    }
}

/// Opens the socket and completes `connect`; returns the link and the
/// gateway's default agent id.
async fn connect(settings: &GatewaySettings) -> Result<(Link, Arc<str>), Arc<str>> {
    let fut = async {
        let tcp =
            TcpStream::connect(&settings.upstream).await.map_err(|e| format!("connect {}: {e}", settings.upstream))?;
        tcp.set_nodelay(true).map_err(|e| format!("set TCP_NODELAY: {e}"))?;
        let url = format!("ws://{}/", settings.upstream);
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(settings.max_frame_bytes);
        config.max_frame_size = Some(settings.max_frame_bytes);
        // tungstenite zeroes its read buffer per read: 128 KiB by default.
        config.read_buffer_size = 16 * 1024;
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(tcp), Some(config))
            .await
            .map_err(|e| format!("websocket upgrade: {e}"))?;
        let connect_id = format!("connect-{}", uuid::Uuid::new_v4());
        let instance = uuid::Uuid::new_v4().to_string();
        let frame = frames::connect_request(&connect_id, settings.secret_kind, settings.secret.expose(), &instance);
        ws.send(Message::Text(frame.into())).await.map_err(|e| format!("send connect: {e}"))?;
        loop {
            let msg = ws
                .next()
                .await
                .ok_or_else(|| "gateway closed the socket during the handshake".to_string())?
                .map_err(|e| format!("handshake: {e}"))?;
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(c) => {
                    return Err(format!(
                        "gateway closed the socket during the handshake: {}",
                        c.map(|c| format!("{} {}", u16::from(c.code), c.reason)).unwrap_or_default()
                    ))
                }
                _ => continue,
            };
            let Ok(frame) = serde_json::from_str::<InFrame>(&text) else {
                continue;
            };
            if frame.kind != "res" || frame.id.as_deref() != Some(connect_id.as_str()) {
                continue; // connect.challenge and anything else before hello-ok
            }
            if frame.ok != Some(true) {
                let e = frame.error.unwrap_or(frames::ErrorShape { code: "?".into(), message: String::new() });
                return Err(format!("gateway refused connect: {} {}", e.code, e.message));
            }
            let hello: HelloOk = frame
                .payload
                .and_then(|p| serde_json::from_str(p.get()).ok())
                .ok_or_else(|| "connect answer is not hello-ok".to_string())?;
            let scopes = hello.auth.as_ref().map(|a| a.scopes.clone()).unwrap_or_default();
            if !scopes.iter().any(|s| s == frames::WRITE_SCOPE || s == "operator.admin") {
                return Err(format!(
                    "gateway granted scopes {scopes:?} without operator.write; clawbridge must reach the gateway over loopback, without proxy headers"
                ));
            }
            let tick = hello.policy.as_ref().and_then(|p| p.tick_interval_ms).unwrap_or(30_000);
            let default_agent = hello
                .snapshot
                .and_then(|s| s.session_defaults)
                .and_then(|d| d.default_agent_id)
                .unwrap_or_else(|| "main".to_string());
            return Ok((Link { ws, tick: Duration::from_millis(tick.max(100)) }, Arc::from(default_agent)));
        }
    };
    match timeout(settings.handshake_timeout, fut).await {
        Ok(r) => r.map_err(Arc::from),
        Err(_) => {
            Err(Arc::from(format!("gateway handshake timed out after {} ms", settings.handshake_timeout.as_millis())))
        }
    }
}

/// Serves one live link until it dies. Returns `None` when every handle is
/// dropped, else the reason the link ended.
async fn serve(
    mut link: Link,
    commands: &mut mpsc::Receiver<Command>,
    runs: &mut HashMap<Arc<str>, Slot>,
    lost: &mut VecDeque<(Arc<str>, Arc<str>)>,
    settings: &GatewaySettings,
) -> Option<Arc<str>> {
    for (run_id, session_key) in lost.drain(..) {
        let frame = frames::abort_request(&format!("abort-{run_id}"), &session_key, &run_id);
        metrics::ABORTS_SENT.inc();
        if let Err(e) = link.ws.send(Message::Text(frame.into())).await {
            return Some(format!("send chat.abort: {e}").into());
        }
    }
    let silence = link.tick * 2;
    let watchdog = sleep(silence);
    tokio::pin!(watchdog);
    loop {
        tokio::select! {
            biased;
            msg = link.ws.next() => {
                watchdog.as_mut().reset(Instant::now() + silence);
                match msg {
                    Some(Ok(Message::Text(text))) => on_frame(&text, runs),
                    Some(Ok(Message::Close(c))) => {
                        return Some(format!("gateway closed the socket: {}", c.map(|c| format!("{} {}", u16::from(c.code), c.reason)).unwrap_or_default()).into());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(tungstenite::Error::Capacity(e))) => {
                        metrics::GATEWAY_FRAMES_DROPPED.with_label_values(&["oversized"]).inc();
                        return Some(format!("gateway frame over {} bytes: {e}", settings.max_frame_bytes).into());
                    }
                    Some(Err(e)) => return Some(format!("gateway socket error: {e}").into()),
                    None => return Some("gateway closed the socket".into()),
                }
            }
            cmd = commands.recv() => match cmd {
                None => return None,
                Some(Command::Start { run_id, frame, events }) => {
                    if let Err(e) = link.ws.send(Message::Text(frame.into())).await {
                        let reason: Arc<str> = format!("send agent request: {e}").into();
                        let _ = events.send(RunEvent::Lost(reason.clone()));
                        return Some(reason);
                    }
                    runs.insert(run_id, Slot { events, accepted: false });
                }
                Some(Command::Abort { run_id, session_key }) => {
                    runs.remove(&run_id);
                    let frame = frames::abort_request(&format!("abort-{run_id}"), &session_key, &run_id);
                    metrics::ABORTS_SENT.inc();
                    if let Err(e) = link.ws.send(Message::Text(frame.into())).await {
                        return Some(format!("send chat.abort: {e}").into());
                    }
                }
            },
            _ = &mut watchdog => {
                return Some(format!("no frame from the gateway for {} ms (2 tick intervals)", silence.as_millis()).into());
            }
        }
        metrics::GATEWAY_RUNS.set(runs.len() as i64);
    }
}

/// Routes one text frame to its run. Frames for other clients' runs are
/// normal (the gateway broadcasts every run to every operator) and ignored.
fn on_frame(text: &str, runs: &mut HashMap<Arc<str>, Slot>) {
    metrics::GATEWAY_FRAMES.inc();
    // One pass: another client's run (the gateway broadcasts all of them)
    // has its `data` skipped, not decoded.
    let frame = match decode::decode(text, &|run| runs.contains_key(run)) {
        Ok(f) => f,
        Err(e) => {
            metrics::GATEWAY_FRAMES_DROPPED.with_label_values(&["malformed"]).inc();
            tracing::warn!(error = %e, len = text.len(), "dropping malformed gateway frame");
            return;
        }
    };
    match (frame.kind.as_ref(), frame.payload) {
        ("event", Payload::Agent(ev)) => {
            let event = match ev.data {
                AgentData::Assistant(d) => RunEvent::Assistant(d),
                AgentData::Lifecycle(d) if matches!(d.phase.as_str(), "end" | "error" | "finishing") => {
                    RunEvent::Lifecycle(d)
                }
                _ => return,
            };
            deliver(runs, &ev.run_id, event);
        }
        ("res", payload) => {
            let Some(id) = frame.id.as_deref() else {
                return;
            };
            let Some(slot) = runs.get_mut(id) else { return };
            let payload: Option<AgentResPayload> = match payload {
                Payload::Raw(p) => serde_json::from_str(p.get()).ok(),
                _ => None,
            };
            let status = payload.as_ref().map(|p| p.status.as_str()).unwrap_or("");
            if frame.ok == Some(true) && !slot.accepted && (status == "accepted" || status == "in_flight") {
                slot.accepted = true;
                let p = payload.unwrap_or_else(empty_payload);
                let event =
                    RunEvent::Accepted(Box::new(super::Accepted { session_key: p.session_key, agent_id: p.agent_id }));
                deliver(runs, id, event);
                return;
            }
            let was_accepted = slot.accepted;
            let slot = runs.remove(id).expect("present");
            let event = if frame.ok != Some(true) && !was_accepted && payload.is_none() {
                RunEvent::Rejected(Box::new(frame.error.unwrap_or_default()))
            } else {
                RunEvent::Finished(Box::new(finish(frame.ok == Some(true), payload, frame.error)))
            };
            let _ = slot.events.send(event);
        }
        _ => {}
    }
}

/// Hands an event to its run; a reader that fell behind is cut loose and
/// its run aborted, so one slow client cannot stall the shared link.
fn deliver(runs: &mut HashMap<Arc<str>, Slot>, run_id: &str, event: RunEvent) {
    let Some(slot) = runs.get(run_id) else { return };
    match slot.events.send(event) {
        Ok(()) => {}
        Err(SendError::Closed) => {
            runs.remove(run_id);
        }
        Err(SendError::OverLimit) => {
            runs.remove(run_id);
            metrics::GATEWAY_FRAMES_DROPPED.with_label_values(&["slow_reader"]).inc();
            tracing::warn!(run_id = %run_id, "run reader fell behind; dropping the run");
            // The session key is unknown here; the handler sees its channel
            // close and sends the abort itself.
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
