//! A minimal HTTP/1.1 client over raw TCP, for requests no well-behaved
//! client library would send: it writes exactly the given bytes (while
//! reading, so an early answer is never lost to a reset) and parses one
//! response with `Content-Length`, chunked, or read-to-close framing.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server announced `Connection: close`, or closed the socket.
    pub closed: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One open connection: the read half plus bytes read but not yet consumed.
pub struct RawConn {
    read: OwnedReadHalf,
    write: Option<tokio::net::tcp::OwnedWriteHalf>,
    buf: Vec<u8>,
    eof: bool,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<RawConn> {
        Self::from_stream(TcpStream::connect(addr).await?)
    }

    /// A connection whose receive buffer is `bytes` (a client that reads
    /// nothing then stalls the server's writes sooner).
    pub async fn connect_small_window(addr: SocketAddr, bytes: u32) -> std::io::Result<RawConn> {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.set_recv_buffer_size(bytes)?;
        Self::from_stream(sock.connect(addr).await?)
    }

    pub fn from_stream(s: TcpStream) -> std::io::Result<RawConn> {
        s.set_nodelay(true)?;
        let (read, write) = s.into_split();
        Ok(RawConn { read, write: Some(write), buf: Vec::new(), eof: false })
    }

    /// Sends `bytes` and reads one response, all within `deadline`. The write
    /// runs concurrently with the read.
    pub async fn send_and_read(
        &mut self,
        bytes: Vec<u8>,
        head: bool,
        deadline: Duration,
    ) -> Result<RawResponse, String> {
        let mut write = self.write.take().ok_or("write half gone")?;
        let writer = tokio::spawn(async move {
            let mut ok = true;
            for chunk in bytes.chunks(64 * 1024) {
                if write.write_all(chunk).await.is_err() {
                    ok = false;
                    break;
                }
            }
            (write, ok)
        });
        let res = tokio::time::timeout(deadline, self.read_response(head))
            .await
            .map_err(|_| format!("no complete response within {deadline:?}"))?;
        if let Ok(Ok((w, true))) = tokio::time::timeout(Duration::from_secs(5), writer).await {
            self.write = Some(w);
        }
        res
    }

    /// Writes bytes now (for slow senders); `false` if the write failed.
    pub async fn write_now(&mut self, bytes: &[u8]) -> bool {
        match self.write.as_mut() {
            Some(w) => w.write_all(bytes).await.is_ok() && w.flush().await.is_ok(),
            None => false,
        }
    }

    /// Reads one response within `deadline`.
    pub async fn read(&mut self, head: bool, deadline: Duration) -> Result<RawResponse, String> {
        tokio::time::timeout(deadline, self.read_response(head))
            .await
            .map_err(|_| format!("no complete response within {deadline:?}"))?
    }

    /// Whether the server closed the connection (EOF or reset) within `deadline`.
    pub async fn closed_within(&mut self, deadline: Duration) -> bool {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let mut tmp = [0u8; 4096];
            match tokio::time::timeout_at(end, self.read.read(&mut tmp)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&tmp[..n]),
            }
        }
    }

    async fn fill(&mut self) -> Result<bool, String> {
        if self.eof {
            return Ok(false);
        }
        let mut tmp = vec![0u8; 64 * 1024];
        match self.read.read(&mut tmp).await {
            Ok(0) => {
                self.eof = true;
                Ok(false)
            }
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(true)
            }
            Err(e) if self.buf.is_empty() => Err(format!("read: {e}")),
            Err(_) => {
                self.eof = true;
                Ok(false)
            }
        }
    }

    async fn read_response(&mut self, head: bool) -> Result<RawResponse, String> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if !self.fill().await? {
                return Err(format!(
                    "connection closed before a response head; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        };
        let head_text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = head_text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut closed = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let no_body = head || status < 200 || status == 204 || status == 304;
        let body = if no_body {
            Vec::new()
        } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    if !self.fill().await? {
                        return Err("closed inside a chunk size".into());
                    }
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                    .map_err(|_| format!("bad chunk size {size_text:?}"))?;
                self.buf.drain(..line_end + 2);
                while self.buf.len() < size + 2 {
                    if !self.fill().await? {
                        return Err("closed inside a chunk".into());
                    }
                }
                body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
                if size == 0 {
                    break body;
                }
            }
        } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            while self.buf.len() < n {
                if !self.fill().await? {
                    return Err(format!("closed after {} of {n} body bytes", self.buf.len()));
                }
            }
            self.buf.drain(..n).collect()
        } else {
            while self.fill().await? {}
            closed = true;
            std::mem::take(&mut self.buf)
        };
        if self.eof {
            closed = true;
        }
        Ok(RawResponse { status, headers, body, closed })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A well-formed non-stream chat request for `token`.
pub fn valid_chat_request(token: &str, content: &str) -> Vec<u8> {
    chat_request(token, &serde_json::json!({"model":"openclaw","messages":[{"role":"user","content":content}]}), "")
}

/// A chat request with `body`; `extra` is more header lines, each ending in CRLF.
pub fn chat_request(token: &str, body: &serde_json::Value, extra: &str) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: clawbridge\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Asserts `body` is exactly the gateway's error envelope,
/// `{"error":{"message":<string>,"type":<string>}}`.
pub fn assert_openai_error(what: &str, r: &RawResponse) {
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "{what}: content-type {ct:?}, body {:?}", r.text());
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {:?}", r.text()));
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 1, "{what}: only `error`: {v}");
    let err = v["error"].as_object().unwrap_or_else(|| panic!("{what}: {v}"));
    assert!(
        err.len() == 2 && err["message"].is_string() && err["type"].is_string(),
        "{what}: error has exactly message and type: {v}"
    );
}
