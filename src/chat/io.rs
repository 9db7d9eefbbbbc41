//! Downstream IO of the chat route on a Pingora session: reading the body
//! within its size and time limits, and writing error, JSON and SSE
//! responses with the headers the gateway sends. Nothing else.

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::time::Duration;

use crate::error::ChatError;

/// Headers the gateway puts on every response of this route.
const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "permissions-policy",
        "camera=(), microphone=(self), geolocation=()",
    ),
];

/// Reads the whole request body, refusing more than `limit` bytes (413) or a
/// body slower than `timeout` (408).
pub async fn read_body(
    session: &mut Session,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ChatError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ChatError::PayloadTooLarge);
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    let read = async {
        while let Some(chunk) = session
            .read_request_body()
            .await
            .map_err(|_| ChatError::BodyTimeout)?
        {
            if buf.len() + chunk.len() > limit {
                return Err(ChatError::PayloadTooLarge);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) => Ok(buf.freeze()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ChatError::BodyTimeout),
    }
}

fn header(status: u16, content_type: &str, len: Option<usize>) -> Box<ResponseHeader> {
    let mut h = ResponseHeader::build(status, Some(8)).expect("valid status");
    for (k, v) in SECURITY_HEADERS {
        h.insert_header(k, v).expect("static header");
    }
    h.insert_header("content-type", content_type)
        .expect("static header");
    if let Some(len) = len {
        h.insert_header("content-length", len.to_string())
            .expect("number header");
    }
    Box::new(h)
}

/// Writes `err` as a complete response. If the request body was not read to
/// the end, the connection is not reused.
pub async fn write_error(session: &mut Session, err: &ChatError) -> pingora::Result<()> {
    let (content_type, body) = err.body();
    let mut h = header(err.status(), content_type, Some(body.len()));
    for (k, v) in err.headers() {
        h.insert_header(k, v).expect("valid header");
    }
    if !session.is_body_done() {
        session.set_keepalive(None);
    }
    session.write_response_header(h, false).await?;
    session.write_response_body(Some(body), true).await
}

/// Writes a complete `application/json` 200 response.
pub async fn write_json(session: &mut Session, body: Vec<u8>) -> pingora::Result<()> {
    let h = header(200, "application/json; charset=utf-8", Some(body.len()));
    session.write_response_header(h, false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
}

/// Writes the SSE response header. Chunked framing must be explicit, or
/// Pingora would close the connection after the stream.
pub async fn write_sse_header(session: &mut Session) -> pingora::Result<()> {
    let mut h = header(200, "text/event-stream; charset=utf-8", None);
    h.insert_header("cache-control", "no-cache")
        .expect("static header");
    h.insert_header("connection", "keep-alive")
        .expect("static header");
    h.insert_header("transfer-encoding", "chunked")
        .expect("static header");
    session.write_response_header(h, false).await
}
