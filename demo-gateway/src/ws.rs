//! One WebSocket connection: a reader task (handshake, request dispatch) and a writer task that drains the bounded
//! outgoing queue in batches, stamps the per-connection event `seq` and sends `tick`s.

use crate::agent_params::{canonical_session_key, parse_agent_params};
use crate::behaviour::HandshakeMode;
use crate::handshake::{evaluate_connect, has_scope, ConnectCtx, ConnectOutcome};
use crate::pairing::Verdict;
use crate::protocol as p;
use crate::registry::{now_ms, Out, Shared, OUT_QUEUE};
use crate::run::{self, RunSpec};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Facts about the HTTP upgrade request.
#[derive(Debug, Clone, Copy)]
pub struct UpgradeInfo {
    pub has_origin: bool,
    pub has_proxy_headers: bool,
}

/// Most frames the writer sends before one flush.
const WRITE_BATCH: usize = 512;

/// Register and spawn the reader and writer tasks of a fresh WebSocket.
pub fn spawn_connection<S>(shared: Arc<Shared>, ws: WebSocketStream<S>, info: UpgradeInfo)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = shared.next_id();
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    shared.add_conn(id, tx.clone());
    let (sink, stream) = ws.split();
    let writer = tokio::spawn(writer(sink, rx, shared.clone()));
    let writer_handle = writer.abort_handle();
    let reader = tokio::spawn(reader(stream, tx, shared.clone(), id, info, writer));
    shared.attach_conn_tasks(id, vec![reader.abort_handle(), writer_handle]);
}

async fn writer<S>(mut sink: SplitSink<WebSocketStream<S>, Message>, mut rx: mpsc::Receiver<Out>, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut seq: u64 = 0;
    let mut ticker: Option<tokio::time::Interval> = None;
    loop {
        let first = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => break },
            _ = async { match ticker.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                if shared.silent() { continue; }
                seq += 1;
                let frame = p::finish_event(&p::event_prefix("tick", &p::tick_payload(now_ms())), seq);
                if sink.send(Message::Text(frame.into())).await.is_err() { break; }
                continue;
            }
        };
        let mut next = Some(first);
        let mut n = 0;
        let mut closing = None;
        while let Some(out) = next.take() {
            let msg = match out {
                Out::Frame(s) => Message::Text(s.into()),
                Out::Event(prefix) => {
                    seq += 1;
                    Message::Text(p::finish_event(&prefix, seq).into())
                }
                Out::StartTicks(every) => {
                    let every = every.max(Duration::from_millis(1));
                    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    ticker = Some(t);
                    next = rx.try_recv().ok();
                    continue;
                }
                Out::Close(code, reason) => {
                    closing = Some((code, reason));
                    break;
                }
            };
            if sink.feed(msg).await.is_err() {
                return;
            }
            n += 1;
            if n < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if let Some((code, reason)) = closing {
            let frame = CloseFrame { code: CloseCode::from(code), reason: truncate_reason(&reason).into() };
            let _ = sink.send(Message::Close(Some(frame))).await;
            break;
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
}

/// Close reasons are limited to 123 bytes.
fn truncate_reason(s: &str) -> String {
    let mut end = s.len().min(123);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Per-connection state after `connect`.
struct Session {
    scopes: Vec<String>,
    /// `policy.maxPayload` announced in `hello-ok`.
    max_payload: u64,
}

async fn reader<S>(
    mut stream: SplitStream<WebSocketStream<S>>,
    tx: mpsc::Sender<Out>,
    shared: Arc<Shared>,
    id: u64,
    info: UpgradeInfo,
    mut writer: tokio::task::JoinHandle<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let nonce = uuid::Uuid::new_v4().to_string();
    let _ = tx.send(Out::Frame(p::challenge(&nonce, now_ms()))).await;
    let mut session: Option<Session> = None;
    let mut closing = false;
    loop {
        let msg = if closing {
            match tokio::time::timeout(Duration::from_secs(2), stream.next()).await {
                Ok(m) => m,
                Err(_) => break,
            }
        } else {
            stream.next().await
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(_))) if session.is_none() && !closing => {
                closing = close(&tx, 1000, "").await;
                continue;
            }
            // What `ws` does: a frame over `maxPayload` is 1009, invalid UTF-8 in a text frame 1007; the
            // gateway then closes. The socket cannot be read past the error, so wait for the close to go out.
            Some(Err(e @ (WsError::Capacity(_) | WsError::Utf8(_)))) if !closing => {
                let code = if matches!(e, WsError::Capacity(_)) { 1009 } else { 1007 };
                close(&tx, code, "").await;
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
                break;
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        if closing {
            continue;
        }
        if session.as_ref().is_some_and(|s| text.len() as u64 > s.max_payload) {
            closing = close(&tx, 1009, "").await;
            continue;
        }
        let frame: Value = match serde_json::from_str(text.as_str()) {
            Ok(v) => v,
            Err(_) if session.is_none() => {
                closing = close(&tx, 1000, "").await;
                continue;
            }
            Err(_) => continue,
        };
        let is_req = frame.get("type").and_then(Value::as_str) == Some("req");
        let req_id = frame.get("id").and_then(Value::as_str).unwrap_or("").to_string();
        let method = frame.get("method").and_then(Value::as_str).unwrap_or("").to_string();
        if is_req {
            shared.record_request(&frame, &method);
        }
        match &session {
            None => {
                if !is_req || method != "connect" {
                    let err = p::err_invalid_request(p::MSG_FIRST_NOT_CONNECT);
                    let _ = tx.send(Out::Frame(p::res_err(&req_id, &err))).await;
                    closing = close(&tx, 1008, p::MSG_FIRST_NOT_CONNECT).await;
                    continue;
                }
                match handle_connect(&shared, &tx, id, info, &req_id, frame.get("params"), &nonce).await {
                    ConnectResult::Accepted(s) => session = Some(s),
                    ConnectResult::Closing => closing = true,
                    ConnectResult::Silent => {}
                }
            }
            Some(s) => {
                if !is_req {
                    continue;
                }
                handle_request(&shared, &tx, s, &req_id, &method, frame.get("params")).await;
            }
        }
    }
    writer.abort();
    shared.remove_conn(id);
}

async fn close(tx: &mpsc::Sender<Out>, code: u16, reason: &str) -> bool {
    let _ = tx.send(Out::Close(code, reason.to_string())).await;
    true
}

enum ConnectResult {
    Accepted(Session),
    Closing,
    Silent,
}

async fn handle_connect(
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Out>,
    id: u64,
    info: UpgradeInfo,
    req_id: &str,
    params: Option<&Value>,
    nonce: &str,
) -> ConnectResult {
    let b = shared.behaviour();
    if b.handshake == HandshakeMode::NeverAnswer {
        return ConnectResult::Silent;
    }
    let secret = shared.secret();
    let ctx = ConnectCtx {
        secret: secret.as_deref(),
        password_mode: shared.cfg.password_mode,
        has_origin: info.has_origin,
        has_proxy_headers: info.has_proxy_headers,
        mode: b.handshake,
    };
    match evaluate_connect(params, &ctx) {
        ConnectOutcome::Reject { error, close_code, close_reason, auth_failure } => {
            if auth_failure && !b.auth_failure_delay.is_zero() {
                tokio::time::sleep(b.auth_failure_delay).await;
            }
            let _ = tx.send(Out::Frame(p::res_err(req_id, &error))).await;
            close(tx, close_code, &close_reason).await;
            ConnectResult::Closing
        }
        ConnectOutcome::Accept { mut scopes, auth_method } => {
            let mut device_token = None;
            if b.require_pairing {
                let params = params.expect("accepted connect has params");
                if params.get("device").is_none() {
                    scopes.clear(); // a device-less remote client
                } else {
                    match shared.devices.judge(params, nonce, now_ms()) {
                        Verdict::Paired(token) => {
                            shared.devices.bind(id, params);
                            device_token = Some(token);
                        }
                        Verdict::Refused(error, reason) => {
                            let _ = tx.send(Out::Frame(p::res_err(req_id, &error))).await;
                            close(tx, 1008, &reason).await;
                            return ConnectResult::Closing;
                        }
                    }
                }
            }
            let conn_id = uuid::Uuid::new_v4().to_string();
            let tick = b.tick_interval;
            let hello = p::hello_ok_payload(&p::HelloOk {
                boot_id: &shared.boot_id,
                conn_id: &conn_id,
                instance_id: &shared.instance_id,
                now_ms: now_ms(),
                uptime_ms: shared.started.elapsed().as_millis() as u64,
                agents: &shared.cfg.agents,
                auth_method,
                scopes: &scopes,
                tick_interval_ms: tick.as_millis() as u64,
                max_payload: b.max_payload,
                device_token: device_token.as_deref(),
            });
            let _ = tx.send(Out::Frame(p::res_ok(req_id, &hello))).await;
            let _ = tx.send(Out::StartTicks(tick)).await;
            if secret.is_some() {
                shared.mark_shared_auth(id);
            }
            if has_scope(&scopes, "operator.read") {
                shared.subscribe(id);
            }
            ConnectResult::Accepted(Session { scopes, max_payload: b.max_payload })
        }
    }
}

/// Methods that need `operator.write` (the rest of the implemented ones need `operator.read`).
const WRITE_METHODS: &[&str] = &["agent", "agent.wait", "chat.abort", "sessions.abort"];
const READ_METHODS: &[&str] = &["health", "agents.list"];

async fn handle_request(
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Out>,
    s: &Session,
    req_id: &str,
    method: &str,
    params: Option<&Value>,
) {
    let reply = |frame: String| async move {
        let _ = tx.send(Out::Frame(frame)).await;
    };
    let scope = if WRITE_METHODS.contains(&method) {
        "operator.write"
    } else if READ_METHODS.contains(&method) {
        "operator.read"
    } else {
        let err = p::err_invalid_request(&format!("unknown method: {method}"));
        return reply(p::res_err(req_id, &err)).await;
    };
    if !has_scope(&s.scopes, scope) {
        return reply(p::res_err(req_id, &p::err_missing_scope(scope))).await;
    }
    match method {
        "agent" => handle_agent(shared, tx, req_id, params).await,
        "agent.wait" => handle_wait(shared, tx, req_id, params),
        "chat.abort" | "sessions.abort" => {
            let key_field = if method == "chat.abort" { "sessionKey" } else { "key" };
            let get = |k: &str| params.and_then(|p| p.get(k)).and_then(Value::as_str);
            let raw_key = get(key_field).unwrap_or("");
            let run_id = get("runId").filter(|r| !r.is_empty());
            if method == "chat.abort" && raw_key.is_empty() {
                let err = p::err_invalid_request(&format!(
                    "invalid chat.abort params: at root: must have required property '{key_field}'"
                ));
                return reply(p::res_err(req_id, &err)).await;
            }
            let key = canonical_session_key(raw_key, &shared.cfg.agents);
            shared.record_abort(&key, run_id.unwrap_or(""));
            let ids = shared.abort_runs(&key, run_id);
            reply(p::res_ok(req_id, &p::abort_result(&ids))).await
        }
        "health" => reply(p::res_ok(req_id, r#"{"ok":true}"#)).await,
        _ => {
            let agents: Vec<String> =
                shared.cfg.agents.iter().map(|a| crate::json::Obj::new().str("id", a).finish()).collect();
            let default = shared.cfg.agents.first().map(String::as_str).unwrap_or("main");
            let payload = crate::json::Obj::new()
                .str("defaultId", default)
                .str("mainKey", "main")
                .str("scope", "per-sender")
                .raw("agents", &crate::json::raw_array(&agents))
                .finish();
            reply(p::res_ok(req_id, &payload)).await
        }
    }
}

async fn handle_agent(shared: &Arc<Shared>, tx: &mpsc::Sender<Out>, req_id: &str, params: Option<&Value>) {
    let req = match parse_agent_params(params, &shared.cfg.agents) {
        Ok(r) => r,
        Err(msg) => {
            let _ = tx.send(Out::Frame(p::res_err(req_id, &p::err_invalid_request(&msg)))).await;
            return;
        }
    };
    let run_id = req.idempotency_key.clone();
    let abort = match shared.begin_run(&run_id, &req.session_key) {
        Ok((abort, _done)) => abort,
        Err(Ok(())) => {
            let _ = tx.send(Out::Frame(p::res_ok(req_id, &p::in_flight_payload(&run_id)))).await;
            return;
        }
        Err(Err(f)) => {
            let frame = match &f.error {
                Some(e) => p::res_err_with_payload(req_id, &f.payload, e),
                None => p::res_ok(req_id, &f.payload),
            };
            let _ = tx.send(Out::Frame(frame)).await;
            return;
        }
    };
    let session_id = shared.record_session_message(&req.session_key, &req.message);
    let r =
        p::RunRef { run_id: &run_id, session_key: &req.session_key, session_id: &session_id, agent_id: &req.agent_id };
    let _ = tx.send(Out::Frame(p::res_ok(req_id, &p::accepted_payload(&r, now_ms())))).await;
    let spec = RunSpec {
        req_id: req_id.to_string(),
        run_id: run_id.clone(),
        session_key: req.session_key,
        session_id,
        agent_id: req.agent_id,
        message: req.message,
        timeout: req.timeout_secs.filter(|t| *t > 0).map(Duration::from_secs),
        requester: tx.clone(),
    };
    let task = tokio::spawn(run::run(shared.clone(), spec, abort));
    shared.attach_run_task(&run_id, task.abort_handle());
}

fn handle_wait(shared: &Arc<Shared>, tx: &mpsc::Sender<Out>, req_id: &str, params: Option<&Value>) {
    let run_id = params.and_then(|p| p.get("runId")).and_then(Value::as_str).unwrap_or("").to_string();
    let timeout_ms = params.and_then(|p| p.get("timeoutMs")).and_then(Value::as_u64).unwrap_or(30_000);
    let shared = shared.clone();
    let tx = tx.clone();
    let req_id = req_id.to_string();
    tokio::spawn(async move {
        let wait = Duration::from_millis(timeout_ms);
        if shared.finished(&run_id).is_none() {
            match shared.run_done_notify(&run_id) {
                Some(done) => {
                    let notified = done.notified();
                    if shared.finished(&run_id).is_none() {
                        let _ = tokio::time::timeout(wait, notified).await;
                    }
                }
                None => tokio::time::sleep(wait).await,
            }
        }
        let payload = match shared.finished(&run_id) {
            Some(f) => crate::json::Obj::new()
                .str("runId", &run_id)
                .str("status", f.wait_status)
                .num("endedAt", f.ended_at)
                .finish(),
            None => crate::json::Obj::new().str("runId", &run_id).str("status", "timeout").finish(),
        };
        let _ = tx.send(Out::Frame(p::res_ok(&req_id, &payload))).await;
    });
}
