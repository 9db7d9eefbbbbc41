//! The responses route, `POST /v1/responses` (OpenResponses), served over
//! the native `agent` method as the built-in serves it: the body validated
//! against its strict schema (`request`), the turn run by the turn driver,
//! and rendered as OpenResponses events or one `response` object
//! (`render`). `previous_response_id` continues a session (`sessions`).

pub mod render;
pub mod request;
pub mod sessions;

use std::sync::Arc;

use pingora::protocols::http::ServerSession as Session;

use crate::api::prelude::{HeaderText, Principal};
use crate::api::{io, route, Api, ApiLog};
use crate::error::ApiError;
use crate::gateway::RunRequest;
use crate::ingress::OwnedRoute;
use crate::turn::{driver, Turn};
use render::Identity;

/// Serves one responses request after the prelude.
pub async fn handle(api: &Api, session: &mut Session, principal: &Principal, log: &mut ApiLog) -> Result<(), ApiError> {
    // The built-in's limit here is 20 MiB, `limits.max_body_bytes`' default;
    // an operator's lower limit holds for every route.
    let limit = api.limits.max_body_bytes;
    let parsed =
        crate::api::parse_or_hand_off(api, session, principal, OwnedRoute::Responses, limit, request::parse, log);
    let Some(mut req) = parsed.await? else { return Ok(()) };
    log.stream = req.stream;
    api.owner(&req.agent)?;
    let (default_agent, _permit) = api.admit_turn()?;
    let agent: Arc<str> = Arc::from(req.agent.resolve(&default_agent));
    let bearer =
        session.req_header().headers.get(http::header::AUTHORIZATION).and_then(|v| crate::auth::bearer(v.as_bytes()));
    let requested = HeaderText::read(session);
    let scope = sessions::Scope::new(bearer, api.auth.mode_label(), &agent, requested.route().session_key);
    let explicit = matches!(req.session, route::SessionChoice::Explicit(_));
    let continued = req.previous_response_id.as_deref().and_then(|id| api.responses.lookup(id, &scope));
    let session_key: Arc<str> = Arc::from(continued.unwrap_or_else(|| req.session.key(&agent)));
    let id = format!("resp_{}", uuid::Uuid::new_v4());
    let model = req.model_override.take();
    let attachments = api.images_for(std::mem::take(&mut req.attachments), &agent, model.as_ref()).await;
    let run = RunRequest {
        run_id: Arc::from(id.as_str()),
        message: std::mem::take(&mut req.message),
        agent_id: (!explicit).then(|| agent.clone()),
        session_key: session_key.clone(),
        extra_system_prompt: req.extra_system_prompt.take(),
        channel: std::mem::take(&mut req.channel),
        attachments,
        model,
    };
    let mut turn = Turn::start(&api.gateway, &api.parser, run, agent).await?;
    log.run_id = Some(turn.id.clone());
    log.agent = Some(turn.agent.clone());
    let identity = Identity {
        id,
        item_id: format!("msg_{}", uuid::Uuid::new_v4()),
        created_at: turn.created,
        model: std::mem::take(&mut req.model),
        agent: turn.agent.clone(),
    };
    crate::metrics::INFLIGHT_RUNS.inc();
    let result = run_turn(api, session, req.stream, &mut turn, identity, log).await;
    crate::metrics::INFLIGHT_RUNS.dec();
    // The built-in remembers a response's session whatever its outcome.
    api.responses.remember(&turn.id, &session_key, scope);
    log.outcome = result?;
    Ok(())
}

async fn run_turn(
    api: &Api,
    session: &mut Session,
    stream: bool,
    turn: &mut Turn,
    identity: Identity,
    log: &mut ApiLog,
) -> Result<&'static str, ApiError> {
    turn.accept(session, api.limits.accept_timeout).await?;
    let drain = api.drain.deadline_passed();
    if stream {
        io::write_sse_header(session).await.map_err(|_| driver::gone("before_first_byte"))?;
        log.committed = true;
        log.status = 200;
        let mut r = render::ResponsesSse::new(identity);
        driver::stream(session, turn, &mut r, api.bounds(), drain, log.started).await
    } else {
        let done = driver::collect(session, turn, api.bounds(), drain, log.started).await?;
        let (status, body) = render::body(&done, &identity);
        log.status = status;
        io::write_json_status(session, status, body, api.limits.keepalive_timeout)
            .await
            .map_err(|_| driver::gone("during_wait"))?;
        Ok(if status == 200 { "ok" } else { "run_failed" })
    }
}
