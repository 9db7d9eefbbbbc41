//! The `clawbridge` binary: parse flags, load and validate the config (one
//! clear line and exit 64 when it is bad), set up logs, run the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use clawbridge::config::{Config, LogFormat};

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref(), &|k| std::env::var(k).ok()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("clawbridge: {e}");
            return ExitCode::from(64);
        }
    };
    if cli.check {
        println!(
            "clawbridge: config ok (listen {}, upstream {}, admin {}, chat completions {})",
            cfg.listen,
            cfg.upstream,
            cfg.admin_listen,
            if cfg.chat_enabled() { "on" } else { "off" }
        );
        return ExitCode::SUCCESS;
    }
    init_logs(cfg.log_format);
    clawbridge::metrics::init();
    tracing::info!(
        listen = %cfg.listen,
        upstream = %cfg.upstream,
        admin = %cfg.admin_listen,
        chat_completions = cfg.chat_enabled(),
        gateway_config = %cfg.openclaw_config.display(),
        "clawbridge starting"
    );
    match clawbridge::server::build(&cfg) {
        Ok(server) => server.run_forever(),
        Err(e) => {
            eprintln!("clawbridge: {e}");
            ExitCode::from(70)
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLAWBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
