//! The async loops of one run: waiting for the gateway to accept it, then
//! either streaming SSE or collecting one JSON body. Each loop waits on the
//! run's events, the client going away, the run deadline, the drain
//! deadline and (streams) the keep-alive timer; encoding lives in `sse.rs`
//! and `assistant_text.rs`.

use std::time::Duration;

use bytes::Bytes;
use pingora::proxy::Session;
use tokio::time::{sleep, Instant};

use super::assistant_text::{StreamText, NO_RESPONSE};
use super::request::ChatTurn;
use super::response::{completion_body, Usage};
use super::sse::{error_event, ChunkEncoder, DONE, KEEPALIVE};
use super::{failure, io, route, ChatLog, ChatService, Run};
use crate::error::ChatError;
use crate::gateway::{Finish, LifecycleData, RunEvent};
use crate::metrics;

/// What woke a loop up.
enum Step {
    Event(Option<RunEvent>),
    ClientGone,
    KeepAlive,
    RunDeadline,
    Drain,
}

/// Waits for the first `res`. Until the gateway accepts the run nothing is
/// committed to the client, so a refusal (unknown agent, gateway trouble)
/// is still a real HTTP status.
pub async fn await_accept(svc: &ChatService, session: &mut Session, run: &mut Run) -> Result<(), ChatError> {
    let deadline = sleep(svc.limits.accept_timeout);
    tokio::pin!(deadline);
    loop {
        let step = tokio::select! {
            ev = run.events.recv() => Step::Event(ev),
            _ = session.as_downstream_mut().read_body_or_idle(true) => Step::ClientGone,
            _ = &mut deadline => Step::RunDeadline,
        };
        match step {
            Step::Event(Some(RunEvent::Accepted { session_key, agent_id })) => {
                if let Some(key) = session_key {
                    run.session_key = key.into();
                }
                if let Some(agent) = agent_id {
                    run.agent = agent.into();
                }
                return Ok(());
            }
            Step::Event(Some(RunEvent::Rejected(e))) => {
                run.mark_finished();
                return Err(rejection(&e, &run.agent));
            }
            // A replayed idempotent result can arrive without an accept.
            Step::Event(Some(RunEvent::Finished(_))) => {
                run.mark_finished();
                return Err(ChatError::Gateway { detail: "run finished before it was accepted".into() });
            }
            Step::Event(Some(RunEvent::Lost(reason))) => {
                // Not finished: the gateway may still run it (a silent link
                // was dropped); `Run`'s drop queues a `chat.abort`.
                return Err(ChatError::GatewayUnavailable { reason: reason.to_string() });
            }
            Step::Event(Some(_)) => continue,
            Step::Event(None) => {
                return Err(ChatError::GatewayUnavailable { reason: "run dropped before it was accepted".into() })
            }
            Step::ClientGone => {
                return Err(gone("before_accept"));
            }
            _ => {
                return Err(ChatError::GatewayUnavailable {
                    reason: format!("gateway did not accept the run within {:?}", svc.limits.accept_timeout),
                })
            }
        }
    }
}

/// The gateway refused the `agent` request.
fn rejection(e: &crate::gateway::ErrorShape, agent: &str) -> ChatError {
    if e.message.contains("unknown agent id") {
        return route::unknown_agent(agent);
    }
    if e.message.contains("belongs to") || e.message.contains("invalid agent params") {
        return ChatError::InvalidRequest(e.message.clone());
    }
    ChatError::Gateway { detail: format!("{} {}", e.code, e.message) }
}

/// Streams the run as SSE. Returns the outcome label; once the header is
/// written every failure is in-band: an error event, then `[DONE]`.
pub async fn stream(
    svc: &ChatService,
    session: &mut Session,
    turn: &ChatTurn,
    run: &mut Run,
    log: &mut ChatLog,
) -> Result<&'static str, ChatError> {
    let enc = ChunkEncoder::new(&run.id, run.created, &turn.model);
    io::write_sse_header(session).await.map_err(|_| gone("before_first_byte"))?;
    log.committed = true;
    log.status = 200;
    let _open = metrics::InflightStream::new();
    let mut out = Writer { session, idle: svc.limits.sse_keepalive };
    out.send(enc.role()).await?;
    let mut text = StreamText::new();
    let mut lifecycle_error: Option<LifecycleData> = None;
    let mut first_token: Option<Instant> = None;
    let mut last_token: Option<Instant> = None;
    let keepalive = sleep(out.idle_or_forever());
    let run_deadline = sleep(svc.limits.run_timeout);
    let drain = svc.drain.deadline_passed();
    tokio::pin!(keepalive, run_deadline, drain);
    loop {
        let step = tokio::select! {
            biased;
            ev = run.events.recv() => Step::Event(ev),
            _ = out.session.as_downstream_mut().read_body_or_idle(true) => Step::ClientGone,
            _ = &mut keepalive => Step::KeepAlive,
            _ = &mut run_deadline => Step::RunDeadline,
            _ = &mut drain => Step::Drain,
        };
        let chunk = match step {
            Step::Event(Some(RunEvent::Assistant(data))) => match text.on_event(&data) {
                Some(content) => {
                    let now = Instant::now();
                    match last_token {
                        None => first_token = Some(now),
                        Some(prev) => {
                            metrics::INTER_TOKEN.with_label_values(&[&*run.agent]).observe((now - prev).as_secs_f64())
                        }
                    }
                    last_token = Some(now);
                    metrics::STREAMED_CHUNKS.inc();
                    enc.content(&content)
                }
                None => continue,
            },
            Step::Event(Some(RunEvent::Lifecycle(data))) => {
                if data.phase == "error" && lifecycle_error.is_none() {
                    lifecycle_error = Some(data);
                }
                continue;
            }
            Step::Event(Some(RunEvent::Finished(finish))) => {
                run.mark_finished();
                let ttft = first_token.map(|t| t.duration_since(Instant::from_std(log.started)));
                if let Some(ttft) = ttft {
                    metrics::TIME_TO_FIRST_TOKEN.with_label_values(&[&*run.agent, "true"]).observe(ttft.as_secs_f64());
                }
                return finish_stream(&mut out, &enc, turn, &text, &finish, lifecycle_error.as_ref(), &run.agent).await;
            }
            Step::Event(Some(RunEvent::Lost(reason))) => {
                // Not finished: the gateway may still run it (a silent link
                // was dropped); `Run`'s drop queues a `chat.abort`.
                tracing::warn!(run_id = %run.id, %reason, "gateway link lost mid-stream");
                out.end_with_error("upstream gateway connection lost", "api_error").await;
                return Ok("gateway_lost");
            }
            Step::Event(Some(_)) => continue,
            Step::Event(None) => {
                tracing::warn!(run_id = %run.id, "run dropped by the gateway link (reader fell behind or link lost)");
                out.end_with_error("upstream gateway connection lost", "api_error").await;
                return Ok("gateway_lost");
            }
            Step::ClientGone => return Err(gone("mid_stream")),
            Step::KeepAlive => Bytes::from_static(KEEPALIVE),
            Step::RunDeadline => {
                out.end_with_error("upstream provider timeout", "api_error").await;
                return Ok("run_timeout");
            }
            Step::Drain => {
                out.end_with_error("Server is shutting down", "api_error").await;
                return Ok("drained");
            }
        };
        out.send(chunk).await?;
        keepalive.as_mut().reset(Instant::now() + out.idle_or_forever());
    }
}

async fn finish_stream(
    out: &mut Writer<'_>,
    enc: &ChunkEncoder,
    turn: &ChatTurn,
    text: &StreamText,
    finish: &Finish,
    lifecycle_error: Option<&LifecycleData>,
    agent: &str,
) -> Result<&'static str, ChatError> {
    let error =
        failure::stream_error(finish, lifecycle_error).or_else(|| text.error.map(|m| (m.to_string(), "api_error")));
    let rest = match error {
        Some(e) => Err(e),
        None => text.completion(finish.text.as_deref()).map_err(|m| (m.to_string(), "api_error")),
    };
    match rest {
        Err((message, kind)) => {
            out.end_with_error(&message, kind).await;
            Ok("run_failed")
        }
        Ok(rest) => {
            if let Some(rest) = rest {
                out.send(enc.content(&rest)).await?;
            }
            out.send(enc.finish(finish_reason(finish))).await?;
            let usage = Usage::from_run(finish.usage.as_ref());
            count_tokens(&usage, agent);
            if turn.include_usage {
                out.send(enc.usage(&usage)).await?;
            }
            out.done().await?;
            Ok("ok")
        }
    }
}

/// Waits for the run and answers with one `chat.completion` body.
pub async fn collect(
    svc: &ChatService,
    session: &mut Session,
    turn: &ChatTurn,
    run: &mut Run,
    log: &mut ChatLog,
) -> Result<&'static str, ChatError> {
    let mut lifecycle_error: Option<LifecycleData> = None;
    let mut first_token = false;
    let run_deadline = sleep(svc.limits.run_timeout);
    let drain = svc.drain.deadline_passed();
    tokio::pin!(run_deadline, drain);
    loop {
        let step = tokio::select! {
            biased;
            ev = run.events.recv() => Step::Event(ev),
            _ = session.as_downstream_mut().read_body_or_idle(true) => Step::ClientGone,
            _ = &mut run_deadline => Step::RunDeadline,
            _ = &mut drain => Step::Drain,
        };
        match step {
            Step::Event(Some(RunEvent::Assistant(_))) if !first_token => {
                first_token = true;
                let ttft = log.started.elapsed().as_secs_f64();
                metrics::TIME_TO_FIRST_TOKEN.with_label_values(&[&*run.agent, "false"]).observe(ttft);
            }
            Step::Event(Some(RunEvent::Lifecycle(data))) if data.phase == "error" => {
                lifecycle_error.get_or_insert(data);
            }
            Step::Event(Some(RunEvent::Finished(finish))) => {
                run.mark_finished();
                if !finish.ok {
                    return Err(failure::run_error(&finish, lifecycle_error.as_ref()));
                }
                if let Some(e) = failure::failed_ok(&finish) {
                    return Err(e);
                }
                let content = finish.text.as_deref().filter(|t| !t.is_empty()).unwrap_or(NO_RESPONSE);
                let usage = Usage::from_run(finish.usage.as_ref());
                count_tokens(&usage, &run.agent);
                let body = completion_body(&run.id, run.created, &turn.model, content, finish_reason(&finish), usage);
                log.status = 200;
                io::write_json(session, body).await.map_err(|_| gone("during_wait"))?;
                return Ok("ok");
            }
            Step::Event(Some(RunEvent::Lost(reason))) => {
                // Not finished: the gateway may still run it (a silent link
                // was dropped); `Run`'s drop queues a `chat.abort`.
                return Err(ChatError::Gateway { detail: format!("link lost: {reason}") });
            }
            Step::Event(Some(_)) => {}
            Step::Event(None) => return Err(ChatError::Gateway { detail: "run dropped by the gateway link".into() }),
            Step::ClientGone => return Err(gone("during_wait")),
            Step::RunDeadline => return Err(ChatError::RunTimeout),
            Step::Drain => return Err(ChatError::ShuttingDown),
            Step::KeepAlive => {}
        }
    }
}

fn finish_reason(finish: &Finish) -> &'static str {
    if finish.stop_reason.as_deref() == Some("length") {
        "length"
    } else {
        "stop"
    }
}

fn count_tokens(usage: &Usage, agent: &str) {
    metrics::TOKENS.with_label_values(&["prompt", agent]).inc_by(usage.prompt_tokens);
    metrics::TOKENS.with_label_values(&["completion", agent]).inc_by(usage.completion_tokens);
}

/// The client is gone: counted, and the run is aborted when `Run` drops.
fn gone(phase: &'static str) -> ChatError {
    metrics::CLIENT_DISCONNECTS.with_label_values(&[phase]).inc();
    ChatError::ClientGone
}

/// Writes SSE chunks; a failed write means the client is gone.
struct Writer<'a> {
    session: &'a mut Session,
    idle: Duration,
}

impl Writer<'_> {
    fn idle_or_forever(&self) -> Duration {
        if self.idle.is_zero() {
            Duration::from_secs(365 * 24 * 3600)
        } else {
            self.idle
        }
    }

    async fn send(&mut self, chunk: Bytes) -> Result<(), ChatError> {
        self.session.write_response_body(Some(chunk), false).await.map_err(|_| gone("mid_stream"))
    }

    async fn done(&mut self) -> Result<(), ChatError> {
        self.session.write_response_body(Some(Bytes::from_static(DONE)), true).await.map_err(|_| gone("mid_stream"))
    }

    /// `data: {"error":..}` then `[DONE]`; never a silent clean end.
    async fn end_with_error(&mut self, message: &str, kind: &str) {
        if self.send(error_event(message, kind)).await.is_ok() {
            let _ = self.done().await;
        }
    }
}
