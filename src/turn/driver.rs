//! The loops that follow one accepted turn to its end: [`stream`] hands a
//! renderer each event as it comes and writes what it renders, batching
//! events that are already queued into one write; [`collect`] waits for the
//! final `res`. Both watch the client going away, the run deadline and the
//! drain deadline. What the bytes look like is the renderer's business
//! ([`Render`]); what a failed finish means is the API's.

use std::future::Future;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use pingora::protocols::http::ServerSession;
use pingora::time::fast_timeout::fast_sleep;
use tokio::time::Instant;

use super::text::StreamText;
use super::Turn;
use crate::error::ApiError;
use crate::gateway::{Cut, Finish, LifecycleData, RunEvent, RunEvents, RunUsage};
use crate::metrics;

/// Bytes gathered from queued events before they are written.
const BATCH_BYTES: usize = 64 * 1024;
/// How long a stream that ended on lifecycle `end` still listens, off the
/// request path, for the final `res` to count its tokens.
const USAGE_WAIT: Duration = Duration::from_secs(30);
/// The end of every stream, success or failure, in every API.
pub const DONE: &[u8] = b"data: [DONE]\n\n";
/// An SSE comment: keeps idle proxies from closing a quiet stream.
pub const KEEPALIVE: &[u8] = b": ping\n\n";
/// The channel closed with no word why (the link task is gone).
pub const RUN_DROPPED: &str = "upstream gateway link dropped the run";

/// The client side of a turn: where rendered bytes go, and whether the
/// client is still there. A Pingora session in production; a script in tests.
pub trait Downstream {
    /// Resolves when the client has gone away (never, while it is there).
    fn gone(&mut self) -> impl Future<Output = ()>;
    /// Writes one piece of the body; an error means the client is gone.
    fn write(&mut self, bytes: Bytes, end: bool) -> impl Future<Output = Result<(), ()>>;
}

impl Downstream for ServerSession {
    async fn gone(&mut self) {
        let _ = self.read_body_or_idle(true).await;
    }

    async fn write(&mut self, bytes: Bytes, end: bool) -> Result<(), ()> {
        self.write_response_body(bytes, end).await.map_err(drop)
    }
}

/// How the run ended, as a stream renderer is told.
pub struct Finished<'a> {
    pub finish: &'a Finish,
    /// The first lifecycle `error` seen, if any.
    pub lifecycle_error: Option<&'a LifecycleData>,
    /// The stream's text state: what was streamed, what is still pending.
    pub text: &'a StreamText,
}

/// One API's stream format. Every method appends to `buf`; a method that
/// ends the stream also appends its terminator (`data: [DONE]`).
pub trait Render {
    /// May the stream end at a clean lifecycle finish, before the final
    /// `res` (which then only counts tokens)?
    fn ends_early(&self) -> bool;
    /// What opens the stream (role chunk, `response.created` …).
    fn open(&mut self, buf: &mut BytesMut);
    /// Text that was streamed.
    fn delta(&mut self, buf: &mut BytesMut, text: &str);
    /// A clean lifecycle finish with nothing pending (only if `ends_early`).
    fn end_early(&mut self, buf: &mut BytesMut, reason: &'static str);
    /// The final `res`: success or failure, as the API presents it.
    /// Returns the outcome label.
    fn finish(&mut self, buf: &mut BytesMut, end: Finished<'_>) -> &'static str;
    /// The turn was stopped from outside the run (link cut, deadline, drain).
    fn abort(&mut self, buf: &mut BytesMut, message: &str, kind: &str);
}

/// How a stream ended.
enum End {
    /// The run is over on the gateway.
    Finished(&'static str),
    /// Ended on lifecycle `end`; the final `res` is still on its way.
    Early,
    /// The run may still be going: the turn's drop aborts it.
    Cut(&'static str),
}

/// Limits a loop runs under.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub run_timeout: Duration,
    /// Zero: no keep-alive comments.
    pub keepalive: Duration,
}

/// What woke a loop up.
enum Step {
    Event(Option<RunEvent>),
    ClientGone,
    KeepAlive,
    RunDeadline,
    Drain,
}

/// The stream state besides the renderer.
struct Follow {
    text: StreamText,
    lifecycle_error: Option<LifecycleData>,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    /// This stream's inter-token histogram, its label resolved once.
    inter_token: prometheus::Histogram,
}

impl Follow {
    /// Appends whatever is already queued, so it goes out in the same write.
    fn take_queued<R: Render>(
        &mut self,
        r: &mut R,
        events: &mut RunEvents,
        buf: &mut BytesMut,
        mut end: Option<End>,
    ) -> Option<End> {
        while end.is_none() && buf.len() < BATCH_BYTES {
            let Some(ev) = events.try_recv() else { break };
            end = self.on_event(r, Some(ev), buf);
        }
        end
    }

    /// Appends what `event` adds to the stream; `Some` when it ended it.
    fn on_event<R: Render>(&mut self, r: &mut R, event: Option<RunEvent>, buf: &mut BytesMut) -> Option<End> {
        match event? {
            RunEvent::Assistant(data) => {
                if let Some(content) = self.text.on_event(&data) {
                    self.token_sent();
                    r.delta(buf, &content);
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
                    && r.ends_early()
                    && self.lifecycle_error.is_none()
                    && self.text.settled();
                if !can_end {
                    return None;
                }
                let reason = if data.stop_reason.as_deref() == Some("length") { "length" } else { "stop" };
                r.end_early(buf, reason);
                Some(End::Early)
            }
            RunEvent::Finished(finish) => {
                let end =
                    Finished { finish: &finish, lifecycle_error: self.lifecycle_error.as_ref(), text: &self.text };
                Some(End::Finished(r.finish(buf, end)))
            }
            RunEvent::Cut(cut) => {
                let e = cut_error(&cut);
                r.abort(buf, e.message(), e.kind());
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
}

/// Streams an accepted turn through `r` until it ends. The response header
/// is already written: every failure is in-band. `drain` resolves when the
/// drain deadline passes. Returns the outcome label.
pub async fn stream<D: Downstream, R: Render>(
    client: &mut D,
    turn: &mut Turn,
    r: &mut R,
    bounds: Bounds,
    drain: impl Future<Output = ()>,
    started: std::time::Instant,
) -> Result<&'static str, ApiError> {
    let mut f = Follow {
        text: StreamText::new(),
        lifecycle_error: None,
        first_token: None,
        last_token: None,
        inter_token: metrics::INTER_TOKEN.with_label_values(&[metrics::agent_label(&turn.agent)]),
    };
    let _open = metrics::InflightStream::new();
    let mut buf = BytesMut::new();
    r.open(&mut buf);
    // Events the link has already queued leave with the opening.
    let end = if let Some(end) = f.take_queued(r, &mut turn.events, &mut buf, None) {
        end
    } else {
        // `take`, not `split`: an idle stream then holds no buffer at all.
        write(client, std::mem::take(&mut buf).freeze(), false).await?;
        let idle = if bounds.keepalive.is_zero() { Duration::from_secs(86_400 * 365) } else { bounds.keepalive };
        // Pingora's coarse timers (10 ms, a clock thread) rather than tokio's: a
        // tokio timer earlier than the runtime's next wake-up makes tokio write
        // its eventfd to re-arm the poll, one syscall and a spurious wake-up per
        // request. Keep-alive is re-armed lazily from the time of the last write.
        let mut last_write = Instant::now();
        let mut keepalive = Box::pin(fast_sleep(idle));
        let run_deadline = fast_sleep(bounds.run_timeout);
        tokio::pin!(run_deadline, drain);
        loop {
            let step = tokio::select! {
                biased;
                ev = turn.events.recv() => Step::Event(ev),
                _ = client.gone() => Step::ClientGone,
                _ = &mut keepalive => Step::KeepAlive,
                _ = &mut run_deadline => Step::RunDeadline,
                _ = &mut drain => Step::Drain,
            };
            let end = match step {
                Step::Event(None) => {
                    tracing::warn!(run_id = %turn.id, "run dropped by the gateway link");
                    r.abort(&mut buf, RUN_DROPPED, "api_error");
                    Some(End::Cut("gateway_lost"))
                }
                Step::Event(ev) => {
                    let end = f.on_event(r, ev, &mut buf);
                    f.take_queued(r, &mut turn.events, &mut buf, end)
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
                    r.abort(&mut buf, "upstream provider timeout", "api_error");
                    Some(End::Cut("run_timeout"))
                }
                Step::Drain => {
                    r.abort(&mut buf, "Server is shutting down", "api_error");
                    Some(End::Cut("drained"))
                }
            };
            if let Some(end) = end {
                break end;
            }
            if !buf.is_empty() {
                write(client, std::mem::take(&mut buf).freeze(), false).await?;
                last_write = Instant::now();
            }
        }
    };
    if let Some(t) = f.first_token {
        let ttft = t.duration_since(Instant::from_std(started)).as_secs_f64();
        metrics::TIME_TO_FIRST_TOKEN.with_label_values(&[metrics::agent_label(&turn.agent), "true"]).observe(ttft);
    }
    let outcome = match end {
        End::Finished(outcome) => {
            turn.mark_finished();
            outcome
        }
        End::Early => {
            turn.mark_finished();
            count_usage_later(std::mem::replace(&mut turn.events, RunEvents::closed()), turn.agent.clone());
            "ok"
        }
        End::Cut(outcome) => outcome,
    };
    write(client, buf.freeze(), true).await?;
    Ok(outcome)
}

/// What a turn that was not streamed ended with.
#[derive(Debug)]
pub struct Collected {
    pub finish: Box<Finish>,
    pub lifecycle_error: Option<LifecycleData>,
}

/// Waits for the turn's final `res`. Failures of the link, the deadline or
/// the drain are errors; what the `res` itself says is the API's to present.
pub async fn collect<D: Downstream>(
    client: &mut D,
    turn: &mut Turn,
    bounds: Bounds,
    drain: impl Future<Output = ()>,
    started: std::time::Instant,
) -> Result<Collected, ApiError> {
    let mut lifecycle_error: Option<LifecycleData> = None;
    let mut first_token = false;
    let run_deadline = fast_sleep(bounds.run_timeout);
    tokio::pin!(run_deadline, drain);
    loop {
        let step = tokio::select! {
            biased;
            ev = turn.events.recv() => Step::Event(ev),
            _ = client.gone() => Step::ClientGone,
            _ = &mut run_deadline => Step::RunDeadline,
            _ = &mut drain => Step::Drain,
        };
        match step {
            Step::Event(Some(RunEvent::Assistant(_))) if !first_token => {
                first_token = true;
                metrics::TIME_TO_FIRST_TOKEN
                    .with_label_values(&[metrics::agent_label(&turn.agent), "false"])
                    .observe(started.elapsed().as_secs_f64());
            }
            Step::Event(Some(RunEvent::Lifecycle(data))) if data.phase == "error" => {
                lifecycle_error.get_or_insert(*data);
            }
            Step::Event(Some(RunEvent::Finished(finish))) => {
                turn.mark_finished();
                return Ok(Collected { finish, lifecycle_error });
            }
            // Not finished: the gateway may still run it; the turn's drop
            // queues a `chat.abort`.
            Step::Event(Some(RunEvent::Cut(cut))) => return Err(cut_error(&cut)),
            Step::Event(Some(_)) | Step::KeepAlive => {}
            Step::Event(None) => return Err(ApiError::RunCut { message: RUN_DROPPED.into(), label: "gateway_lost" }),
            Step::ClientGone => return Err(gone("during_wait")),
            Step::RunDeadline => return Err(ApiError::RunTimeout),
            Step::Drain => return Err(ApiError::ShuttingDown),
        }
    }
}

/// A run the link stopped, as the client reads it.
pub fn cut_error(cut: &Cut) -> ApiError {
    tracing::warn!(reason = %cut, "gateway link stopped the run");
    ApiError::RunCut { message: cut.to_string(), label: cut.label() }
}

/// The client is gone: counted, and the run is aborted when the turn drops.
pub fn gone(phase: &'static str) -> ApiError {
    metrics::CLIENT_DISCONNECTS.with_label_values(&[phase]).inc();
    ApiError::ClientGone
}

/// `length` when the run stopped on its token cap, else `stop`.
pub fn finish_reason(finish: &Finish) -> &'static str {
    if finish.stop_reason.as_deref() == Some("length") {
        "length"
    } else {
        "stop"
    }
}

/// Counts a finished run's tokens.
pub fn count_tokens(usage: Option<&RunUsage>, agent: &str) {
    let (prompt, completion) = usage.map_or((0, 0), |u| (u.input + u.cache_read, u.output));
    let agent = metrics::agent_label(agent);
    metrics::TOKENS.with_label_values(&["prompt", agent]).inc_by(prompt);
    metrics::TOKENS.with_label_values(&["completion", agent]).inc_by(completion);
}

/// One body write; a failed write means the client is gone.
async fn write<D: Downstream>(client: &mut D, bytes: Bytes, end: bool) -> Result<(), ApiError> {
    client.write(bytes, end).await.map_err(|_| gone("mid_stream"))
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
            count_tokens(finish.usage.as_ref(), &agent);
        }
    });
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
