//! Detaching a chat request from Pingora's request task. A stream can stay
//! open for minutes, and Pingora's per-request future is ~15 KiB whichever
//! path a request takes. So the chat route takes the downstream session out
//! of Pingora's `Session` (leaving an inert one behind, which Pingora then
//! closes), serves it on a small task of its own, and afterwards hands a
//! kept-alive connection back to the proxy app exactly as Pingora's own
//! keep-alive loop would. Per open stream this halves the memory.

use std::io::Cursor;
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::proxy::{HttpProxy, Session};
use pingora::server::ShutdownWatch;

use crate::proxy::Clawbridge;

type App = HttpProxy<Clawbridge>;

/// What a request needs to detach: the proxy app (to give the connection
/// back) and the service's shutdown signal. Both are set once at start.
#[derive(Default)]
pub struct Detacher {
    app: OnceLock<Weak<App>>,
    shutdown: OnceLock<ShutdownWatch>,
}

/// A downstream HTTP/1 session taken out of Pingora's request task.
pub struct Detached {
    pub session: Box<ServerSession>,
    app: Arc<App>,
    shutdown: ShutdownWatch,
}

impl Detacher {
    /// Takes the downstream session out of `session`, or `None` (serve it in
    /// place) before the service has started or for a non-HTTP/1 session.
    pub fn take(&self, session: &mut Session) -> Option<Detached> {
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

impl Detached {
    /// Finishes the response and, when the connection may be kept alive,
    /// serves its next requests as Pingora's own keep-alive loop does.
    pub async fn resume(self) {
        let Detached { session, app, shutdown } = self;
        let settings = HttpPersistentSettings::for_session(&session);
        let Ok(Some(reusable)) = session.finish().await else { return };
        let mut next = Some(ReusedHttpStream::from_reusable_stream(reusable, settings));
        while let Some((stream, settings)) = next.map(ReusedHttpStream::consume) {
            let mut session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            next = app.process_new_http(session, &shutdown).await;
        }
    }
}

/// The proxy app as Pingora's listening service runs it, behind an `Arc`
/// the detached tasks share.
pub struct Shared {
    app: Arc<App>,
    detacher: Arc<Detacher>,
}

impl Shared {
    /// `detacher` is the one the app's `Clawbridge` holds.
    pub fn new(app: App, detacher: Arc<Detacher>) -> Self {
        let app = Arc::new(app);
        let _ = detacher.app.set(Arc::downgrade(&app));
        Shared { app, detacher }
    }
}

#[async_trait]
impl ServerApp for Shared {
    async fn process_new(self: &Arc<Self>, stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        self.detacher.shutdown.get_or_init(|| shutdown.clone());
        self.app.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}
