//! A minimal HTTP/1.1 keep-alive client on a raw TCP socket: one request at a
//! time per connection, response framing by Content-Length, chunked or close,
//! and timestamps when marker byte strings first appear in the body (the
//! first `"content"` SSE chunk or `response.output_text.delta` event,
//! `data: [DONE]`). Cheap on purpose: it shares the two cores with what it
//! measures.

use std::time::Instant;

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const CONTENT_MARK: &[u8] = b"{\"content\":";
pub const DONE_MARK: &[u8] = b"data: [DONE]";
pub const ROLE_MARK: &[u8] = b"{\"role\":\"assistant\"}";
/// The first content of a streamed `/v1/responses` turn: its first text delta event.
pub const DELTA_EVENT_MARK: &[u8] = b"event: response.output_text.delta\n";

pub struct Conn {
    addr: String,
    sock: Option<TcpStream>,
    buf: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Timing {
    pub status: u16,
    /// First appearance of `first_mark` in the body.
    pub first: Option<Instant>,
    /// First appearance of `done_mark` (or the end of the response).
    pub done: Option<Instant>,
    pub end: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

impl Conn {
    pub fn new(addr: &str) -> Self {
        Conn {
            addr: addr.to_string(),
            sock: None,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    pub async fn connect(&mut self) -> std::io::Result<()> {
        let s = TcpStream::connect(&self.addr).await?;
        s.set_nodelay(true)?;
        self.sock = Some(s);
        Ok(())
    }

    /// Sends `req` (a complete request) and reads the whole response.
    /// `marks` = (first, done): byte strings timed when first seen in the body.
    pub async fn exchange(
        &mut self,
        req: &[u8],
        marks: (&[u8], &[u8]),
        t0: &mut Instant,
    ) -> std::io::Result<Timing> {
        if self.sock.is_none() {
            self.connect().await?;
        }
        *t0 = Instant::now();
        let r = self.exchange_inner(req, marks, *t0).await;
        if r.is_err() {
            self.sock = None;
        }
        r
    }

    /// Sends `req` and returns once the `until` marker was seen (the stream
    /// stays open); the caller then waits with [`Conn::hold`].
    pub async fn open_stream(&mut self, req: &[u8], until: &[u8]) -> std::io::Result<u16> {
        if self.sock.is_none() {
            self.connect().await?;
        }
        let sock = self.sock.as_mut().unwrap();
        sock.write_all(req).await?;
        self.buf.clear();
        let mut status = 0;
        let mut body_start = None;
        loop {
            let n = read_more(sock, &mut self.buf).await?;
            if n == 0 {
                return Err(eof());
            }
            if body_start.is_none() {
                if let Some(h) = memmem::find(&self.buf, b"\r\n\r\n") {
                    status = parse_status(&self.buf[..h]);
                    body_start = Some(h + 4);
                    if status != 200 {
                        return Ok(status);
                    }
                }
            }
            if let Some(b) = body_start {
                if memmem::find(&self.buf[b..], until).is_some() {
                    self.buf.clear();
                    return Ok(status);
                }
            }
        }
    }

    /// Keeps reading an open stream (keep-alive pings) until `stop` fires;
    /// `Err` when the server ended it first.
    pub async fn hold(&mut self, mut stop: tokio::sync::watch::Receiver<bool>) -> std::io::Result<()> {
        let sock = self.sock.as_mut().unwrap();
        let mut scratch = [0u8; 512];
        loop {
            tokio::select! {
                r = sock.read(&mut scratch) => {
                    let n = r?;
                    if n == 0 { return Err(eof()); }
                    if memmem::find(&scratch[..n], DONE_MARK).is_some() {
                        return Err(std::io::Error::other("stream ended early"));
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    async fn exchange_inner(
        &mut self,
        req: &[u8],
        (first_mark, done_mark): (&[u8], &[u8]),
        _t0: Instant,
    ) -> std::io::Result<Timing> {
        let sock = self.sock.as_mut().unwrap();
        sock.write_all(req).await?;
        self.buf.clear();
        let mut t = Timing::default();
        let mut body_start = 0usize;
        let mut framing: Option<Framing> = None;
        let mut close_after = false;
        let mut scan_first = 0usize;
        let mut scan_done = 0usize;
        let first_finder = memmem::Finder::new(first_mark);
        let done_finder = memmem::Finder::new(done_mark);
        loop {
            let n = read_more(sock, &mut self.buf).await?;
            let now = Instant::now();
            if n == 0 {
                if framing == Some(Framing::Close) {
                    t.end = Some(now);
                    t.done.get_or_insert(now);
                    self.sock = None;
                    return Ok(t);
                }
                return Err(eof());
            }
            if framing.is_none() {
                let Some(h) = memmem::find(&self.buf, b"\r\n\r\n") else {
                    continue;
                };
                t.status = parse_status(&self.buf[..h]);
                framing = Some(parse_framing(&self.buf[..h]));
                close_after = memmem::find(&self.buf[..h].to_ascii_lowercase(), b"\r\nconnection: close").is_some();
                body_start = h + 4;
                scan_first = body_start;
                scan_done = body_start;
            }
            let len = self.buf.len();
            if t.first.is_none() && !first_mark.is_empty() {
                if first_finder.find(&self.buf[scan_first..]).is_some() {
                    t.first = Some(now);
                } else {
                    scan_first = len.saturating_sub(first_mark.len()).max(body_start);
                }
            }
            if t.done.is_none() && !done_mark.is_empty() {
                if done_finder.find(&self.buf[scan_done..]).is_some() {
                    t.done = Some(now);
                } else {
                    scan_done = len.saturating_sub(done_mark.len()).max(body_start);
                }
            }
            let complete = match framing.unwrap() {
                Framing::Length(l) => len >= body_start + l,
                Framing::Chunked => {
                    let body = &self.buf[body_start..];
                    body.ends_with(b"\r\n0\r\n\r\n") || body == b"0\r\n\r\n"
                }
                Framing::Close => false,
            };
            if complete {
                if close_after {
                    self.sock = None;
                }
                t.end = Some(now);
                t.done.get_or_insert(now);
                return Ok(t);
            }
        }
    }
}

async fn read_more(sock: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    sock.read_buf(buf).await
}

fn eof() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
}

fn parse_status(head: &[u8]) -> u16 {
    // "HTTP/1.1 200 OK"
    head.get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn parse_framing(head: &[u8]) -> Framing {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    for line in head.split("\r\n").skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            if k == "transfer-encoding" && v.contains("chunked") {
                return Framing::Chunked;
            }
            if k == "content-length" {
                if let Ok(l) = v.parse() {
                    return Framing::Length(l);
                }
            }
        }
    }
    Framing::Close
}

/// `POST /v1/chat/completions` for one streamed (or not) user turn.
pub fn chat_request(host: &str, path: &str, token: &str, message: &str, stream: bool) -> Vec<u8> {
    let body = serde_json::json!({
        "model": "openclaw",
        "stream": stream,
        "messages": [{"role": "user", "content": message}],
    })
    .to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `POST /v1/responses` for one streamed (or not) string input.
pub fn responses_request(host: &str, token: &str, input: &str, stream: bool) -> Vec<u8> {
    let body = serde_json::json!({ "model": "openclaw", "input": input, "stream": stream }).to_string();
    post_request(host, "/v1/responses", token, body.as_bytes())
}

pub fn get_request(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: clawbridge-bench\r\nAccept: */*\r\n\r\n")
        .into_bytes()
}

/// `POST path` with `body` as is.
pub fn post_request(host: &str, path: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}
