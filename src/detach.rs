//! Detaching a chat request from Pingora's request task. A stream can stay
//! open for minutes, and Pingora's per-request future is ~15 KiB whichever
//! path a request takes. So the chat route takes the downstream session out
//! of Pingora's `Session` (leaving an inert one behind, which Pingora then
//! closes), serves it on a small task of its own, and afterwards hands a
//! kept-alive connection back to the proxy app exactly as Pingora's own
//! keep-alive loop would. Per open stream this halves the memory.
//! The keep-alive loop itself ([`serve_connection`]) is Pingora's HTTP/1
//! loop plus the connection guard (`conn_guard`) under each connection,
//! and HTTP/1.1 pipelining switched on.

use std::io::Cursor;
use std::sync::{Arc, OnceLock, Weak};

use crate::conn_guard::{self, ConnLimits, Guarded};
use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::proxy::Session;
use pingora::server::ShutdownWatch;

/// The HTTP app a connection is handed back to (the proxy app, in
/// production); generic so this module does not depend on the proxy.
pub trait App: HttpServerApp + Send + Sync + 'static {}
impl<A: HttpServerApp + Send + Sync + 'static> App for A {}

/// What a request needs to detach: the proxy app (to give the connection
/// back) and the service's shutdown signal. Both are set once at start.
pub struct Detacher<A> {
    app: OnceLock<Weak<A>>,
    shutdown: OnceLock<ShutdownWatch>,
}

impl<A> Default for Detacher<A> {
    fn default() -> Self {
        Detacher { app: OnceLock::new(), shutdown: OnceLock::new() }
    }
}

/// A downstream HTTP/1 session taken out of Pingora's request task.
pub struct Detached<A> {
    pub session: Box<ServerSession>,
    app: Arc<A>,
    shutdown: ShutdownWatch,
}

impl<A: App> Detacher<A> {
    /// Takes the downstream session out of `session`, or `None` (serve it in
    /// place) before the service has started or for a non-HTTP/1 session.
    pub fn take(&self, session: &mut Session) -> Option<Detached<A>> {
        if !matches!(*session.downstream_session, ServerSession::H1(_)) {
            return None;
        }
        let app = self.app.get()?.upgrade()?;
        let shutdown = self.shutdown.get()?.clone();
        // Inert: no request, no keep-alive, reads EOF. Pingora finishes it
        // and closes it without touching the real connection.
        let inert = Box::new(ServerSession::new_http1(Box::new(Cursor::new(Vec::new()))));
        let session = std::mem::replace(&mut session.downstream_session, inert);
        Some(Detached { session, app, shutdown })
    }
}

impl<A: App> Detached<A> {
    /// Finishes the response and, when the connection may be kept alive,
    /// serves its next requests as Pingora's own keep-alive loop does.
    pub async fn resume(self) {
        let Detached { session, app, shutdown } = self;
        let settings = HttpPersistentSettings::for_session(&session);
        let Ok(Some(reusable)) = session.finish().await else { return };
        let next = reused_session(ReusedHttpStream::from_reusable_stream(reusable, settings));
        serve_connection(&app, next, &shutdown).await;
    }
}

/// Serves the requests of a connection one after another (in order,
/// pipelined ones included), as Pingora's keep-alive loop does, restarting
/// the connection guard's deadlines for each.
async fn serve_connection<A: App>(app: &Arc<A>, mut session: ServerSession, shutdown: &ShutdownWatch) {
    loop {
        conn_guard::begin_request(&session);
        let Some(reused) = app.process_new_http(session, shutdown).await else { return };
        session = reused_session(reused);
    }
}

/// The next request's session on a kept-alive connection.
fn reused_session(reused: ReusedHttpStream) -> ServerSession {
    let (stream, settings) = reused.consume();
    let mut session = ServerSession::new_http1(stream);
    if let Some(settings) = settings {
        settings.apply_to_session(&mut session);
    }
    session
}

/// The proxy app as Pingora's listening service runs it, behind an `Arc`
/// the detached tasks share.
pub struct Shared<A> {
    app: Arc<A>,
    detacher: Arc<Detacher<A>>,
    limits: ConnLimits,
}

impl<A: App> Shared<A> {
    /// `detacher` is the one the app's proxy holds.
    pub fn new(app: A, detacher: Arc<Detacher<A>>, limits: ConnLimits) -> Self {
        let app = Arc::new(app);
        let _ = detacher.app.set(Arc::downgrade(&app));
        Shared { app, detacher, limits }
    }
}

#[async_trait]
impl<A: App> ServerApp for Shared<A> {
    /// Pingora's plain-HTTP/1 path of `process_new` (no TLS, no h2c on
    /// this listener), with the stream guarded and pipelining on.
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        self.detacher.shutdown.get_or_init(|| shutdown.clone());
        let stream: Stream = Box::new(Guarded::new(stream, self.limits));
        let mut session = ServerSession::new_http1(stream);
        // Infinite for Pingora: the guard enforces the deadlines.
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(0) });
        session.set_keepalive_reuses_remaining(self.app.server_options().and_then(|o| o.keepalive_request_limit));
        // Pipelined requests are answered in order, as Node answers them.
        session.set_pipelining_enabled(true);
        serve_connection(&self.app, session, shutdown).await;
        None
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}
