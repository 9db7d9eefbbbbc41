//! `Clawbridge`, the `ProxyHttp` implementation: a dispatcher. The front
//! door (`ingress`) decides the route on the path the gateway routes on; an
//! owned route (chat, responses, models, when enabled) is answered locally by
//! `api::serve`, on a detached task (`detach`); every other request, WebSocket upgrades
//! included, goes to the gateway unchanged except for `X-Forwarded-For`,
//! which names a non-local client so the gateway sees it as itself.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{ProxyHttp, Session};
use pingora::Result;

use crate::api::{self, Api, ApiLog};
use crate::config::Live;
use crate::ingress::attribution::direct_local;
use crate::ingress::{Attributor, Client, Forwarding, OwnedRoute, Refusal, Routed, Routes};
use crate::metrics;

pub struct Clawbridge {
    /// Counts requests in flight so a drain can end early when idle.
    pub drain: Arc<crate::drain::Drain>,
    /// `None` when no owned route is enabled: everything is passed through.
    pub api: Option<Arc<Api>>,
    pub upstream: crate::upstream::Upstream,
    pub detacher: Arc<crate::detach::Detacher<pingora::proxy::HttpProxy<Clawbridge>>>,
    /// The owned routes that are switched on.
    pub routes: Routes,
    /// `gateway.trustedProxies`: how clients are attributed and forwarded
    /// (reloaded with the gateway's file).
    pub attributor: Arc<Live<Attributor>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// An owned route served on Pingora's request task.
    Api,
    /// An owned request served on its own task: it logs itself.
    Detached,
    Http,
    WebSocket,
    /// Answered by the front door itself.
    Refused(Refusal),
}

/// Per-request state.
pub struct Ctx {
    route: Route,
    started: Instant,
    api: ApiLog,
    /// What a forwarded request carries upstream about its client.
    forwarding: Forwarding,
    _inflight: crate::drain::InFlight,
}

#[async_trait]
impl ProxyHttp for Clawbridge {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            route: Route::Http,
            started: Instant::now(),
            _inflight: self.drain.track(),
            api: ApiLog::default(),
            forwarding: Forwarding::Untouched,
        }
    }

    /// Runs first for every request. `Ok(true)` means the request was
    /// answered here (an owned route, or a refusal); `Ok(false)` forwards it.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if crate::http_guard::screen(session).await {
            return Ok(true);
        }
        let req = session.req_header();
        let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let (route, svc) = match (self.routes.route(req.raw_path()), &self.api) {
            (Routed::Owned(route), Some(svc)) => (route, svc),
            (Routed::Unroutable, _) => return refuse(session, ctx, Refusal::Unroutable).await,
            _ => {
                ctx.route = if session.is_upgrade_req() { Route::WebSocket } else { Route::Http };
                // A local client needs no settings snapshot: it is forwarded untouched.
                let local = peer.is_some_and(|ip| direct_local(ip, &req.headers));
                if !local {
                    ctx.forwarding = self.attributor.load().forwarding(peer, &req.headers);
                }
                return Ok(false);
            }
        };
        if let Some(refusal) = Refusal::for_owned(req) {
            return refuse(session, ctx, refusal).await;
        }
        let attributor = self.attributor.load();
        let client = attributor.client(peer, &req.headers);
        // Named upstream as passthrough names it, should the request be handed on.
        let forwarding = match peer {
            Some(ip) if direct_local(ip, &req.headers) => Forwarding::Untouched,
            _ => attributor.forwarding(peer, &req.headers),
        };
        match self.detacher.take(session) {
            // Pingora finishes the inert session left behind and ends
            // its request task; the new task owns the connection.
            Some(detached) => {
                ctx.route = Route::Detached;
                let log = std::mem::take(&mut ctx.api);
                let inflight = self.drain.track();
                let work = (route, client, forwarding);
                tokio::spawn(serve_detached(svc.clone(), work, detached, log, ctx.started, inflight));
            }
            None => {
                ctx.route = Route::Api;
                api::serve(svc, route, session, client, forwarding, &mut ctx.api).await;
            }
        }
        Ok(true)
    }

    /// Names a non-local client to the gateway (`X-Forwarded-For`), and
    /// drops forwarding headers the client was not trusted to send.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        std::mem::replace(&mut ctx.forwarding, Forwarding::Untouched).apply(upstream)
    }

    /// A forwarded body is complete: the connection's request deadline ends.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        _body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        if end_of_stream {
            crate::http_guard::body_done(&session.downstream_session);
        }
        Ok(())
    }

    /// Every forwarded request goes to the one gateway (HTTPS for an `https://` upstream).
    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        self.upstream.peer().await
    }

    /// Runs last: one access-log line and the request metrics.
    async fn logging(&self, session: &mut Session, error: Option<&pingora::Error>, ctx: &mut Ctx) {
        match ctx.route {
            // The session left here is the inert one.
            Route::Detached => {}
            Route::Api => log_api(session, &ctx.api, ctx.started),
            Route::Refused(refusal) => tracing::info!(
                target: "access",
                method = session.req_header().method.as_str(),
                route = "refused",
                status = refusal.status(),
                reason = refusal.label(),
                duration_ms = ctx.started.elapsed().as_secs_f64() * 1e3,
            ),
            Route::Http | Route::WebSocket => {
                let status = session.response_written().map(|r| r.status.as_u16()).unwrap_or(0);
                let method = session.req_header().method.as_str();
                let elapsed = ctx.started.elapsed();
                let kind = if ctx.route == Route::WebSocket { "websocket" } else { "http" };
                let class = if status == 0 { "error" } else { metrics::status_class(status) };
                metrics::PASSTHROUGH.with_label_values(&[kind, class]).inc();
                tracing::info!(
                    target: "access",
                    method,
                    route = kind,
                    status,
                    duration_ms = elapsed.as_secs_f64() * 1e3,
                    bytes_out = session.body_bytes_sent(),
                    error = error.map(|e| e.etype().as_str()).unwrap_or("-"),
                );
            }
        }
    }
}

/// Answers a refusal and closes the connection.
async fn refuse(session: &mut Session, ctx: &mut Ctx, refusal: Refusal) -> Result<bool> {
    ctx.route = Route::Refused(refusal);
    let (header, body) = refusal.response();
    session.set_keepalive(None);
    session.write_response_header(header, false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(true)
}

/// Serves a detached request on an owned route, logs it, then serves the
/// connection's next requests.
async fn serve_detached(
    svc: Arc<Api>,
    (route, client, forwarding): (OwnedRoute, Client, Forwarding),
    mut detached: crate::detach::Detached<pingora::proxy::HttpProxy<Clawbridge>>,
    mut log: ApiLog,
    started: Instant,
    inflight: crate::drain::InFlight,
) {
    api::serve(&svc, route, &mut detached.session, client, forwarding, &mut log).await;
    log_api(&detached.session, &log, started);
    drop(inflight);
    // Boxed: finishing a session is a ~4 KiB future, which would otherwise
    // take room in every open stream's task.
    Box::pin(detached.resume()).await;
}

/// One access-log line and the request metrics of an owned route.
fn log_api(session: &ServerSession, log: &ApiLog, started: Instant) {
    let elapsed = started.elapsed();
    let status = match log.status {
        0 => session.response_written().map(|r| r.status.as_u16()).unwrap_or(0),
        s => s,
    };
    let stream = if log.stream { "true" } else { "false" };
    let agent = log.agent.as_deref().unwrap_or("-");
    let label = if agent == "-" { agent } else { metrics::agent_label(agent) };
    metrics::CHAT_REQUESTS
        .with_label_values(&[log.api, log.outcome, metrics::status_class(status), label, stream])
        .inc();
    metrics::CHAT_DURATION.with_label_values(&[log.api, log.outcome, stream]).observe(elapsed.as_secs_f64());
    tracing::info!(
        target: "access",
        method = session.req_header().method.as_str(),
        route = log.api,
        status,
        duration_ms = elapsed.as_secs_f64() * 1e3,
        agent,
        outcome = log.outcome,
        stream = log.stream,
        run_id = log.run_id.as_deref().unwrap_or("-"),
        bytes_in = log.body_bytes,
        bytes_out = session.body_bytes_sent(),
    );
}
