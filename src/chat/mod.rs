//! The chat route, `POST /v1/chat/completions`, served over the gateway's
//! native `agent` method. `serve` reads as the built-in endpoint's steps:
//! prelude (method, proxy headers, auth), body, validation, then the run,
//! streamed (`flow::stream`) or collected (`flow::collect`). Only this file
//! and `flow.rs`/`io.rs` touch the session; everything else here is pure.

pub mod assistant_text;
pub mod body;
pub mod failure;
mod flow;
pub mod io;
pub mod json_error;
pub mod parsing;
pub mod prompt;
pub mod request;
pub mod response;
pub mod route;
pub mod sse;
mod stream;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pingora::protocols::http::ServerSession as Session;
use tokio::sync::Semaphore;

use crate::auth::Authenticator;
use crate::config::Limits;
use crate::drain::Drain;
use crate::error::ChatError;
use crate::gateway::{frames, Gateway, LinkState, RunEvents};
use crate::ingress::Client;
use prompt::Prompt;

pub const PATH: &str = "/v1/chat/completions";

/// Shared state of the chat route.
pub struct ChatService {
    pub gateway: Gateway,
    /// Shared with the config watcher, which swaps its policy on a reload.
    pub auth: Arc<Authenticator>,
    pub limits: Limits,
    pub drain: Arc<Drain>,
    runs: Semaphore,
    parser: parsing::ParseGate,
}

impl ChatService {
    pub fn new(gateway: Gateway, auth: Arc<Authenticator>, limits: Limits, drain: Arc<Drain>) -> Self {
        let runs = Semaphore::new(limits.max_concurrent_runs);
        ChatService { gateway, auth, limits, drain, runs, parser: parsing::ParseGate::default() }
    }
}

/// What the access log and metrics record about one chat request.
#[derive(Debug)]
pub struct ChatLog {
    pub started: Instant,
    pub status: u16,
    pub outcome: &'static str,
    pub stream: bool,
    pub agent: Option<Arc<str>>,
    pub run_id: Option<Arc<str>>,
    pub body_bytes: usize,
    /// Response headers are on the wire; errors must go in-band.
    pub committed: bool,
}

impl Default for ChatLog {
    fn default() -> Self {
        ChatLog {
            started: Instant::now(),
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

/// Serves one chat request to completion; never returns an error: every
/// failure becomes a response (or, once streaming, an error event).
/// `client` is the request's client as the gateway would attribute it.
pub async fn serve(svc: &ChatService, session: &mut Session, client: Client, log: &mut ChatLog) {
    if let Err(e) = handle(svc, session, client, log).await {
        log.outcome = e.metric_label();
        log.status = e.status();
        if !log.committed && e != ChatError::ClientGone {
            let _ = io::write_error(session, &e, svc.limits.keepalive_timeout).await;
        }
    }
}

async fn handle(svc: &ChatService, session: &mut Session, client: Client, log: &mut ChatLog) -> Result<(), ChatError> {
    session.set_write_timeout(Some(svc.limits.write_timeout));
    // The gateway refuses unattributable proxy traffic before routing.
    let Some(client_ip) = client.ip() else {
        return Err(ChatError::ProxyAttribution);
    };
    expect(session).await?;
    if session.req_header().method != http::Method::POST {
        return Err(ChatError::MethodNotAllowed);
    }
    authenticate(svc, session, client_ip).await?;
    let body = io::read_body(session, svc.limits.max_body_bytes, svc.limits.body_timeout).await?;
    log.body_bytes = body.len();
    // The body, its parse and the header copies are dropped by `parse`, not
    // kept for the life of a stream.
    let mut turn = svc.parser.parse(body, HeaderText::read(session).owned()).await?;
    log.stream = turn.stream;
    if svc.drain.is_draining() {
        return Err(ChatError::ShuttingDown);
    }
    let default_agent = match svc.gateway.state() {
        LinkState::Ready { default_agent } => default_agent,
        LinkState::Down { reason } => return Err(ChatError::GatewayUnavailable { reason: reason.to_string() }),
    };
    let _permit = svc.runs.try_acquire().map_err(|_| ChatError::Overloaded)?;
    // The folded prompt can be the whole conversation; the run takes it.
    let prompt = std::mem::take(&mut turn.prompt);
    let mut run = start_run(svc, &turn, prompt, &default_agent).await?;
    log.run_id = Some(run.id.clone());
    log.agent = Some(run.agent.clone());
    crate::metrics::INFLIGHT_RUNS.inc();
    let result = async {
        flow::await_accept(svc, session, &mut run).await?;
        if turn.stream {
            stream::stream(svc, session, &turn, &mut run, log).await
        } else {
            flow::collect(svc, session, &turn, &mut run, log).await
        }
    }
    .await;
    crate::metrics::INFLIGHT_RUNS.dec();
    if let Ok(outcome) = &result {
        log.outcome = outcome;
    }
    result.map(|_| ())
}

/// `Expect` on HTTP/1.1, first of all, as Node and the gateway handle it:
/// `100-continue` (a token anywhere in the value, any case) is answered
/// with `100 Continue` at once; any other expectation gets 417.
async fn expect(session: &mut Session) -> Result<(), ChatError> {
    let req = session.req_header();
    if req.version != http::Version::HTTP_11 {
        return Ok(());
    }
    let Some(value) = req.headers.get(http::header::EXPECT) else { return Ok(()) };
    if !expects_continue(value.as_bytes()) {
        return Err(ChatError::ExpectationFailed);
    }
    session.write_continue_response().await.map_err(|_| ChatError::ClientGone)
}

/// Node's `/(?:^|\W)100-continue(?:$|\W)/i`.
fn expects_continue(value: &[u8]) -> bool {
    const TOKEN: &[u8] = b"100-continue";
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    value.windows(TOKEN.len()).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(TOKEN)
            && (i == 0 || !word(value[i - 1]))
            && value.get(i + TOKEN.len()).is_none_or(|&b| !word(b))
    })
}

/// The built-in's prelude: lockout, bearer check, and the loopback slow-down.
async fn authenticate(svc: &ChatService, session: &Session, client: IpAddr) -> Result<(), ChatError> {
    let header = session.req_header().headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes());
    match svc.auth.check(header, client) {
        Ok(()) => Ok(()),
        Err(rejection) => {
            if let Some(delay) = rejection.delay {
                tokio::time::sleep(delay).await;
            }
            Err(rejection.error)
        }
    }
}

/// The routing headers as text, decoded like Node decodes header bytes
/// (latin1), so a non-ASCII value is validated and refused rather than
/// silently treated as absent.
struct HeaderText([Option<String>; 5]);

impl HeaderText {
    const NAMES: [&'static str; 5] = [
        "x-openclaw-agent-id",
        "x-openclaw-agent",
        "x-openclaw-session-key",
        "x-openclaw-model",
        "x-openclaw-message-channel",
    ];

    fn read(session: &Session) -> Self {
        let h = &session.req_header().headers;
        HeaderText(Self::NAMES.map(|name| h.get(name).map(|v| latin1(v.as_bytes()))))
    }

    /// The route headers in `parsing::OwnedHeaders` order.
    fn owned(self) -> parsing::OwnedHeaders {
        let [agent_id, agent, session_key, model, channel] = self.0;
        [agent_id.filter(|v| !v.trim().is_empty()).or(agent), session_key, model, channel]
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// A started run. Dropping it before it finished aborts it on the gateway.
pub struct Run {
    pub id: Arc<str>,
    pub agent: Arc<str>,
    pub session_key: Arc<str>,
    pub created: u64,
    pub events: RunEvents,
    gateway: Gateway,
    finished: bool,
}

impl Run {
    pub fn mark_finished(&mut self) {
        self.finished = true;
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.finished {
            // The key the gateway named (2026.5.x refuses any other), else ours.
            let key = self.events.session_key().unwrap_or_else(|| self.session_key.clone());
            self.gateway.abort(self.id.clone(), key);
        }
    }
}

async fn start_run(
    svc: &ChatService,
    turn: &request::ChatTurn,
    prompt: Prompt,
    default_agent: &str,
) -> Result<Run, ChatError> {
    let agent: Arc<str> = Arc::from(turn.agent.resolve(default_agent));
    let explicit = matches!(turn.session, route::SessionChoice::Explicit(_));
    let session_key: Arc<str> = Arc::from(turn.session.key(&agent));
    let id: Arc<str> = Arc::from(format!("chatcmpl_{}", uuid::Uuid::new_v4()));
    let size = prompt.message.len() + prompt.extra_system_prompt.as_ref().map_or(0, String::len);
    let (frame_id, frame_agent, frame_key, channel) =
        (id.clone(), agent.clone(), session_key.clone(), turn.channel.clone());
    // A long prompt's frame is encoded (JSON-escaped) off the event loop too.
    let frame = svc
        .parser
        .sized(size, move || {
            let params = frames::AgentParams {
                message: &prompt.message,
                // An explicit session key runs without `agentId`, as the built-in runs it.
                agent_id: (!explicit).then_some(&*frame_agent),
                session_key: &frame_key,
                extra_system_prompt: prompt.extra_system_prompt.as_deref(),
                deliver: false,
                channel: &channel,
                // No `timeout`: the agent's own configured timeout applies, as for
                // the built-in; clawbridge's run deadline is enforced in `flow`.
                idempotency_key: &frame_id,
            };
            frames::agent_request(&frame_id, &params)
        })
        .await?;
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let events = svc
        .gateway
        .start(id.clone(), frame)
        .await
        .ok_or_else(|| ChatError::GatewayUnavailable { reason: "gateway task stopped".into() })?;
    Ok(Run { id, agent, session_key, created, events, gateway: svc.gateway.clone(), finished: false })
}
