//! Assembles the Pingora server from a validated [`Config`]: the proxy
//! service, the admin listener, the gateway connection task, the drain
//! watcher and the gateway config watcher (`reload`), each a Pingora
//! service with its own runtime, except that the gateway connection shares
//! the proxy's runtime when it has one thread.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::api::Api;
use crate::auth::Authenticator;
use crate::config::{Config, Live};
use crate::detach::{Detacher, Shared};
use crate::drain::Drain;
use crate::gateway::device::DeviceAuth;
use crate::gateway::{self, Credentials, Driver, GatewaySettings, LinkHooks, LinkInfoCell};
use crate::proxy::Clawbridge;
use crate::reload::{Targets, Watcher, WatcherService};

/// Seconds kept back from the grace period so open streams are ended with
/// an error event before Pingora's own deadline cuts them.
const DRAIN_MARGIN_SECS: u64 = 1;

/// Pingora's default write buffer (one MSS): chunk framing and data leave
/// in one `send`.
const L4_WRITE_BUFFER: usize = 1460;

/// `device`: the identity the gateway link presents (loaded by `main`, so a
/// state dir that cannot be written stops the start with one clear line).
pub fn build(cfg: &Config, device: Option<Arc<DeviceAuth>>) -> Result<Server, Box<pingora::Error>> {
    let conf = ServerConf {
        threads: cfg.threads,
        grace_period_seconds: Some(cfg.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(2),
        // One current-thread runtime per thread instead of a work-stealing
        // pool: no cross-thread wake-ups between a connection's tasks.
        // Passthrough +22% req/s, chat unchanged (BENCHMARKS.md).
        work_stealing: false,
        // The passthrough connector's roots (`upstream_tls.ca_file`, loaded
        // and checked by the config); `None`: the system's.
        ca_file: cfg.upstream_tls.as_ref().and_then(|t| t.ca_file.as_ref()).map(|p| p.display().to_string()),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();

    let drain = Arc::new(Drain::default());
    for agent in &cfg.gateway.agents {
        crate::metrics::register_agent(agent);
    }
    let mut link = None;
    let attributor = Arc::new(Live::new(cfg.gateway.attribution.clone()));
    let reread = Arc::new(tokio::sync::Notify::new());
    let agents_configured = Arc::new(std::sync::atomic::AtomicUsize::new(cfg.gateway.agents.len()));
    let mut targets = Targets {
        auth: None,
        credentials: None,
        attributor: attributor.clone(),
        agents_configured: agents_configured.clone(),
        builtin: None,
    };
    let link_info = Arc::new(LinkInfoCell::new(device.as_ref().map(|d| Arc::from(d.identity().device_id()))));
    let (api, gateway) = if cfg.routes().any() {
        let (creds_tx, creds_rx) = tokio::sync::watch::channel(Credentials::of(&cfg.gateway));
        let hooks = LinkHooks { credentials: creds_rx, reread: reread.clone() };
        let (gw, driver) = gateway::channel(gateway_settings(cfg, device, link_info.clone()), hooks);
        if cfg.threads == 1 {
            // One proxy thread: the link runs on it, so every hand-off
            // between the link and a request is a local task wake-up.
            link = Some(driver);
        } else {
            // Several: the link gets its own thread, so it is never queued
            // behind requests (connections land on proxy threads at random).
            server.add_service(background_service("gateway link", GatewayTask(Mutex::new(Some(driver)))));
        }
        let auth = Arc::new(Authenticator::new(
            cfg.gateway.auth_mode,
            cfg.gateway.secret.clone(),
            cfg.gateway.rate_limit.clone(),
        ));
        targets.auth = Some(auth.clone());
        targets.credentials = Some(creds_tx);
        let upstream = crate::upstream::Upstream::new(&cfg.upstream, cfg.upstream_tls.as_ref());
        let mut svc = Api::new(gw.clone(), auth, cfg.limits.clone(), drain.clone(), upstream);
        svc.agents_configured = agents_configured.clone();
        svc.builtin.set(cfg.gateway.chat_completions_enabled, cfg.gateway.responses_enabled);
        targets.builtin = Some(svc.builtin.clone());
        (Some(Arc::new(svc)), Some(gw))
    } else {
        (None, None)
    };

    let detacher = Arc::new(Detacher::default());
    let app = pingora::proxy::http_proxy(
        &server.configuration,
        Clawbridge {
            drain: drain.clone(),
            api,
            upstream: crate::upstream::Upstream::new(&cfg.upstream, cfg.upstream_tls.as_ref()),
            detacher: detacher.clone(),
            routes: cfg.routes(),
            attributor: attributor.clone(),
        },
    );
    let mut proxy =
        Service::new("Pingora HTTP Proxy Service".to_string(), Shared::new(app, detacher, cfg.limits.conn()));
    // No L4 read buffer on client connections: Pingora's default is 64 KiB
    // per connection, which only pays off under TLS. The HTTP layer reads
    // into its own buffer, so this saves ~9 KiB of RSS per open stream
    // (heap profile in BENCHMARKS.md) and a copy per read.
    proxy
        .add_listener(ListenerConfig::tcp(cfg.listen.to_string()).l4_buffer(L4BufferSettings::new(0, L4_WRITE_BUFFER)));
    match link {
        Some(driver) => server.add_service(crate::colocated::WithTask::new(proxy, driver.run())),
        None => server.add_service(proxy),
    };

    let mut admin = Service::new(
        "admin".to_string(),
        HttpServer::new_app(Admin {
            gateway,
            drain: drain.clone(),
            attributor,
            upstream: cfg.upstream.clone(),
            link_info,
        }),
    );
    admin.add_tcp(&cfg.admin_listen.to_string());
    server.add_service(admin);

    let watcher = Watcher::new(cfg, targets, reread);
    server.add_service(background_service("gateway config watcher", WatcherService(Mutex::new(Some(watcher)))));

    let budget = cfg.grace_period.saturating_sub(std::time::Duration::from_secs(DRAIN_MARGIN_SECS));
    server.add_service(background_service("drain watcher", DrainWatcher { drain, budget }));
    Ok(server)
}

fn gateway_settings(cfg: &Config, device: Option<Arc<DeviceAuth>>, info: Arc<LinkInfoCell>) -> GatewaySettings {
    GatewaySettings {
        upstream: cfg.upstream.clone(),
        tls: cfg.upstream_tls.as_ref().map(|t| gateway::LinkTls::new(t, &cfg.upstream)),
        handshake_timeout: cfg.limits.handshake_timeout,
        max_frame_bytes: cfg.limits.max_frame_bytes,
        reconnect_min: std::time::Duration::from_millis(100),
        // Short, so a gateway that comes back is in use again within ~1 s.
        reconnect_max: std::time::Duration::from_secs(1),
        run_buffer_bytes: cfg.limits.run_buffer_bytes,
        device,
        info,
    }
}

/// Runs the gateway connection on its own runtime for the life of the process
/// (with more than one proxy thread).
struct GatewayTask(Mutex<Option<Driver>>);

#[async_trait]
impl BackgroundService for GatewayTask {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let driver = self.0.lock().expect("driver slot").take();
        if let Some(driver) = driver {
            // Keeps serving in-flight runs through the drain; the runtime
            // is torn down after the grace period.
            driver.run().await;
        }
    }
}

/// Starts the drain when Pingora begins a graceful shutdown (SIGTERM).
struct DrainWatcher {
    drain: Arc<Drain>,
    budget: std::time::Duration,
}

#[async_trait]
impl BackgroundService for DrainWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_ok() {
            tracing::info!(budget_secs = self.budget.as_secs(), "shutdown: readiness off, draining open streams");
            self.drain.begin(self.budget);
            // Pingora would idle out the whole grace period; leave as soon
            // as nothing is in flight (listeners are already closed).
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                if self.drain.inflight() == 0 {
                    tracing::info!("drained: no request in flight, exiting");
                    crate::logs::flush();
                    std::process::exit(0);
                }
            }
        }
    }
}
