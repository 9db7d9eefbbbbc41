//! The chat route, `POST /v1/chat/completions`: the request as the built-in
//! endpoint validates it (`request`, `body`, `prompt`), turned into a run
//! request, and the turn rendered as `chat.completion` chunks or one body
//! (`render`). The prelude, the turn and the IO are shared (`api`, `turn`).

pub mod body;
pub mod json_error;
pub mod prompt;
pub mod render;
pub mod request;
pub mod response;
pub mod sse;

use std::sync::Arc;

use pingora::protocols::http::ServerSession as Session;

use crate::api::prelude::Principal;
use crate::api::{io, route, Api, ApiLog};
use crate::error::ApiError;
use crate::gateway::RunRequest;
use crate::ingress::OwnedRoute;
use crate::turn::{driver, Turn};

/// Serves one chat request after the prelude.
pub async fn handle(api: &Api, session: &mut Session, principal: &Principal, log: &mut ApiLog) -> Result<(), ApiError> {
    let route = OwnedRoute::ChatCompletions;
    let limit = api.limits.max_body_bytes;
    let parsed = crate::api::parse_or_hand_off(api, session, principal, route, limit, request::parse, log).await?;
    let Some(mut chat) = parsed else { return Ok(()) };
    log.stream = chat.stream;
    api.owner(&chat.agent)?;
    let (default_agent, _permit) = api.admit_turn()?;
    let agent: Arc<str> = Arc::from(chat.agent.resolve(&default_agent));
    let explicit = matches!(chat.session, route::SessionChoice::Explicit(_));
    // The folded prompt can be the whole conversation; the run takes it.
    let prompt = std::mem::take(&mut chat.prompt);
    let model = chat.model_override.take();
    let attachments = api.images_for(std::mem::take(&mut chat.attachments), &agent, model.as_ref()).await;
    let req = RunRequest {
        run_id: Arc::from(format!("chatcmpl_{}", uuid::Uuid::new_v4())),
        message: prompt.message,
        // An explicit session key runs without `agentId`, as the built-in runs it.
        agent_id: (!explicit).then(|| agent.clone()),
        session_key: Arc::from(chat.session.key(&agent)),
        extra_system_prompt: prompt.extra_system_prompt,
        channel: std::mem::take(&mut chat.channel),
        attachments,
        model,
    };
    let mut turn = Turn::start(&api.gateway, &api.parser, req, agent).await?;
    log.run_id = Some(turn.id.clone());
    log.agent = Some(turn.agent.clone());
    crate::metrics::INFLIGHT_RUNS.inc();
    let result = run(api, session, &chat, &mut turn, log).await;
    crate::metrics::INFLIGHT_RUNS.dec();
    log.outcome = result?;
    Ok(())
}

async fn run(
    api: &Api,
    session: &mut Session,
    chat: &request::ChatTurn,
    turn: &mut Turn,
    log: &mut ApiLog,
) -> Result<&'static str, ApiError> {
    turn.accept(session, api.limits.accept_timeout).await?;
    let drain = api.drain.deadline_passed();
    if chat.stream {
        io::write_sse_header(session).await.map_err(|_| driver::gone("before_first_byte"))?;
        log.committed = true;
        log.status = 200;
        let mut r = render::ChatSse::new(&turn.id, turn.created, &chat.model, chat.include_usage, turn.agent.clone());
        driver::stream(session, turn, &mut r, api.bounds(), drain, log.started).await
    } else {
        let done = driver::collect(session, turn, api.bounds(), drain, log.started).await?;
        let body = render::body(&done, &turn.id, turn.created, &chat.model, &turn.agent)?;
        log.status = 200;
        io::write_json(session, body, api.limits.keepalive_timeout).await.map_err(|_| driver::gone("during_wait"))?;
        Ok("ok")
    }
}
