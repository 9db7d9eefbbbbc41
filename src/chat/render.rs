//! The chat renderer: a turn as `chat.completion.chunk` SSE events
//! ([`ChatSse`]), or as one `chat.completion` body ([`body`]), with the
//! built-in's failures (`turn::failure`).

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::response::{completion_body, Usage};
use super::sse::{put_error, ChunkEncoder};
use crate::error::ApiError;
use crate::turn::driver::{count_tokens, finish_reason, Collected, Finished, Render, DONE};
use crate::turn::failure;
use crate::turn::text::NO_RESPONSE;

/// One streamed completion.
pub struct ChatSse {
    enc: ChunkEncoder,
    include_usage: bool,
    agent: Arc<str>,
}

impl ChatSse {
    pub fn new(id: &str, created: u64, model: &str, include_usage: bool, agent: Arc<str>) -> Self {
        ChatSse { enc: ChunkEncoder::new(id, created, model), include_usage, agent }
    }

    fn success(&self, buf: &mut BytesMut, rest: Option<&str>, reason: &str, usage: Option<&Usage>) {
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

impl Render for ChatSse {
    /// Nothing can follow a clean finish unless a usage chunk was asked for.
    fn ends_early(&self) -> bool {
        !self.include_usage
    }

    fn open(&mut self, buf: &mut BytesMut) {
        self.enc.put_role(buf);
    }

    fn delta(&mut self, buf: &mut BytesMut, text: &str) {
        self.enc.put_content(buf, text);
    }

    fn end_early(&mut self, buf: &mut BytesMut, reason: &'static str) {
        self.success(buf, None, reason, None);
    }

    /// The rest of the text, finish, usage, `[DONE]`; or the error event
    /// the built-in would send.
    fn finish(&mut self, buf: &mut BytesMut, end: Finished<'_>) -> &'static str {
        let error = failure::stream_error(end.finish, end.lifecycle_error)
            .or_else(|| end.text.error.map(|m| (m.to_string(), "api_error")));
        let rest = match error {
            Some(e) => Err(e),
            None => end.text.completion(end.finish.text.as_deref()).map_err(|m| (m.to_string(), "api_error")),
        };
        match rest {
            Err((message, kind)) => {
                self.abort(buf, &message, kind);
                "run_failed"
            }
            Ok(rest) => {
                count_tokens(end.finish.usage.as_ref(), &self.agent);
                let usage = Usage::from_run(end.finish.usage.as_ref());
                self.success(buf, rest.as_deref(), finish_reason(end.finish), Some(&usage));
                "ok"
            }
        }
    }

    /// `data: {"error":..}` then `[DONE]`: never a silent clean end.
    fn abort(&mut self, buf: &mut BytesMut, message: &str, kind: &str) {
        put_error(buf, message, kind);
        buf.put_slice(DONE);
    }
}

/// The `chat.completion` body of a collected turn, or its failure.
pub fn body(done: &Collected, id: &str, created: u64, model: &str, agent: &str) -> Result<Vec<u8>, ApiError> {
    let finish = &done.finish;
    if !finish.ok {
        return Err(failure::run_error(finish, done.lifecycle_error.as_ref()));
    }
    if let Some(e) = failure::failed_ok(finish) {
        return Err(e);
    }
    let content = finish.text.as_deref().filter(|t| !t.is_empty()).unwrap_or(NO_RESPONSE);
    count_tokens(finish.usage.as_ref(), agent);
    let usage = Usage::from_run(finish.usage.as_ref());
    Ok(completion_body(id, created, model, content, finish_reason(finish), usage))
}
