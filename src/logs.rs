//! Log output: `tracing` to stderr, human-readable or JSON, written by a
//! background thread so request threads never block on a write(2) per
//! access line. [`flush`] drains it before the process exits.

use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};

use crate::config::LogFormat;

/// Dropping the guard writes out what is still queued.
static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Installs the subscriber. Filter: `CLAWBRIDGE_LOG` (tracing syntax), default `info`.
pub fn init(format: LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("CLAWBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Pingora logs whole request headers (Authorization included) and
    // tungstenite whole frames (the `connect` secret included) at debug and
    // trace: capped at info whatever the filter asks, so no secret is logged.
    for target in ["pingora_core", "pingora_proxy", "pingora_http", "pingora", "tungstenite", "tokio_tungstenite"] {
        filter = filter.add_directive(format!("{target}=info").parse().expect("static directive"));
    }
    let ansi = std::io::stderr().is_terminal();
    // Not lossy: under a log burst request threads wait rather than drop lines.
    let (writer, guard) = NonBlockingBuilder::default().lossy(false).finish(std::io::stderr());
    *GUARD.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(writer);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Writes out every queued line; call before exiting.
pub fn flush() {
    drop(GUARD.lock().unwrap_or_else(|e| e.into_inner()).take());
}
