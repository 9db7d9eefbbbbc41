//! Log output: `tracing` to stderr, human-readable or JSON. Request threads
//! append formatted lines to a shared queue that one background thread
//! writes out in batches (`batch`); [`flush`] drains it before the
//! process exits.

mod batch;

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use tracing::Level;
use tracing_subscriber::filter::{filter_fn, FilterExt, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::LogFormat;
use batch::BatchLog;

static LOG: OnceLock<BatchLog> = OnceLock::new();
static FLUSHER: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

/// Installs the subscriber. Filter: `CLAWBRIDGE_LOG` (tracing syntax), default `info`.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Dependencies log whole request headers (Pingora: `Authorization`) and
    // whole frames (tungstenite: the `connect` secret) at debug and trace.
    // Whatever the filter asks, even a module-level `pingora_core::…=trace`,
    // nothing but clawbridge's own events passes below info.
    // One filter, not two stacked ones, with a level hint: the hint (the
    // env filter's, `info` by default) lets every dependency's debug and
    // trace call sites, `log` records included, be skipped statically.
    let cap =
        filter_fn(|meta| *meta.level() <= Level::INFO || is_own(meta.target())).with_max_level_hint(LevelFilter::TRACE);
    let filter = filter.and(cap);
    let ansi = std::io::stderr().is_terminal();
    let log: &'static BatchLog = LOG.get_or_init(BatchLog::default);
    let flusher = std::thread::Builder::new()
        .name("log writer".into())
        .spawn(move || log.run(&mut std::io::stderr()))
        .expect("spawn the log writer thread");
    *FLUSHER.lock().unwrap_or_else(|e| e.into_inner()) = Some(flusher);
    let layer = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(log);
    let registry = tracing_subscriber::registry();
    match format {
        LogFormat::Json => registry.with(layer.json().flatten_event(true).with_filter(filter)).init(),
        LogFormat::Text => registry.with(layer.with_filter(filter)).init(),
    }
}

/// clawbridge's own targets: its modules and the access log.
fn is_own(target: &str) -> bool {
    target == "access" || target == "clawbridge" || target.starts_with("clawbridge::")
}

/// Writes out every queued line; call before exiting.
pub fn flush() {
    let Some(log) = LOG.get() else { return };
    log.close();
    if let Some(flusher) = FLUSHER.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = flusher.join();
    }
}
