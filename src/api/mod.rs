//! The OpenAI routes clawbridge owns, behind one front door: every route
//! runs the same prelude ([`prelude::admit`]), fails with the one error type
//! ([`ApiError`]), and is declared once in the route table
//! (`ingress::routes`). Chat and responses run their turns through the turn
//! driver (`turn`) and differ only in parsing and rendering; models answer
//! from the gateway's `agents.list`.

pub mod handoff;
pub mod images;
pub mod io;
pub mod models;
pub mod parse_gate;
pub mod prelude;
pub mod route;
pub mod vision;

use std::sync::Arc;
use std::time::Instant;

use pingora::protocols::http::ServerSession as Session;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::auth::Authenticator;
use crate::config::Limits;
use crate::drain::Drain;
use crate::error::ApiError;
use crate::gateway::{Gateway, LinkState};
use crate::ingress::{Client, OwnedRoute};
use crate::responses::sessions::ResponseSessions;
use crate::turn::driver::Bounds;

/// Shared state of the owned routes.
pub struct Api {
    pub gateway: Gateway,
    /// Shared with the config watcher, which swaps its policy on a reload.
    pub auth: Arc<Authenticator>,
    pub limits: Limits,
    pub drain: Arc<Drain>,
    runs: Semaphore,
    pub parser: parse_gate::ParseGate,
    /// `previous_response_id` → session, as the built-in keeps it.
    pub responses: ResponseSessions,
    /// Which models take images (text-only ones get none).
    pub vision: vision::Vision,
    /// Agents configured in the gateway's file (kept current by the watcher).
    pub agents_configured: Arc<std::sync::atomic::AtomicUsize>,
    /// The gateway's own endpoints, for requests handed to them.
    pub builtin: Arc<handoff::Builtin>,
    pub upstream: crate::upstream::Upstream,
    pub connector: pingora::connectors::http::Connector,
}

impl Api {
    pub fn new(
        gateway: Gateway,
        auth: Arc<Authenticator>,
        limits: Limits,
        drain: Arc<Drain>,
        upstream: crate::upstream::Upstream,
    ) -> Self {
        let runs = Semaphore::new(limits.max_concurrent_runs);
        Api {
            gateway,
            auth,
            limits,
            drain,
            runs,
            parser: parse_gate::ParseGate::default(),
            responses: ResponseSessions::default(),
            vision: vision::Vision::default(),
            agents_configured: Arc::default(),
            builtin: Arc::default(),
            upstream,
            connector: pingora::connectors::http::Connector::new(None),
        }
    }

    /// Whether a new turn may start now: not draining, the link ready, a
    /// run slot free. Returns the gateway's default agent and the slot.
    pub fn admit_turn(&self) -> Result<(Arc<str>, SemaphorePermit<'_>), ApiError> {
        if self.drain.is_draining() {
            return Err(ApiError::ShuttingDown);
        }
        let default_agent = match self.gateway.state() {
            LinkState::Ready { default_agent } => default_agent,
            LinkState::Down { reason } => return Err(ApiError::GatewayUnavailable { reason: reason.to_string() }),
        };
        let permit = self.runs.try_acquire().map_err(|_| ApiError::Overloaded)?;
        Ok((default_agent, permit))
    }

    /// A request that names no agent has no owner when several agents are
    /// configured: the built-in's 400, not a run on the link's default.
    pub fn owner(&self, target: &route::AgentTarget) -> Result<(), ApiError> {
        let several = self.agents_configured.load(std::sync::atomic::Ordering::Relaxed) > 1;
        match target {
            route::AgentTarget::Default if several => {
                Err(ApiError::InvalidRequest(route::AGENT_SELECTION_REQUIRED.into()))
            }
            _ => Ok(()),
        }
    }

    /// The run's images, or none when its model is text-only (as the
    /// built-in drops them).
    pub async fn images_for(
        &self,
        attachments: Vec<crate::gateway::Attachment>,
        agent: &str,
        model: Option<&crate::gateway::ModelOverride>,
    ) -> Vec<crate::gateway::Attachment> {
        if attachments.is_empty() {
            return attachments;
        }
        // Boxed: a gateway call is a large future, and only turns with images make one.
        if Box::pin(self.vision.takes_images(&self.gateway, agent, model)).await {
            return attachments;
        }
        tracing::debug!(
            agent,
            images = attachments.len(),
            "text-only model: images dropped, as the built-in drops them"
        );
        Vec::new()
    }

    /// The limits a turn's loops run under.
    pub fn bounds(&self) -> Bounds {
        Bounds { run_timeout: self.limits.run_timeout, keepalive: self.limits.sse_keepalive }
    }
}

/// Reads the body (up to `limit`) and parses it with `parse`, off the event
/// loop when large. A request the native protocol cannot carry is handed to
/// the gateway's own endpoint when it is on: `Ok(None)`, already answered.
pub async fn parse_or_hand_off<T, F>(
    api: &Api,
    session: &mut Session,
    principal: &prelude::Principal,
    route: OwnedRoute,
    limit: usize,
    parse: F,
    log: &mut ApiLog,
) -> Result<Option<T>, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&[u8], route::RouteHeaders<'_>) -> Result<T, ApiError> + Send + 'static,
{
    let body = io::read_body(session, limit, api.limits.body_timeout).await?;
    log.body_bytes = body.len();
    let headers = prelude::HeaderText::read(session);
    // The body, its parse and the header copies are dropped by the caller
    // once the run starts, not kept for the life of a stream.
    match api.parser.parse(body.clone(), move |b| parse(b, headers.route())).await {
        // Boxed: the hand-off's HTTP client is a ~10 KiB future, which would
        // otherwise take room in every open stream's task.
        Err(ApiError::Inexpressible(_)) if api.builtin.on(route) => {
            let forward = handoff::forward(api, session, body, principal.forwarding.clone(), log);
            Box::pin(forward).await.map(|()| None)
        }
        parsed => parsed.map(Some),
    }
}

/// What the access log and metrics record about one owned request.
#[derive(Debug)]
pub struct ApiLog {
    pub started: Instant,
    /// `chat`, `responses` or `models`: the metrics' `api` label.
    pub api: &'static str,
    pub status: u16,
    pub outcome: &'static str,
    pub stream: bool,
    pub agent: Option<Arc<str>>,
    pub run_id: Option<Arc<str>>,
    pub body_bytes: usize,
    /// Response headers are on the wire; errors must go in-band.
    pub committed: bool,
}

impl Default for ApiLog {
    fn default() -> Self {
        ApiLog {
            started: Instant::now(),
            api: "chat",
            status: 0,
            outcome: "unknown",
            stream: false,
            agent: None,
            run_id: None,
            body_bytes: 0,
            committed: false,
        }
    }
}

/// Serves one request on an owned route to completion; never returns an
/// error: every failure becomes a response (or, once streaming, an event).
/// `client` is the request's client as the gateway would attribute it.
pub async fn serve(
    api: &Api,
    route: OwnedRoute,
    session: &mut Session,
    client: Client,
    forwarding: crate::ingress::Forwarding,
    log: &mut ApiLog,
) {
    session.set_write_timeout(Some(api.limits.write_timeout));
    log.api = route.api();
    let result = async {
        let principal = prelude::admit(&api.auth, session, client, forwarding, route.method()).await?;
        match route {
            OwnedRoute::ChatCompletions => crate::chat::handle(api, session, &principal, log).await,
            OwnedRoute::Responses => crate::responses::handle(api, session, &principal, log).await,
            OwnedRoute::Models => models::handle(api, session, log).await,
        }
    }
    .await;
    if let Err(e) = result {
        match &e {
            ApiError::Gateway { detail } => tracing::warn!(%detail, "gateway error"),
            ApiError::GatewayUnavailable { reason } => tracing::warn!(%reason, "gateway unavailable"),
            _ => {}
        }
        log.outcome = e.metric_label();
        log.status = e.status();
        if !log.committed && e != ApiError::ClientGone {
            let _ = io::write_error(session, &e, api.limits.keepalive_timeout).await;
        }
    }
}
