//! Downstream IO of the owned routes on a Pingora session: reading the body
//! within its size and time limits, and writing error, JSON and SSE
//! responses with the headers the gateway sends. Nothing else.

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession as Session;
use std::time::Duration;

use crate::error::ApiError;

/// Headers the gateway puts on every response of this route.
const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Permissions-Policy", "camera=(), microphone=(self), geolocation=()"),
];

/// An unread request body up to this size is drained so the connection can
/// be reused; a larger one closes it.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// The request's `Content-Length`, if it has a valid one.
fn declared_length(session: &Session) -> Option<u64> {
    let value = session.req_header().headers.get(http::header::CONTENT_LENGTH)?;
    value.to_str().ok()?.trim().parse().ok()
}

/// Reads the whole request body, refusing more than `limit` bytes (413), a
/// body slower than `timeout` (408) or broken chunked framing (400, as
/// Node's parser answers it).
pub async fn read_body(session: &mut Session, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let declared = declared_length(session);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    let read = async {
        while let Some(chunk) = session.read_request_body().await.map_err(|e| body_error(&e))? {
            if buf.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match pingora::time::fast_timeout::fast_timeout(timeout, read).await {
        Ok(Ok(())) => {
            crate::http_guard::body_done(session);
            Ok(buf.freeze())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::BodyTimeout),
    }
}

/// A failed body read: a timeout (408), the client gone (its connection
/// already answered by the connection guard, or closed), or bytes that are
/// not a body (400).
fn body_error(e: &pingora::Error) -> ApiError {
    use pingora::ErrorType::{ConnectionClosed, ReadError, ReadTimedout};
    match e.etype() {
        ReadTimedout => ApiError::BodyTimeout,
        ConnectionClosed | ReadError => ApiError::ClientGone,
        _ => ApiError::MalformedBody,
    }
}

/// Headers Pingora sets on every response, appended in this order.
const PINGORA_FILLS: [&str; 2] = ["Date", "Connection"];

/// What to hand Pingora for a stream, as Pingora keeps the header for as
/// long as the response lasts: a clone, because a clone's header maps are
/// exactly as large as their contents, ~0.8 KiB less than the builder's.
/// (A whole response is written at once, so it is not worth the copy.)
/// `Date` and `Connection` are reserved first, where Pingora would append
/// them; it overwrites them in place instead of growing the maps.
fn sealed(mut h: Box<ResponseHeader>) -> Box<ResponseHeader> {
    for name in PINGORA_FILLS {
        h.insert_header(name, "-").expect("static header");
    }
    Box::new((*h).clone())
}

/// `content_type` empty: none (the gateway's 417 has none).
fn header(status: u16, content_type: &str) -> Box<ResponseHeader> {
    let mut h = ResponseHeader::build(status, Some(10)).expect("valid status");
    for (k, v) in SECURITY_HEADERS {
        h.insert_header(k, v).expect("static header");
    }
    if !content_type.is_empty() {
        h.insert_header("Content-Type", content_type).expect("static header");
    }
    Box::new(h)
}

/// A complete, non-streamed response. Pingora adds `Date` and `Connection`.
/// A kept-alive connection advertises the idle time it gets, as Node does
/// (`keepalive` is `limits.keepalive_timeout`; the connection guard holds
/// the connection to it).
async fn write_whole(
    session: &mut Session,
    mut h: Box<ResponseHeader>,
    body: Bytes,
    keepalive: Duration,
) -> pingora::Result<()> {
    if session.get_keepalive().is_some() {
        h.insert_header("Keep-Alive", format!("timeout={}", keepalive.as_secs())).expect("number header");
    }
    h.insert_header("Content-Length", body.len().to_string()).expect("number header");
    session.write_response_header(h).await?;
    session.write_response_body(body, true).await
}

/// Writes `err` as a complete response. An unread request body is drained
/// when small, so the connection stays usable; a large one, and 413/408 (as
/// the gateway does it), close the connection.
pub async fn write_error(session: &mut Session, err: &ApiError, keepalive: Duration) -> pingora::Result<()> {
    let (content_type, body) = err.body();
    let mut h = header(err.status(), content_type);
    for (k, v) in err.headers() {
        h.insert_header(k, v).expect("valid header");
    }
    let closes = matches!(err, ApiError::PayloadTooLarge | ApiError::BodyTimeout | ApiError::MalformedBody);
    if closes || !drain_small_body(session).await {
        session.set_keepalive(None);
    }
    write_whole(session, h, body, keepalive).await
}

/// Reads and discards a small unread body; `false` if it is large, has no
/// length, or is slow.
async fn drain_small_body(session: &mut Session) -> bool {
    if session.is_body_done() {
        return true;
    }
    let declared = declared_length(session);
    if declared.is_none_or(|n| n > DRAIN_LIMIT) {
        return false;
    }
    let drain = async {
        while let Ok(Some(_)) = session.read_request_body().await {}
        session.is_body_done()
    };
    tokio::time::timeout(Duration::from_secs(1), drain).await.unwrap_or(false)
}

/// Writes a complete `application/json` 200 response.
pub async fn write_json(session: &mut Session, body: Vec<u8>, keepalive: Duration) -> pingora::Result<()> {
    write_json_status(session, 200, body, keepalive).await
}

/// Writes a complete `application/json` response with `status`.
pub async fn write_json_status(
    session: &mut Session,
    status: u16,
    body: Vec<u8>,
    keepalive: Duration,
) -> pingora::Result<()> {
    let h = header(status, "application/json; charset=utf-8");
    write_whole(session, h, Bytes::from(body), keepalive).await
}

/// Writes the SSE response header. Chunked framing must be explicit, or
/// Pingora would close the connection after the stream.
pub async fn write_sse_header(session: &mut Session) -> pingora::Result<()> {
    let mut h = header(200, "text/event-stream; charset=utf-8");
    h.insert_header("Cache-Control", "no-cache").expect("static header");
    h.insert_header("Transfer-Encoding", "chunked").expect("static header");
    session.write_response_header(sealed(h)).await
}
