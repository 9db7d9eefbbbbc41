//! The first look at every request, before any route: tells the
//! connection guard (`conn_guard`) that the head is in, and refuses what the
//! gateway's Node server refuses before its handlers run: both
//! `Content-Length` and `Transfer-Encoding` (llhttp: 400) and an HTTP/1.1
//! request without `Host` (Node's `requireHostHeader`: 400). Upgrade
//! requests are exempt from the `Host` check, as in Node.

use http::{header, Version};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;

use crate::conn_guard;

/// Runs first for every request; `true` when it answered (and the
/// connection is closed after the answer).
pub async fn screen(session: &mut Session) -> bool {
    let downstream = &*session.downstream_session;
    let upgrade = downstream.is_upgrade_req();
    let req = downstream.req_header();
    let guarded = conn_guard::of(downstream);
    if let Some(g) = guarded {
        g.head_done(!upgrade && has_body(&req.headers));
    }
    let refuse = guarded.is_some_and(conn_guard::Guarded::saw_length_and_chunked)
        || (req.version == Version::HTTP_11 && !upgrade && !req.headers.contains_key(header::HOST));
    if refuse {
        bad_request(&mut session.downstream_session).await;
    }
    refuse
}

/// The request body is complete (for the connection guard's deadline).
pub fn body_done(session: &ServerSession) {
    if let Some(g) = conn_guard::of(session) {
        g.body_done();
    }
}

fn has_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers.get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
}

/// Node's 400: no body, `Connection: close`.
async fn bad_request(session: &mut ServerSession) {
    let mut h = ResponseHeader::build(400, Some(1)).expect("valid status");
    h.insert_header(header::CONTENT_LENGTH, "0").expect("static header");
    session.set_keepalive(None);
    let _ = session.write_response_header(Box::new(h)).await;
    let _ = session.finish_body().await;
}
