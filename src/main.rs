//! The `clawbridge` binary: parse flags, load and validate the config (one
//! clear line and exit 64 when it is bad), set up logs and the allocator,
//! run the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clawbridge::config::Config;
use clawbridge::gateway::device::DeviceAuth;

/// jemalloc rather than glibc's malloc: the request path allocates and
/// frees many small objects on one thread (Pingora's sessions and header
/// maps, frames, chunks), and glibc's bins and consolidation were ~12% of
/// clawbridge's CPU. Measured back to back (BENCHMARKS.md): 14% less CPU per
/// stream, 12% more completions/s, 8% more passthrough requests/s, with the
/// same memory per open stream. (mimalloc was tried: no gain, 2.5x memory.)
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One jemalloc background thread purges freed pages, so the memory of a
/// burst of streams goes back to the system within seconds, even when the
/// proxy then goes idle. Measured: 160 MiB after 10,000 streams closed, 20
/// MiB 10 s later; without it, 160 MiB for as long as the proxy is idle.
fn return_freed_memory() {
    let on = tikv_jemalloc_ctl::max_background_threads::write(1)
        .and_then(|()| tikv_jemalloc_ctl::background_thread::write(true));
    if let Err(e) = on {
        tracing::warn!(error = %e, "jemalloc background purging unavailable; freed memory is kept until reused");
    }
}

/// OpenAI /v1/chat/completions over an OpenClaw gateway's native protocol.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// clawbridge's YAML config (see conf/clawbridge.yaml). Env vars override it.
    #[arg(long, short = 'c', env = "CLAWBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

/// How the gateway is reached: plaintext, or TLS and what it is verified with.
fn upstream_transport(cfg: &Config) -> String {
    cfg.upstream_tls.as_ref().map_or_else(|| "plaintext (http/ws)".to_string(), |t| t.describe())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref(), &|k| std::env::var(k).ok()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("clawbridge: {e}");
            return ExitCode::from(64);
        }
    };
    let trust = clawbridge::ingress::GatewayTrust::of(&cfg.gateway.attribution, &cfg.upstream);
    // The device identity only matters to the gateway link (chat on). A
    // state dir that cannot be written fails the start (and --check).
    let device_check = if cfg.chat_enabled() { Some(DeviceAuth::check(&cfg.device)) } else { None };
    if let Some(Err(e)) = &device_check {
        eprintln!("clawbridge: device identity: {e}");
        return ExitCode::from(64);
    }
    if cli.check {
        println!(
            "clawbridge: config ok (listen {}, upstream {}, admin {}, chat completions {}, responses {})\nclawbridge: upstream {}\nclawbridge: {}",
            cfg.listen,
            cfg.upstream,
            cfg.admin_listen,
            if cfg.chat_enabled() { "on" } else { "off" },
            if cfg.responses_enabled() { "on" } else { "off" },
            upstream_transport(&cfg),
            trust.describe()
        );
        match device_check {
            Some(Ok(Some(id))) => println!("clawbridge: device {id} (state dir {})", cfg.device.state_dir.display()),
            Some(Ok(None)) => println!(
                "clawbridge: state dir {} is writable; a device key is generated there at start",
                cfg.device.state_dir.display()
            ),
            _ => {}
        }
        return ExitCode::SUCCESS;
    }
    clawbridge::logs::init(cfg.log_format);
    clawbridge::metrics::init();
    return_freed_memory();
    tracing::info!(
        listen = %cfg.listen,
        upstream = %cfg.upstream,
        upstream_transport = %upstream_transport(&cfg),
        admin = %cfg.admin_listen,
        chat_completions = cfg.chat_enabled(),
        responses = cfg.responses_enabled(),
        gateway_config = %cfg.openclaw_config.display(),
        "clawbridge starting"
    );
    match trust {
        clawbridge::ingress::GatewayTrust::Trusted(_) => tracing::info!("{}", trust.describe()),
        _ => tracing::warn!("{}", trust.describe()),
    }
    let device = if cfg.chat_enabled() {
        match DeviceAuth::open(&cfg.device) {
            Ok(d) => {
                tracing::info!(
                    device_id = d.identity().device_id(),
                    state_dir = %cfg.device.state_dir.display(),
                    key = %cfg.device.key_file.as_deref().unwrap_or(&cfg.device.state_dir.join(clawbridge::gateway::device::KEY_FILE)).display(),
                    device_token = d.token().is_some(),
                    "device identity loaded"
                );
                Some(std::sync::Arc::new(d))
            }
            Err(e) => {
                tracing::error!(error = %e, "device identity");
                clawbridge::logs::flush();
                eprintln!("clawbridge: device identity: {e}");
                return ExitCode::from(64);
            }
        }
    } else {
        None
    };
    match clawbridge::server::build(&cfg, device) {
        Ok(server) => {
            // `run` returns after a graceful shutdown (unlike `run_forever`),
            // so queued log lines are written before exiting.
            server.run(pingora::server::RunArgs::default());
            clawbridge::logs::flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("clawbridge: {e}");
            ExitCode::from(70)
        }
    }
}
