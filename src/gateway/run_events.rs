//! The channel that carries one run's events from the connection task to
//! its request: unbounded in count, so a burst of small deltas never cuts a
//! client that is reading, but bounded in bytes, so a client that stops
//! reading cannot make the shared link buffer without limit. The bound is on
//! what is queued, not on what was sent: a long reply's events carry its
//! whole text so far, so one event may alone outweigh the budget; it is
//! admitted while the backlog is small next to it (see [`LARGE_EVENT_SLACK`]).
//!
//! `futures-channel`'s unbounded queue, not tokio's: it allocates per
//! event, but an idle channel is ~0.1 KiB where tokio's is ~1.3 KiB, and a
//! channel lives as long as its stream.
//!
//! The channel also carries the run's session key as the gateway names it
//! (see [`RunSender::name_session`]): the request's end reads it when it
//! aborts the run, even after the link dropped the run.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use futures_channel::mpsc;
use futures_util::StreamExt;

use super::RunEvent;

/// Once a run has had an event heavier than the budget, its backlog may
/// reach this many times the heaviest event: a reader that is keeping up
/// holds one or two such events at a time (the link can decode the next
/// frame before the reader is scheduled), one that stopped reading falls
/// this many behind within a few events. A run's queue so holds at most
/// `max(limit, 4 × its heaviest event)`, and an event is at most one frame
/// (`limits.max_frame_bytes`).
pub const LARGE_EVENT_SLACK: usize = 4;

/// Creates a channel that holds at most `limit_bytes` of queued events
/// (more only for events that alone are larger, see [`LARGE_EVENT_SLACK`]).
pub fn channel(limit_bytes: usize) -> (RunSender, RunEvents) {
    let (tx, rx) = mpsc::unbounded();
    let shared = Arc::new(Shared::default());
    let budget = Cell::new(limit_bytes);
    (RunSender { tx, shared: shared.clone(), limit: limit_bytes, budget }, RunEvents { rx, shared })
}

/// What both ends see.
#[derive(Default)]
struct Shared {
    /// Weighed bytes of the events queued.
    queued: AtomicUsize,
    /// The run's canonical session key, once the gateway named it.
    session_key: OnceLock<Arc<str>>,
}

/// Why an event was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The request is gone.
    Closed,
    /// The reader fell `limit_bytes` behind (the event was not queued).
    OverLimit,
}

/// The connection task's end.
pub struct RunSender {
    tx: mpsc::UnboundedSender<RunEvent>,
    shared: Arc<Shared>,
    limit: usize,
    /// `max(limit, LARGE_EVENT_SLACK × the heaviest event so far)`; only the
    /// link task sends, so a `Cell` (the sender is `Send`, not shared).
    budget: Cell<usize>,
}

impl RunSender {
    /// The byte budget this channel was made with.
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn send(&self, event: RunEvent) -> Result<(), SendError> {
        let w = weight(&event);
        let budget = self.budget.get().max(w.saturating_mul(LARGE_EVENT_SLACK));
        self.budget.set(budget);
        if self.shared.queued.load(Ordering::Acquire) + w > budget && !is_terminal(&event) {
            return Err(SendError::OverLimit);
        }
        self.shared.queued.fetch_add(w, Ordering::AcqRel);
        self.tx.unbounded_send(event).map_err(|_| SendError::Closed)
    }

    /// Records the run's session key as the gateway names it (its accepted
    /// `res` from 2026.5.12 on, every `agent` event of the run in any
    /// release); the first name wins. Aborts must use it: 2026.5.x refuses a
    /// `chat.abort` whose key is not the canonical `agent:<id>:<key>`
    /// ("runId does not match sessionKey").
    pub fn name_session(&self, key: &str) {
        if self.shared.session_key.get().is_none() {
            let _ = self.shared.session_key.set(Arc::from(key));
        }
    }

    /// The session key the gateway named, if it did yet.
    pub fn session_key(&self) -> Option<Arc<str>> {
        self.shared.session_key.get().cloned()
    }
}

/// The request's end.
pub struct RunEvents {
    rx: mpsc::UnboundedReceiver<RunEvent>,
    shared: Arc<Shared>,
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
            self.shared.queued.fetch_sub(weight(e), Ordering::AcqRel);
        }
        ev
    }

    /// The session key the gateway named for this run, if it named one yet.
    pub fn session_key(&self) -> Option<Arc<str>> {
        self.shared.session_key.get().cloned()
    }
}

/// Terminal events always fit: a run must be able to end.
fn is_terminal(event: &RunEvent) -> bool {
    matches!(event, RunEvent::Finished(_) | RunEvent::Cut(_) | RunEvent::Rejected(_))
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
        // Events of 65 weighed bytes: 153 fit in 10,000, the 154th does not.
        let admitted = (0..1_000).take_while(|_| tx.send(delta("x")).is_ok()).count();
        assert_eq!(admitted, 153);
        assert_eq!(tx.send(delta(&"y".repeat(2_000))), Err(SendError::OverLimit));
        assert!(tx.send(RunEvent::Finished(Box::default())).is_ok(), "a run can always end");
        let mut n = 0;
        while rx.try_recv().is_some() {
            n += 1;
        }
        assert_eq!(n, 154);
        assert!(tx.send(delta(&"y".repeat(9_000))).is_ok(), "draining frees the budget");
        drop(rx);
        assert_eq!(tx.send(delta("z")), Err(SendError::Closed));
    }

    /// A long reply's events each carry the whole text so far: one alone
    /// outweighs the budget, and a reader that keeps up gets them all; one
    /// that stops reading is still cut off within a few of them.
    #[tokio::test]
    async fn an_event_over_the_budget_is_admitted_when_the_reader_keeps_up() {
        let (tx, mut rx) = channel(1_000);
        for n in 1..=20 {
            tx.send(delta(&"x".repeat(n * 1_000))).unwrap();
            if n % 2 == 0 {
                // The reader was scheduled once for every two frames.
                while rx.try_recv().is_some() {}
            }
        }
        // A reader that stopped: cut off within a few large events.
        let (tx, rx) = channel(1_000);
        let cut = (1..=20).find(|n| tx.send(delta(&"x".repeat(n * 1_000))).is_err());
        assert_eq!(cut, Some(7));
        assert!(rx.shared.queued.load(Ordering::Acquire) <= LARGE_EVENT_SLACK * 7_064, "within 4 × the heaviest event");
        assert!(tx.send(RunEvent::Cut(Box::new(crate::gateway::Cut::SlowReader { limit: 1_000 }))).is_ok());
    }

    #[test]
    fn the_first_session_key_named_is_kept_for_the_request() {
        let (tx, rx) = channel(1_000);
        assert_eq!(rx.session_key(), None);
        tx.name_session("agent:main:my-thread");
        tx.name_session("agent:main:other");
        drop(tx);
        assert_eq!(rx.session_key().as_deref(), Some("agent:main:my-thread"), "kept after the link dropped the run");
    }

    /// Small events behind a large one still fit: the run's budget grew
    /// with its heaviest event.
    #[tokio::test]
    async fn small_events_queue_behind_a_large_one() {
        let (tx, mut rx) = channel(1_000);
        tx.send(delta(&"x".repeat(50_000))).unwrap();
        for _ in 0..100 {
            tx.send(delta("y")).unwrap();
        }
        let mut n = 0;
        while rx.try_recv().is_some() {
            n += 1;
        }
        assert_eq!(n, 101);
    }
}
