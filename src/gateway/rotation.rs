//! A new secret without dropping runs: a second link is opened with it
//! while the current one serves on; once that handshake succeeds the new
//! link takes every new run, and the old one ("retiring") keeps only the
//! runs already on it, until they end, then it is closed. A gateway that
//! keeps old-secret links open (2026.5.7 until its restart) lets them
//! finish; one that closes them (2026.9.6: close 4001 "gateway auth
//! changed") ends them, and their clients are told why.
//! A handshake refused because the gateway has not applied the new secret
//! yet is retried every [`RETRY`] while the current link serves on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::{self, Message};

use super::connection::{connect, on_frame, on_oversized, Down, Link, Runs};
use super::readiness::NotReady;
use super::{Credentials, GatewaySettings};

/// Pause between handshakes with a new secret the gateway still refuses.
pub(super) const RETRY: Duration = Duration::from_millis(250);
/// How long an old link's close handshake may take (off the link task).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

type Handshake<'s> = Pin<Box<dyn Future<Output = (Credentials, Result<(Link, Arc<str>), NotReady>)> + Send + 's>>;

/// The link with the previous secret, finishing its own runs.
pub(super) struct Retiring {
    link: Link,
    pub(super) runs: Runs,
    /// Ended as silent after two tick intervals without a frame.
    pub(super) deadline: Instant,
}

#[derive(Default)]
pub(super) struct Rotation<'s> {
    /// The handshake with the new secret, while it runs.
    pub(super) pending: Option<Handshake<'s>>,
    /// When to try the new secret again after a refusal.
    pub(super) retry_at: Option<Instant>,
    pub(super) retiring: Option<Retiring>,
}

impl<'s> Rotation<'s> {
    /// Starts a handshake with `creds` (replacing one in progress).
    pub(super) fn start(&mut self, settings: &'s GatewaySettings, creds: Credentials) {
        self.retry_at = None;
        self.pending = Some(Box::pin(async move {
            let result = connect(settings, &creds).await;
            (creds, result)
        }));
    }

    /// The secret went back to the current link's: nothing to switch to.
    pub(super) fn cancel(&mut self) {
        self.pending = None;
        self.retry_at = None;
    }

    /// The new link is up: `old` keeps `runs` until they end.
    pub(super) fn retire(&mut self, old: Link, runs: Runs) {
        if let Some(mut older) = self.retiring.take() {
            // A second change before the first old link was done: its runs end.
            let down = Down::with_client(
                "the gateway secret changed again",
                "the gateway secret changed twice while this run was going, so the link it was on was closed".into(),
            );
            down.cut_all(&mut older.runs);
            close(older.link);
        }
        if runs.is_empty() {
            close(old);
            return;
        }
        let deadline = Instant::now() + old.tick * 2;
        self.retiring = Some(Retiring { link: old, runs, deadline });
    }

    pub(super) fn retiring_runs(&self) -> usize {
        self.retiring.as_ref().map_or(0, |r| r.runs.len())
    }

    /// A frame (or the end) of the old link.
    pub(super) async fn on_retiring_frame(
        &mut self,
        msg: Option<Result<Message, tungstenite::Error>>,
        max_frame_bytes: usize,
    ) {
        let Some(r) = self.retiring.as_mut() else { return };
        r.deadline = Instant::now() + r.link.tick * 2;
        let down = match msg {
            Some(Ok(Message::Text(text))) => {
                if text.len() > max_frame_bytes {
                    on_oversized(&text, &mut r.runs, max_frame_bytes);
                    None
                } else if let Some(frame) = on_frame(&text, &mut r.runs) {
                    // The abort of a run that waited for its session's name.
                    r.link
                        .ws
                        .send(Message::Text(frame.into()))
                        .await
                        .err()
                        .map(|e| Down::new(format!("send chat.abort: {e}")))
                } else {
                    None
                }
            }
            Some(Ok(Message::Close(c))) => Some(Down::closed(c)),
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(Down::new(format!("gateway socket error: {e}"))),
            None => Some(Down::new("gateway closed the socket")),
        };
        if let Some(down) = down {
            tracing::warn!(reason = %down.reason, runs = r.runs.len(), "the link of the previous gateway secret ended");
            down.cut_all(&mut r.runs);
        }
        if r.runs.is_empty() {
            let done = self.retiring.take().expect("present");
            tracing::info!("the link of the previous gateway secret is done; closing it");
            close(done.link);
        }
    }

    /// The old link went silent: its runs end.
    pub(super) fn retiring_silent(&mut self) {
        if let Some(mut r) = self.retiring.take() {
            let ms = (r.link.tick * 2).as_millis();
            let down = Down::with_client(
                format!("no frame on the link of the previous gateway secret for {ms} ms"),
                format!("no frame from the gateway for {ms} ms"),
            );
            tracing::warn!(reason = %down.reason, "the link of the previous gateway secret ended");
            down.cut_all(&mut r.runs);
            close(r.link);
        }
    }

    /// Sends `chat.abort` on the old link if the run is there; `false` if not.
    pub(super) async fn abort_retiring(&mut self, run_id: &str, frame: &str) -> bool {
        let Some(r) = self.retiring.as_mut() else { return false };
        if r.runs.remove(run_id).is_none() {
            return false;
        }
        if let Err(e) = r.link.ws.send(Message::Text(frame.to_owned().into())).await {
            self.on_retiring_frame(Some(Err(e)), usize::MAX).await;
        } else if r.runs.is_empty() {
            let done = self.retiring.take().expect("present");
            close(done.link);
        }
        true
    }
}

/// The next frame of the old link (`retiring` is `Some`: guarded by the caller).
pub(super) async fn next_frame(retiring: &mut Option<Retiring>) -> Option<Result<Message, tungstenite::Error>> {
    match retiring.as_mut() {
        Some(r) => r.link.ws.next().await,
        None => std::future::pending().await,
    }
}

/// The result of the handshake with the new secret (`pending` is `Some`).
pub(super) async fn handshake(
    pending: &mut Option<Handshake<'_>>,
) -> (Credentials, Result<(Link, Arc<str>), NotReady>) {
    let out = match pending.as_mut() {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    };
    *pending = None;
    out
}

/// Closes a link politely, off the link task, within [`CLOSE_TIMEOUT`].
fn close(link: Link) {
    let mut ws = link.ws;
    tokio::spawn(async move {
        let _ = timeout(CLOSE_TIMEOUT, ws.close(None)).await;
    });
}
