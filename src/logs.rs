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
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
