//! The channel that carries one run's events from the connection task to
//! its request: unbounded in count, so a burst of small deltas never cuts a
//! client that is reading, but bounded in bytes, so a client that stops
//! reading cannot make the shared link buffer without limit.
//!
//! `futures-channel`'s unbounded queue, not tokio's: it allocates per
//! event, but an idle channel is ~0.1 KiB where tokio's is ~1.3 KiB, and a
//! channel lives as long as its stream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_channel::mpsc;
use futures_util::StreamExt;

use super::RunEvent;

/// Creates a channel that holds at most `limit_bytes` of queued events.
pub fn channel(limit_bytes: usize) -> (RunSender, RunEvents) {
    let (tx, rx) = mpsc::unbounded();
    let queued = Arc::new(AtomicUsize::new(0));
    (RunSender { tx, queued: queued.clone(), limit: limit_bytes }, RunEvents { rx, queued })
}

/// Why an event was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The request is gone.
    Closed,
    /// The reader fell `limit_bytes` behind.
    OverLimit,
}

/// The connection task's end.
pub struct RunSender {
    tx: mpsc::UnboundedSender<RunEvent>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

impl RunSender {
    pub fn send(&self, event: RunEvent) -> Result<(), SendError> {
        let w = weight(&event);
        if self.queued.load(Ordering::Acquire) + w > self.limit && !is_terminal(&event) {
            return Err(SendError::OverLimit);
        }
        self.queued.fetch_add(w, Ordering::AcqRel);
        self.tx.unbounded_send(event).map_err(|_| SendError::Closed)
    }
}

/// The request's end.
pub struct RunEvents {
    rx: mpsc::UnboundedReceiver<RunEvent>,
    queued: Arc<AtomicUsize>,
}

impl RunEvents {
    /// A receiver with no sender: `recv` returns `None` at once.
    pub fn closed() -> Self {
        channel(0).1
    }

    pub async fn recv(&mut self) -> Option<RunEvent> {
        let ev = self.rx.next().await;
        self.account(ev)
    }

    /// The next event if one is already queued.
    pub fn try_recv(&mut self) -> Option<RunEvent> {
        let ev = self.rx.try_recv().ok();
        self.account(ev)
    }

    fn account(&self, ev: Option<RunEvent>) -> Option<RunEvent> {
        if let Some(e) = &ev {
            self.queued.fetch_sub(weight(e), Ordering::AcqRel);
        }
        ev
    }
}

/// Terminal events always fit: a run must be able to end.
fn is_terminal(event: &RunEvent) -> bool {
    matches!(event, RunEvent::Finished(_) | RunEvent::Lost(_) | RunEvent::Rejected(_))
}

/// Approximate heap bytes an event holds while queued.
fn weight(event: &RunEvent) -> usize {
    const BASE: usize = 64;
    match event {
        RunEvent::Assistant(d) => {
            BASE + d.text.as_ref().map_or(0, String::len)
                + d.delta.as_ref().map_or(0, String::len)
                + d.item_id.as_ref().map_or(0, String::len)
        }
        RunEvent::Finished(f) => BASE + f.text.as_ref().map_or(0, String::len),
        _ => BASE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::AssistantData;

    #[test]
    fn events_are_small_so_an_idle_channel_is_small() {
        // tokio allocates a run's channel 32 slots at a time, one block per
        // open stream: events of a pointer or two keep it under 1 KiB, not ~4 KiB.
        assert!(std::mem::size_of::<RunEvent>() <= 24, "{}", std::mem::size_of::<RunEvent>());
    }

    fn delta(s: &str) -> RunEvent {
        RunEvent::Assistant(Box::new(AssistantData { delta: Some(s.into()), ..Default::default() }))
    }

    #[tokio::test]
    async fn bounded_by_bytes_not_count() {
        let (tx, mut rx) = channel(10_000);
        for _ in 0..100 {
            tx.send(delta("x")).unwrap();
        }
        assert_eq!(tx.send(delta(&"y".repeat(10_000))), Err(SendError::OverLimit));
        assert!(tx.send(RunEvent::Finished(Box::default())).is_ok(), "a run can always end");
        let mut n = 0;
        while rx.try_recv().is_some() {
            n += 1;
        }
        assert_eq!(n, 101);
        assert!(tx.send(delta(&"y".repeat(5_000))).is_ok(), "draining frees the budget");
        drop(rx);
        assert_eq!(tx.send(delta("z")), Err(SendError::Closed));
    }
}
