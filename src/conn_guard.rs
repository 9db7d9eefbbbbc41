//! `Guarded`: each client connection, wrapped under Pingora's HTTP/1 layer,
//! with the deadlines and the head-size limit of the gateway's Node server
//! (`headersTimeout`, `keepAliveTimeout`, `requestTimeout`, `maxHeaderSize`).
//! Pingora only bounds each read (60 s) and a head at 1 MiB; this bounds
//! the whole head, the idle time between requests and the whole request,
//! and answers as Node answers: 408 or 431 (raw, then closed), or a silent
//! close for an idle kept-alive connection. The keep-alive loop
//! ([`begin_request`]) and the request guard (`http_guard`) tell it where a
//! request starts, when its head is parsed and when its body is in.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType, ALPN,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::head_scan::HeadScan;

/// The connection limits (config `limits.*`).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// From the start of a request (its first byte; the accept for a
    /// connection's first request) to the end of its head.
    pub headers_timeout: Duration,
    /// Silence allowed between two requests on a kept-alive connection.
    pub keepalive_timeout: Duration,
    /// From the start of a request to the end of its body.
    pub request_timeout: Duration,
    /// Largest request head (request line and header lines).
    pub max_header_bytes: usize,
}

/// Node's answers, byte for byte (its `clientError` defaults).
const RESPONSE_408: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n";
const RESPONSE_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n";
/// A refusal that cannot be written within this is dropped with the connection.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

const SIG_NEW: u8 = 0;
const SIG_BODY: u8 = 1;
const SIG_DONE: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No byte of the next request yet.
    Idle,
    Head,
    /// Head parsed, body still coming.
    Body,
    /// Request fully received: reads are idle probes or pipelined bytes.
    Done,
    /// Writing `msg[pos..]`, then closed.
    Refusing {
        msg: &'static [u8],
        pos: usize,
    },
    Closed,
}

pub struct Guarded {
    inner: Stream,
    limits: ConnLimits,
    accepted: Instant,
    /// Bumped by [`begin_request`]; `signal` is set by the request guard.
    generation: AtomicU32,
    signal: AtomicU8,
    seen_generation: u32,
    seen_signal: u8,
    phase: Phase,
    /// When the current request started.
    started: Instant,
    head_bytes: usize,
    scan: HeadScan,
    /// Response bytes went out for the current request.
    wrote: bool,
    deadline: Option<Instant>,
    timer: Pin<Box<Sleep>>,
}

impl Guarded {
    pub fn new(inner: Stream, limits: ConnLimits) -> Self {
        let now = Instant::now();
        Guarded {
            inner,
            limits,
            accepted: now,
            generation: AtomicU32::new(0),
            signal: AtomicU8::new(SIG_NEW),
            seen_generation: 0,
            seen_signal: SIG_NEW,
            phase: Phase::Idle,
            started: now,
            head_bytes: 0,
            scan: HeadScan::default(),
            wrote: false,
            deadline: None,
            timer: Box::pin(tokio::time::sleep_until(now + limits.headers_timeout)),
        }
    }

    /// The head carried both `Content-Length` and `Transfer-Encoding`.
    pub fn saw_length_and_chunked(&self) -> bool {
        self.scan.content_length && self.scan.transfer_encoding
    }

    /// The head is parsed; `body` says whether a body follows.
    pub fn head_done(&self, body: bool) {
        self.signal.store(if body { SIG_BODY } else { SIG_DONE }, Relaxed);
    }

    /// The whole body is in: no request deadline from here on.
    pub fn body_done(&self) {
        self.signal.store(SIG_DONE, Relaxed);
    }

    /// The timer itself is only re-armed when a read has to wait.
    fn set_deadline(&mut self, at: Option<Instant>) {
        self.deadline = at;
    }

    /// Applies what the keep-alive loop and the request guard signalled.
    fn sync(&mut self) {
        let generation = self.generation.load(Relaxed);
        if generation != self.seen_generation {
            self.seen_generation = generation;
            self.seen_signal = SIG_NEW;
            self.phase = Phase::Idle;
            self.head_bytes = 0;
            self.scan = HeadScan::default();
            self.wrote = false;
            if generation == 1 {
                // Node counts a connection's first head from the accept.
                self.started = self.accepted;
                self.set_deadline(Some(self.accepted + self.limits.headers_timeout));
            } else {
                self.set_deadline(Some(Instant::now() + self.limits.keepalive_timeout));
            }
        }
        let signal = self.signal.load(Relaxed);
        if signal != self.seen_signal {
            self.seen_signal = signal;
            match (signal, self.phase) {
                (_, Phase::Refusing { .. } | Phase::Closed) => {}
                (SIG_BODY, Phase::Idle | Phase::Head) => {
                    self.phase = Phase::Body;
                    self.set_deadline(Some(self.started + self.limits.request_timeout));
                }
                (SIG_DONE, _) => {
                    self.phase = Phase::Done;
                    self.set_deadline(None);
                }
                _ => {}
            }
        }
    }

    /// Accounts for bytes just read; may turn into a 431 refusal.
    fn on_bytes(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.phase == Phase::Idle {
            self.phase = Phase::Head;
            if self.seen_generation > 1 {
                self.started = Instant::now();
                self.set_deadline(Some(self.started + self.limits.headers_timeout));
            }
        }
        if self.phase == Phase::Head {
            let counted = match self.scan.feed(data) {
                Some(n) => n,
                None => data.len(),
            };
            self.head_bytes += counted;
            if self.head_bytes > self.limits.max_header_bytes {
                self.refuse(RESPONSE_431);
            }
        }
    }

    fn refuse(&mut self, msg: &'static [u8]) {
        self.phase = Phase::Refusing { msg, pos: 0 };
        self.set_deadline(Some(Instant::now() + REFUSAL_WRITE));
    }

    /// The deadline passed in the current phase.
    fn expire(&mut self) {
        match self.phase {
            // An idle kept-alive connection is closed without a word.
            Phase::Idle if self.seen_generation > 1 => self.phase = Phase::Closed,
            Phase::Idle | Phase::Head => self.refuse(RESPONSE_408),
            Phase::Body if !self.wrote => self.refuse(RESPONSE_408),
            Phase::Body | Phase::Refusing { .. } => self.phase = Phase::Closed,
            Phase::Done | Phase::Closed => self.set_deadline(None),
        }
    }

    fn timer_fired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.deadline else { return false };
        if self.timer.deadline() != at {
            self.timer.as_mut().reset(at);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }

    /// Writes the refusal, then reports the connection closed.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Phase::Refusing { msg, pos } = self.phase {
            let step = if pos < msg.len() {
                Pin::new(&mut self.inner).poll_write(cx, &msg[pos..]).map_ok(|n| (n, false))
            } else {
                Pin::new(&mut self.inner).poll_flush(cx).map_ok(|()| (0, true))
            };
            match step {
                Poll::Ready(Ok((n, false))) if n > 0 => self.phase = Phase::Refusing { msg, pos: pos + n },
                Poll::Ready(_) => self.phase = Phase::Closed,
                Poll::Pending if self.timer_fired(cx) => self.phase = Phase::Closed,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Err(closed()))
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection closed by a clawbridge limit")
}

/// The `Guarded` under a session, if there is one.
pub fn of(session: &ServerSession) -> Option<&Guarded> {
    session.stream()?.as_any().downcast_ref::<Guarded>()
}

/// A new request begins on this connection (the keep-alive loop calls it
/// before each request is read).
pub fn begin_request(session: &ServerSession) {
    if let Some(g) = of(session) {
        g.generation.fetch_add(1, Relaxed);
        g.signal.store(SIG_NEW, Relaxed);
    }
}

impl AsyncRead for Guarded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.sync();
        match this.phase {
            Phase::Refusing { .. } => return this.poll_refuse(cx),
            // EOF: Pingora ends the connection quietly.
            Phase::Closed => return Poll::Ready(Ok(())),
            _ => {}
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if matches!(this.phase, Phase::Idle | Phase::Head) {
                    this.on_bytes(&buf.filled()[before..]);
                    if this.deadline.is_some_and(|d| d <= Instant::now()) && this.phase == Phase::Head {
                        this.expire();
                    }
                    if let Phase::Refusing { .. } = this.phase {
                        // The refused bytes are never handed to the parser.
                        buf.set_filled(before);
                        return this.poll_refuse(cx);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if !this.timer_fired(cx) {
                    return Poll::Pending;
                }
                this.expire();
                match this.phase {
                    Phase::Refusing { .. } => this.poll_refuse(cx),
                    Phase::Closed => Poll::Ready(Ok(())),
                    _ => Poll::Pending,
                }
            }
        }
    }
}

impl Guarded {
    /// A write to the client, refused once the guard has closed the
    /// connection; records that response bytes went out.
    fn write_with(
        &mut self,
        write: impl FnOnce(Pin<&mut Stream>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        self.sync();
        if matches!(self.phase, Phase::Refusing { .. } | Phase::Closed) {
            return Poll::Ready(Err(closed()));
        }
        let res = write(Pin::new(&mut self.inner));
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote = true;
        }
        res
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().write_with(|inner| inner.poll_write(cx, data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_with(|inner| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded").field("inner", &self.inner).field("phase", &self.phase).finish()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}
