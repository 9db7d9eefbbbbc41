//! Log output: `tracing` to stderr, human-readable or JSON. Request threads
//! append formatted lines to a shared queue that one background thread
//! writes out in batches (`batch`); [`flush`] drains it before the
//! process exits.

mod batch;

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::config::LogFormat;
use batch::BatchLog;

static LOG: OnceLock<BatchLog> = OnceLock::new();
static FLUSHER: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

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
    let log: &'static BatchLog = LOG.get_or_init(BatchLog::default);
    let flusher = std::thread::Builder::new()
        .name("log writer".into())
        .spawn(move || log.run(&mut std::io::stderr()))
        .expect("spawn the log writer thread");
    *FLUSHER.lock().unwrap_or_else(|e| e.into_inner()) = Some(flusher);
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(log);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Writes out every queued line; call before exiting.
pub fn flush() {
    let Some(log) = LOG.get() else { return };
    log.close();
    if let Some(flusher) = FLUSHER.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = flusher.join();
    }
}
