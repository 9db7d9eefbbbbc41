//! The async loops of one run that do not stream: waiting for the gateway
//! to accept it, and collecting one JSON body. Each waits on the run's
//! events, the client going away, the run deadline and the drain deadline.
//! The SSE loop is `stream.rs`; both share the helpers at the end.

use pingora::protocols::http::ServerSession as Session;
use pingora::time::fast_timeout::fast_sleep;

use super::assistant_text::NO_RESPONSE;
use super::request::ChatTurn;
use super::response::{completion_body, Usage};
use super::{failure, io, route, ChatLog, ChatService, Run};
use crate::error::ChatError;
use crate::gateway::{Accepted, Cut, Finish, LifecycleData, RunEvent};
use crate::metrics;

/// What woke a loop up.
pub(super) enum Step {
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
    let deadline = fast_sleep(svc.limits.accept_timeout);
    tokio::pin!(deadline);
    loop {
        let step = tokio::select! {
            ev = run.events.recv() => Step::Event(ev),
            _ = session.read_body_or_idle(true) => Step::ClientGone,
            _ = &mut deadline => Step::RunDeadline,
        };
        match step {
            Step::Event(Some(RunEvent::Accepted(accepted))) => {
                let Accepted { session_key, agent_id } = *accepted;
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
            Step::Event(Some(RunEvent::Cut(cut))) => {
                return Err(match *cut {
                    // Never sent: nothing to abort.
                    Cut::RequestTooLarge { .. } => {
                        run.mark_finished();
                        ChatError::RequestTooLarge(cut.to_string())
                    }
                    // Not finished: the gateway may still run it (a silent
                    // link was dropped); `Run`'s drop queues a `chat.abort`.
                    Cut::LinkLost(reason) => ChatError::GatewayUnavailable { reason: reason.to_string() },
                    cut => cut_error(&cut),
                });
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
    let run_deadline = fast_sleep(svc.limits.run_timeout);
    let drain = svc.drain.deadline_passed();
    tokio::pin!(run_deadline, drain);
    loop {
        let step = tokio::select! {
            biased;
            ev = run.events.recv() => Step::Event(ev),
            _ = session.read_body_or_idle(true) => Step::ClientGone,
            _ = &mut run_deadline => Step::RunDeadline,
            _ = &mut drain => Step::Drain,
        };
        match step {
            Step::Event(Some(RunEvent::Assistant(_))) if !first_token => {
                first_token = true;
                let ttft = log.started.elapsed().as_secs_f64();
                metrics::TIME_TO_FIRST_TOKEN
                    .with_label_values(&[metrics::agent_label(&run.agent), "false"])
                    .observe(ttft);
            }
            Step::Event(Some(RunEvent::Lifecycle(data))) if data.phase == "error" => {
                lifecycle_error.get_or_insert(*data);
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
                io::write_json(session, body, svc.limits.keepalive_timeout).await.map_err(|_| gone("during_wait"))?;
                return Ok("ok");
            }
            Step::Event(Some(RunEvent::Cut(cut))) => {
                // Not finished: the gateway may still run it; `Run`'s drop
                // queues a `chat.abort`.
                return Err(cut_error(&cut));
            }
            Step::Event(Some(_)) => {}
            Step::Event(None) => return Err(ChatError::RunCut { message: RUN_DROPPED.into(), label: "gateway_lost" }),
            Step::ClientGone => return Err(gone("during_wait")),
            Step::RunDeadline => return Err(ChatError::RunTimeout),
            Step::Drain => return Err(ChatError::ShuttingDown),
            Step::KeepAlive => {}
        }
    }
}

/// The channel closed with no word why (the link task is gone).
pub(super) const RUN_DROPPED: &str = "upstream gateway link dropped the run";

/// A run the link stopped, as the client reads it.
pub(super) fn cut_error(cut: &Cut) -> ChatError {
    tracing::warn!(reason = %cut, "gateway link stopped the run");
    ChatError::RunCut { message: cut.to_string(), label: cut.label() }
}

pub(super) fn finish_reason(finish: &Finish) -> &'static str {
    if finish.stop_reason.as_deref() == Some("length") {
        "length"
    } else {
        "stop"
    }
}

pub(super) fn count_tokens(usage: &Usage, agent: &str) {
    let agent = metrics::agent_label(agent);
    metrics::TOKENS.with_label_values(&["prompt", agent]).inc_by(usage.prompt_tokens);
    metrics::TOKENS.with_label_values(&["completion", agent]).inc_by(usage.completion_tokens);
}

/// The client is gone: counted, and the run is aborted when `Run` drops.
pub(super) fn gone(phase: &'static str) -> ChatError {
    metrics::CLIENT_DISCONNECTS.with_label_values(&[phase]).inc();
    ChatError::ClientGone
}
