//! What the native protocol cannot express (client `tools`), handed to the
//! gateway's own endpoint when it is on, so the client gets the built-in's
//! answer rather than a 400. The request goes as the client sent it, with
//! the body clawbridge already read and the client named upstream exactly
//! as passthrough names it (`Forwarding`); the answer is relayed as it
//! comes, streams included.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use pingora::protocols::http::ServerSession as Session;

use super::{Api, ApiLog};
use crate::error::ApiError;
use crate::ingress::{Forwarding, OwnedRoute};

/// Whether the gateway's own endpoints are on (`gateway.http.endpoints`),
/// kept current by the config watcher.
#[derive(Debug, Default)]
pub struct Builtin {
    pub chat: AtomicBool,
    pub responses: AtomicBool,
}

impl Builtin {
    pub fn on(&self, route: OwnedRoute) -> bool {
        match route {
            OwnedRoute::ChatCompletions => self.chat.load(Ordering::Relaxed),
            OwnedRoute::Responses => self.responses.load(Ordering::Relaxed),
            OwnedRoute::Models => false,
        }
    }

    pub fn set(&self, chat: bool, responses: bool) {
        self.chat.store(chat, Ordering::Relaxed);
        self.responses.store(responses, Ordering::Relaxed);
    }
}

/// Relays the request to the gateway and its answer to the client.
pub async fn forward(
    api: &Api,
    session: &mut Session,
    body: Bytes,
    forwarding: Forwarding,
    log: &mut ApiLog,
) -> Result<(), ApiError> {
    let unavailable =
        |what: &str, e: Box<pingora::Error>| ApiError::GatewayUnavailable { reason: format!("{what}: {e}") };
    let peer = api.upstream.peer().await.map_err(|e| unavailable("handoff peer", e))?;
    let (mut up, _) = api.connector.get_http_session(&*peer).await.map_err(|e| unavailable("handoff connect", e))?;
    up.set_read_timeout(Some(api.limits.run_timeout));
    up.set_write_timeout(Some(api.limits.write_timeout));
    let mut req = session.req_header().clone();
    for name in [http::header::TRANSFER_ENCODING, http::header::EXPECT, http::header::CONNECTION] {
        req.remove_header(&name);
    }
    req.insert_header(http::header::CONTENT_LENGTH, body.len().to_string()).expect("number header");
    forwarding.apply(&mut req).map_err(|e| unavailable("handoff headers", e))?;
    up.write_request_header(Box::new(req)).await.map_err(|e| unavailable("handoff request", e))?;
    up.write_request_body(body, true).await.map_err(|e| unavailable("handoff body", e))?;
    up.finish_request_body().await.map_err(|e| unavailable("handoff body", e))?;
    up.read_response_header().await.map_err(|e| unavailable("handoff response", e))?;
    let head =
        up.response_header().cloned().ok_or_else(|| ApiError::Gateway { detail: "handoff: no response".into() })?;
    log.status = head.status.as_u16();
    log.outcome = "handoff";
    session.write_response_header(Box::new(head)).await.map_err(|_| ApiError::ClientGone)?;
    log.committed = true;
    loop {
        match up.read_response_body().await {
            Ok(Some(chunk)) => session.write_response_body(chunk, false).await.map_err(|_| ApiError::ClientGone)?,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "handoff: the gateway's answer broke off");
                session.set_keepalive(None);
                return Ok(());
            }
        }
    }
    session.write_response_body(Bytes::new(), true).await.map_err(|_| ApiError::ClientGone)?;
    api.connector.release_http_session(up, &*peer, Some(Duration::from_secs(5))).await;
    Ok(())
}
