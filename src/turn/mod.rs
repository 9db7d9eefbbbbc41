//! The turn driver: one agent turn on the shared gateway link, from its
//! `agent` request to its end, whichever API asked for it. [`Turn::start`]
//! sends the run, [`Turn::accept`] waits for the gateway to take it, and
//! [`driver`] follows it to its end, handing the API's renderer typed events
//! (text deltas, the finish with its reason and usage, or a failure). A turn
//! dropped before its end is aborted on the gateway.

pub mod driver;
pub mod failure;
pub mod text;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingora::time::fast_timeout::fast_sleep;

use crate::api::parse_gate::ParseGate;
use crate::api::route;
use crate::error::ApiError;
use crate::gateway::{Accepted, Cut, ErrorShape, Gateway, RunEvent, RunEvents, RunRequest};

pub use driver::{Downstream, Render};

/// A started run. Dropping it before it finished aborts it on the gateway.
pub struct Turn {
    pub id: Arc<str>,
    pub agent: Arc<str>,
    /// The session the run was asked for; once accepted, the gateway's
    /// canonical key for it (what `chat.abort` must name).
    pub session_key: Arc<str>,
    pub created: u64,
    pub events: RunEvents,
    gateway: Gateway,
    finished: bool,
}

impl Turn {
    /// Encodes the run's `agent` frame (off the event loop when it is long)
    /// and hands it to the link.
    pub async fn start(
        gateway: &Gateway,
        parser: &ParseGate,
        req: RunRequest,
        agent: Arc<str>,
    ) -> Result<Turn, ApiError> {
        let (id, session_key) = (req.run_id.clone(), req.session_key.clone());
        let frame = parser.sized(req.text_len(), move || req.frame()).await?;
        let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let events = gateway
            .start(id.clone(), frame)
            .await
            .ok_or_else(|| ApiError::GatewayUnavailable { reason: "gateway task stopped".into() })?;
        Ok(Turn { id, agent, session_key, created, events, gateway: gateway.clone(), finished: false })
    }

    /// The run is over on the gateway: nothing to abort.
    pub fn mark_finished(&mut self) {
        self.finished = true;
    }

    /// Waits for the first `res`. Until the gateway accepts the run nothing
    /// is committed to the client, so a refusal (unknown agent, gateway
    /// trouble) is still a real HTTP status.
    pub async fn accept<D: Downstream>(&mut self, client: &mut D, wait: Duration) -> Result<(), ApiError> {
        let deadline = fast_sleep(wait);
        tokio::pin!(deadline);
        loop {
            let event = tokio::select! {
                ev = self.events.recv() => ev,
                _ = client.gone() => return Err(driver::gone("before_accept")),
                _ = &mut deadline => return Err(ApiError::GatewayUnavailable {
                    reason: format!("gateway did not accept the run within {wait:?}"),
                }),
            };
            match event {
                Some(RunEvent::Accepted(accepted)) => {
                    let Accepted { session_key, agent_id } = *accepted;
                    if let Some(key) = session_key {
                        self.session_key = key.into();
                    }
                    if let Some(agent) = agent_id {
                        self.agent = agent.into();
                    }
                    return Ok(());
                }
                Some(RunEvent::Rejected(e)) => {
                    self.mark_finished();
                    return Err(rejection(&e, &self.agent));
                }
                // A replayed idempotent result can arrive without an accept.
                Some(RunEvent::Finished(_)) => {
                    self.mark_finished();
                    return Err(ApiError::Gateway { detail: "run finished before it was accepted".into() });
                }
                Some(RunEvent::Cut(cut)) => {
                    return Err(match *cut {
                        // Never sent: nothing to abort.
                        Cut::RequestTooLarge { .. } => {
                            self.mark_finished();
                            ApiError::RequestTooLarge(cut.to_string())
                        }
                        // Not finished: the gateway may still run it (a silent
                        // link was dropped); the drop queues a `chat.abort`.
                        Cut::LinkLost(reason) => ApiError::GatewayUnavailable { reason: reason.to_string() },
                        cut => driver::cut_error(&cut),
                    });
                }
                Some(_) => continue,
                None => {
                    return Err(ApiError::GatewayUnavailable { reason: "run dropped before it was accepted".into() })
                }
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !self.finished {
            // The key the gateway named (2026.5.x refuses any other), else ours.
            let key = self.events.session_key().unwrap_or_else(|| self.session_key.clone());
            self.gateway.abort(self.id.clone(), key);
        }
    }
}

/// The gateway refused the `agent` request.
fn rejection(e: &ErrorShape, agent: &str) -> ApiError {
    if e.message.contains("unknown agent id") {
        return route::unknown_agent(agent);
    }
    if e.message.starts_with("Unknown model") {
        return ApiError::ModelNotFound(e.message.clone());
    }
    // The native attachment path has its own limits (6 MiB an image where
    // the built-in takes 10 MiB): say so, with the gateway's sizes.
    if e.code == "INVALID_REQUEST" && e.message.contains("attachment") {
        let detail = e.message.trim_start_matches("Error: ");
        return ApiError::InvalidRequest(format!("The gateway refused an image: {detail}"));
    }
    if e.message.contains("belongs to") || e.message.contains("invalid agent params") {
        return ApiError::InvalidRequest(e.message.clone());
    }
    ApiError::Gateway { detail: format!("{} {}", e.code, e.message) }
}
