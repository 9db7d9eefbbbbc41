//! The SSE loop of a streamed completion. Events that are already queued are
//! encoded together and written in one go, so a burst of deltas costs one
//! write, not one per chunk. The stream ends on the run's final `res`, or
//! as soon as the lifecycle reports a clean finish (`finishing` with a stop
//! reason, or `end`) when nothing more can follow (no usage chunk asked
//! for, no provisional text); failures end it with an error event, never
//! silently.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use pingora::protocols::http::ServerSession as Session;
use pingora::time::fast_timeout::fast_sleep;
use tokio::time::Instant;

use super::assistant_text::StreamText;
use super::flow::{count_tokens, cut_error, finish_reason, gone, Step, RUN_DROPPED};
use super::request::ChatTurn;
use super::response::Usage;
use super::sse::{put_error, ChunkEncoder, DONE, KEEPALIVE};
use super::{failure, io, ChatLog, ChatService, Run};
use crate::error::ChatError;
use crate::gateway::{Finish, LifecycleData, RunEvent, RunEvents};
use crate::metrics;

/// Bytes gathered from queued events before they are written.
const BATCH_BYTES: usize = 64 * 1024;
/// How long a stream that ended on lifecycle `end` still listens, off the
/// request path, for the final `res` to count its tokens.
const USAGE_WAIT: Duration = Duration::from_secs(30);

/// How a stream ended.
enum End {
    /// The run is over on the gateway.
    Finished(&'static str),
    /// Ended on lifecycle `end`; the final `res` is still on its way.
    Early,
    /// The run may still be going: `Run`'s drop aborts it.
    Cut(&'static str),
}

/// The encoder state of one stream.
struct Encoder {
    enc: ChunkEncoder,
    text: StreamText,
    lifecycle_error: Option<LifecycleData>,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    include_usage: bool,
    agent: std::sync::Arc<str>,
    /// This stream's inter-token histogram, its label resolved once.
    inter_token: prometheus::Histogram,
}

impl Encoder {
    /// Appends whatever is already queued, so it goes out in the same write.
    fn take_queued(&mut self, events: &mut RunEvents, buf: &mut BytesMut, mut end: Option<End>) -> Option<End> {
        while end.is_none() && buf.len() < BATCH_BYTES {
            let Some(ev) = events.try_recv() else { break };
            end = self.on_event(Some(ev), buf);
        }
        end
    }

    /// Appends what `event` adds to the stream; `Some` when it ended it.
    fn on_event(&mut self, event: Option<RunEvent>, buf: &mut BytesMut) -> Option<End> {
        match event? {
            RunEvent::Assistant(data) => {
                if let Some(content) = self.text.on_event(&data) {
                    self.token_sent();
                    self.enc.put_content(buf, &content);
                }
                None
            }
            RunEvent::Lifecycle(data) if data.phase == "error" => {
                self.lifecycle_error.get_or_insert(*data);
                None
            }
            RunEvent::Lifecycle(data) => {
                // `finishing` with a final stop reason and no error is the
                // moment the built-in's run result resolves; `end` follows
                // tens of milliseconds later, the final `res` later still.
                let finished_cleanly = match data.phase.as_str() {
                    "end" => true,
                    "finishing" => {
                        data.error.is_none() && matches!(data.stop_reason.as_deref(), Some("stop" | "length"))
                    }
                    _ => false,
                };
                let can_end = finished_cleanly
                    && data.aborted != Some(true)
                    && !self.include_usage
                    && self.lifecycle_error.is_none()
                    && self.text.settled();
                if !can_end {
                    return None;
                }
                let reason = if data.stop_reason.as_deref() == Some("length") { "length" } else { "stop" };
                self.append_success(None, reason, None, buf);
                Some(End::Early)
            }
            RunEvent::Finished(finish) => Some(End::Finished(self.finish(&finish, buf))),
            RunEvent::Cut(cut) => {
                let e = cut_error(&cut);
                append_error(buf, e.message(), e.kind());
                Some(End::Cut(cut.label()))
            }
            RunEvent::Accepted(_) | RunEvent::Rejected(_) => None,
        }
    }

    fn token_sent(&mut self) {
        let now = Instant::now();
        if let Some(prev) = self.last_token {
            self.inter_token.observe((now - prev).as_secs_f64());
        } else {
            self.first_token = Some(now);
        }
        self.last_token = Some(now);
        metrics::STREAMED_CHUNKS.inc();
    }

    /// The final `res`: the rest of the text, finish, usage, `[DONE]`; or
    /// the error event the built-in would send.
    fn finish(&mut self, finish: &Finish, buf: &mut BytesMut) -> &'static str {
        let error = failure::stream_error(finish, self.lifecycle_error.as_ref())
            .or_else(|| self.text.error.map(|m| (m.to_string(), "api_error")));
        let rest = match error {
            Some(e) => Err(e),
            None => self.text.completion(finish.text.as_deref()).map_err(|m| (m.to_string(), "api_error")),
        };
        match rest {
            Err((message, kind)) => {
                append_error(buf, &message, kind);
                "run_failed"
            }
            Ok(rest) => {
                let usage = Usage::from_run(finish.usage.as_ref());
                count_tokens(&usage, &self.agent);
                self.append_success(rest.as_deref(), finish_reason(finish), Some(&usage), buf);
                "ok"
            }
        }
    }

    fn append_success(&self, rest: Option<&str>, reason: &str, usage: Option<&Usage>, buf: &mut BytesMut) {
        if let Some(rest) = rest {
            self.enc.put_content(buf, rest);
        }
        self.enc.put_finish(buf, reason);
        if let (true, Some(usage)) = (self.include_usage, usage) {
            self.enc.put_usage(buf, usage);
        }
        buf.put_slice(DONE);
    }
}

/// `data: {"error":..}` then `[DONE]`: never a silent clean end.
fn append_error(buf: &mut BytesMut, message: &str, kind: &str) {
    put_error(buf, message, kind);
    buf.put_slice(DONE);
}

/// Streams the run as SSE. Returns the outcome label; once the header is
/// written every failure is in-band.
pub async fn stream(
    svc: &ChatService,
    session: &mut Session,
    turn: &ChatTurn,
    run: &mut Run,
    log: &mut ChatLog,
) -> Result<&'static str, ChatError> {
    let mut e = Encoder {
        enc: ChunkEncoder::new(&run.id, run.created, &turn.model),
        text: StreamText::new(),
        lifecycle_error: None,
        first_token: None,
        last_token: None,
        include_usage: turn.include_usage,
        agent: run.agent.clone(),
        inter_token: metrics::INTER_TOKEN.with_label_values(&[metrics::agent_label(&run.agent)]),
    };
    io::write_sse_header(session).await.map_err(|_| gone("before_first_byte"))?;
    log.committed = true;
    log.status = 200;
    let _open = metrics::InflightStream::new();
    let mut buf = BytesMut::new();
    e.enc.put_role(&mut buf);
    // Events the link has already queued leave with the role chunk.
    let end = if let Some(end) = e.take_queued(&mut run.events, &mut buf, None) {
        end
    } else {
        // `take`, not `split`: an idle stream then holds no buffer at all.
        write(session, std::mem::take(&mut buf).freeze(), false).await?;
        let idle = if svc.limits.sse_keepalive.is_zero() {
            Duration::from_secs(86_400 * 365)
        } else {
            svc.limits.sse_keepalive
        };
        // Pingora's coarse timers (10 ms, a clock thread) rather than tokio's: a
        // tokio timer earlier than the runtime's next wake-up makes tokio write
        // its eventfd to re-arm the poll, one syscall and a spurious wake-up per
        // request. Keep-alive is re-armed lazily from the time of the last write.
        let mut last_write = Instant::now();
        let mut keepalive = Box::pin(fast_sleep(idle));
        let run_deadline = fast_sleep(svc.limits.run_timeout);
        let drain = svc.drain.deadline_passed();
        tokio::pin!(run_deadline, drain);
        loop {
            let step = tokio::select! {
                biased;
                ev = run.events.recv() => Step::Event(ev),
                _ = session.read_body_or_idle(true) => Step::ClientGone,
                _ = &mut keepalive => Step::KeepAlive,
                _ = &mut run_deadline => Step::RunDeadline,
                _ = &mut drain => Step::Drain,
            };
            let end = match step {
                Step::Event(None) => {
                    tracing::warn!(run_id = %run.id, "run dropped by the gateway link");
                    append_error(&mut buf, RUN_DROPPED, "api_error");
                    Some(End::Cut("gateway_lost"))
                }
                Step::Event(ev) => {
                    let end = e.on_event(ev, &mut buf);
                    e.take_queued(&mut run.events, &mut buf, end)
                }
                Step::ClientGone => return Err(gone("mid_stream")),
                Step::KeepAlive => {
                    let quiet = last_write.elapsed();
                    if quiet >= idle {
                        buf.put_slice(KEEPALIVE);
                        keepalive = Box::pin(fast_sleep(idle));
                    } else {
                        keepalive = Box::pin(fast_sleep(idle - quiet));
                    }
                    None
                }
                Step::RunDeadline => {
                    append_error(&mut buf, "upstream provider timeout", "api_error");
                    Some(End::Cut("run_timeout"))
                }
                Step::Drain => {
                    append_error(&mut buf, "Server is shutting down", "api_error");
                    Some(End::Cut("drained"))
                }
            };
            if let Some(end) = end {
                break end;
            }
            if !buf.is_empty() {
                write(session, std::mem::take(&mut buf).freeze(), false).await?;
                last_write = Instant::now();
            }
        }
    };
    if let Some(t) = e.first_token {
        let ttft = t.duration_since(Instant::from_std(log.started)).as_secs_f64();
        metrics::TIME_TO_FIRST_TOKEN.with_label_values(&[metrics::agent_label(&run.agent), "true"]).observe(ttft);
    }
    let outcome = match end {
        End::Finished(outcome) => {
            run.mark_finished();
            outcome
        }
        End::Early => {
            run.mark_finished();
            count_usage_later(std::mem::replace(&mut run.events, RunEvents::closed()), run.agent.clone());
            "ok"
        }
        End::Cut(outcome) => outcome,
    };
    write(session, buf.freeze(), true).await?;
    Ok(outcome)
}

/// One body write; a failed write means the client is gone.
async fn write(session: &mut Session, bytes: Bytes, end: bool) -> Result<(), ChatError> {
    session.write_response_body(bytes, end).await.map_err(|_| gone("mid_stream"))
}

/// Counts the tokens of a stream that ended before its final `res`.
fn count_usage_later(mut events: RunEvents, agent: std::sync::Arc<str>) {
    tokio::spawn(async move {
        let finish = tokio::time::timeout(USAGE_WAIT, async {
            loop {
                match events.recv().await? {
                    RunEvent::Finished(f) => return Some(f),
                    _ => continue,
                }
            }
        })
        .await;
        if let Ok(Some(finish)) = finish {
            count_tokens(&Usage::from_run(finish.usage.as_ref()), &agent);
        }
    });
}
