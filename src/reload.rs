//! Follows the gateway's config file while clawbridge runs. It is re-read
//! when its (mtime, length, inode) change (polled every second, which also
//! catches a Kubernetes ConfigMap/Secret symlink swap), on SIGHUP, and when
//! the gateway link asks (the gateway refused the secret or closed the link
//! with 4001 "gateway auth changed"). A file that does not parse, is gone,
//! or lacks the secret its auth mode needs is not applied: the previous
//! settings stay, and a warning names the key (never a secret).
//!
//! A reload applies the auth mode and secret (the bearer check switches at
//! once; the gateway link re-handshakes, see `gateway::rotation`),
//! `gateway.auth.rateLimit` (lockouts already earned stay),
//! `gateway.trustedProxies` / `allowRealIpFallback`, and `agents.list`
//! (metric labels). `gateway.http.endpoints.chatCompletions.enabled`
//! decides which services run, so it is read at start only: a change is
//! logged and applies after a restart. A secret taken from
//! `OPENCLAW_GATEWAY_TOKEN` / `_PASSWORD` cannot change while the process
//! runs (its environment is fixed).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::{watch, Notify};

use crate::auth::{AuthPolicy, Authenticator};
use crate::config::{ConfigError, GatewayFile, Live};
use crate::gateway::Credentials;
use crate::ingress::Attributor;
use crate::metrics;

/// How often the file's metadata is compared.
const POLL: Duration = Duration::from_secs(1);

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
    device: u64,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    // `metadata` follows symlinks: a swapped link target is a new inode.
    let m = std::fs::metadata(path).ok()?;
    Some(Fingerprint { modified: m.modified().ok(), len: m.len(), inode: m.ino(), device: m.dev() })
}

/// Where a reload is applied.
pub struct Targets {
    /// The chat route's bearer check (`None` when the route is off).
    pub auth: Option<Arc<Authenticator>>,
    /// The gateway link's secret (`None` when the route is off).
    pub credentials: Option<watch::Sender<Credentials>>,
    pub attributor: Arc<Live<Attributor>>,
    /// How many agents the file configures (the owned routes' default-agent rule).
    pub agents_configured: Arc<std::sync::atomic::AtomicUsize>,
    /// Whether the gateway's own endpoints are on (for requests handed to them).
    pub builtin: Option<Arc<crate::api::handoff::Builtin>>,
}

pub struct Watcher {
    path: PathBuf,
    /// The chat route is on: the file must carry the secret its mode needs.
    chat_enabled: bool,
    /// The route follows the file's enable switch (`inherit`).
    chat_inherits: bool,
    current: GatewayFile,
    seen: Option<Fingerprint>,
    targets: Targets,
    reread: Arc<Notify>,
}

impl Watcher {
    pub fn new(cfg: &crate::config::Config, targets: Targets, reread: Arc<Notify>) -> Self {
        Watcher {
            path: cfg.openclaw_config.clone(),
            chat_enabled: cfg.routes().any(),
            chat_inherits: cfg.chat_switch == crate::config::ChatSwitch::Inherit,
            current: cfg.gateway.clone(),
            seen: fingerprint(&cfg.openclaw_config),
            targets,
            reread,
        }
    }

    /// Re-reads the file if it changed (or always, when `forced`).
    fn check(&mut self, forced: bool) {
        let now = fingerprint(&self.path);
        if !forced && now == self.seen {
            return;
        }
        self.seen = now.clone();
        let loaded = match now {
            None => Err(ConfigError::new(self.path.display().to_string(), "the file is gone or unreadable")),
            Some(_) => GatewayFile::load(&self.path, &|k| std::env::var(k).ok()).and_then(|next| {
                if self.chat_enabled {
                    next.require_secret()?;
                }
                Ok(next)
            }),
        };
        match loaded {
            Ok(next) => {
                metrics::CONFIG_RELOADS.with_label_values(&["ok"]).inc();
                self.apply(next);
            }
            Err(e) => {
                metrics::CONFIG_RELOADS.with_label_values(&["error"]).inc();
                tracing::warn!(path = %self.path.display(), error = %e, "gateway config not reloaded: keeping the previous settings");
            }
        }
    }

    fn apply(&mut self, next: GatewayFile) {
        let old = &self.current;
        let new_creds = Credentials::of(&next);
        let secret_changed = Credentials::of(old) != new_creds;
        let rate_limit_changed = old.rate_limit != next.rate_limit;
        let trust_changed = old.attribution != next.attribution;
        if self.chat_inherits && old.chat_completions_enabled != next.chat_completions_enabled {
            tracing::warn!(
                enabled = next.chat_completions_enabled,
                "gateway.http.endpoints.chatCompletions.enabled changed: clawbridge applies it at its next restart"
            );
        }
        if let Some(auth) = &self.targets.auth {
            auth.set_policy(AuthPolicy::of(&next));
        }
        self.targets.attributor.store(next.attribution.clone());
        for agent in &next.agents {
            metrics::register_agent(agent);
        }
        self.targets.agents_configured.store(next.agents.len(), std::sync::atomic::Ordering::Relaxed);
        if let Some(builtin) = &self.targets.builtin {
            builtin.set(next.chat_completions_enabled, next.responses_enabled);
        }
        if let Some(creds) = &self.targets.credentials {
            creds.send_if_modified(|c| {
                let changed = *c != new_creds;
                if changed {
                    *c = new_creds;
                }
                changed
            });
        }
        tracing::info!(
            path = %self.path.display(),
            secret_changed,
            rate_limit_changed,
            trusted_proxies_changed = trust_changed,
            "gateway config reloaded"
        );
        self.current = next;
    }

    async fn run(mut self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP unavailable; the gateway config is still polled");
                None
            }
        };
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(path = %self.path.display(), "watching the gateway config (polled every second, and on SIGHUP)");
        let reread = self.reread.clone();
        loop {
            tokio::select! {
                _ = poll.tick() => self.check(false),
                _ = reread.notified() => self.check(false),
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP: re-reading the gateway config");
                    self.check(true);
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The watcher as a Pingora background service.
pub struct WatcherService(pub Mutex<Option<Watcher>>);

#[async_trait]
impl BackgroundService for WatcherService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let watcher = self.0.lock().expect("watcher slot").take();
        if let Some(watcher) = watcher {
            watcher.run(shutdown).await;
        }
    }
}
