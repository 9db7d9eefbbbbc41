//! Where a request body is parsed: inline when small, on a blocking thread
//! when large, so a 20 MiB body never holds the event loop (and every other
//! client on that thread) for the tens of milliseconds its parse takes. The
//! `agent` frame of a long prompt is encoded the same way. Large
//! parses are bounded twice: by a budget of body bytes being parsed at once
//! (memory) and by a number of parse threads (CPU, so the proxy thread keeps
//! a core). A request that cannot get both within [`QUEUE_WAIT`] gets 503.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Bodies up to this size are parsed in place: ~0.3 ms of work, less than a
/// thread hop would add to the hot path.
pub const INLINE_MAX_BYTES: usize = 128 * 1024;
/// Body bytes being parsed off the event loop at once (three 20 MiB bodies).
pub const BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// How long a large body may wait for its turn before the request gets 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// The budget, counted in KiB so any body fits a semaphore's `u32` permits.
const KIB: usize = 1024;

pub struct ParseGate {
    budget_kib: u32,
    bytes: Arc<Semaphore>,
    threads: Arc<Semaphore>,
    wait: Duration,
}

impl Default for ParseGate {
    fn default() -> Self {
        // One core stays with the proxy; a single-core machine still parses.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ParseGate::new(BUDGET_BYTES, (cores - 1).clamp(1, 4), QUEUE_WAIT)
    }
}

impl ParseGate {
    pub fn new(budget_bytes: usize, threads: usize, wait: Duration) -> Self {
        let budget_kib = (budget_bytes / KIB).clamp(1, u32::MAX as usize) as u32;
        ParseGate {
            budget_kib,
            bytes: Arc::new(Semaphore::new(budget_kib as usize)),
            threads: Arc::new(Semaphore::new(threads.max(1))),
            wait,
        }
    }

    /// Parses `body` with `parse`, with the same result wherever it runs.
    pub async fn parse<T: Send + 'static>(
        &self,
        body: Bytes,
        parse: impl FnOnce(&[u8]) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        if body.len() <= INLINE_MAX_BYTES {
            return parse(&body);
        }
        self.off_loop(body.len(), move || parse(&body)).await?
    }

    /// Runs `work` on `bytes` of input in place when they are few, else on a
    /// parse thread under the budget. For the other body-sized step, encoding
    /// the `agent` frame of a long prompt.
    pub async fn sized<T: Send + 'static>(
        &self,
        bytes: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        if bytes <= INLINE_MAX_BYTES {
            return Ok(work());
        }
        self.off_loop(bytes, work).await
    }

    async fn off_loop<T: Send + 'static>(
        &self,
        bytes: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permits = self.admit(bytes).await?;
        let job = tokio::task::spawn_blocking(move || {
            let _permits = permits;
            work()
        });
        job.await.map_err(|e| ApiError::Gateway { detail: format!("request parser failed: {e}") })
    }

    /// Waits (bounded) for the body's share of the byte budget, then for a
    /// parse thread.
    async fn admit(&self, len: usize) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), ApiError> {
        let kib = len.div_ceil(KIB).clamp(1, self.budget_kib as usize) as u32;
        let wait = async {
            let bytes = self.bytes.clone().acquire_many_owned(kib).await.ok()?;
            let thread = self.threads.clone().acquire_owned().await.ok()?;
            Some((bytes, thread))
        };
        match pingora::time::fast_timeout::fast_timeout(self.wait, wait).await {
            Ok(Some(permits)) => Ok(permits),
            _ => Err(ApiError::Overloaded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::request::{self, RouteHeaders};

    fn chat(body: &[u8]) -> Result<request::ChatTurn, ApiError> {
        request::parse(body, RouteHeaders::default())
    }

    fn big_body(bytes: usize) -> Bytes {
        let one = r#"{"role":"user","content":"hello there"},"#;
        let n = bytes / one.len();
        let body = format!(r#"{{"messages":[{}{{"role":"user","content":"last"}}]}}"#, one.repeat(n));
        Bytes::from(body)
    }

    #[tokio::test]
    async fn large_bodies_parse_off_the_loop_with_the_same_result() {
        let gate = ParseGate::new(1024 * 1024, 1, QUEUE_WAIT);
        let body = big_body(300 * 1024);
        let inline = request::parse(&body, RouteHeaders::default()).unwrap();
        let off = gate.parse(body, chat).await.unwrap();
        // The session differs (a fresh uuid per call); everything else is the same.
        assert!(inline.prompt == off.prompt && inline.agent == off.agent && inline.model == off.model);
        let bad = Bytes::from(format!(r#"{{"model":5,"messages":[{}]}}"#, "1,".repeat(100_000) + "1"));
        assert_eq!(
            gate.parse(bad, chat).await.unwrap_err().message(),
            "model: Invalid input: expected string, received number"
        );
    }

    #[tokio::test]
    async fn a_body_that_cannot_get_the_budget_in_time_gets_503() {
        let wait = Duration::from_millis(300);
        let gate = ParseGate::new(1024 * 1024, 1, wait);
        let held = gate.bytes.clone().acquire_many_owned(1024).await.unwrap();
        let started = std::time::Instant::now();
        let parse = tokio::time::timeout(wait * 10, gate.parse(big_body(200 * 1024), chat));
        assert_eq!(parse.await.unwrap().unwrap_err(), ApiError::Overloaded);
        assert!(started.elapsed() >= wait - Duration::from_millis(50));
        drop(held);
        assert!(gate.parse(big_body(200 * 1024), chat).await.is_ok());
    }
}
