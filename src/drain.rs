//! Shutdown state shared by readiness, the proxy and the drain task: once
//! SIGTERM arrives, readiness fails and new runs are refused; streams still
//! open at the drain deadline are ended with an error event; and the process
//! leaves as soon as no request is in flight instead of idling out the grace
//! period.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Drain {
    draining: AtomicBool,
    deadline: watch::Sender<Option<Instant>>,
    /// Requests being served (chat, passthrough, upgraded WebSockets).
    inflight: Arc<AtomicUsize>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: AtomicBool::new(false),
            deadline: watch::channel(None).0,
            inflight: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// Counts one request in flight while alive.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drain {
    pub fn track(&self) -> InFlight {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.inflight.clone())
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Starts draining; open streams get until `now + budget`.
    pub fn begin(&self, budget: Duration) {
        self.draining.store(true, Ordering::Release);
        self.deadline.send_replace(Some(Instant::now() + budget));
    }

    /// Resolves when the drain deadline passes (never, while not draining).
    pub async fn deadline_passed(&self) {
        let mut rx = self.deadline.subscribe();
        loop {
            let deadline = *rx.borrow_and_update();
            match deadline {
                Some(at) => return tokio::time::sleep_until(at).await,
                None => {
                    if rx.changed().await.is_err() {
                        return std::future::pending().await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadline_fires_only_after_begin_plus_budget() {
        let d = std::sync::Arc::new(Drain::default());
        let d2 = d.clone();
        let waiter = tokio::spawn(async move { d2.deadline_passed().await });
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!waiter.is_finished(), "no deadline before draining");
        assert!(!d.is_draining());
        let req = d.track();
        assert_eq!(d.inflight(), 1);
        drop(req);
        assert_eq!(d.inflight(), 0);
        d.begin(Duration::from_secs(5));
        assert!(d.is_draining());
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!waiter.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        waiter.await.unwrap();
    }
}
