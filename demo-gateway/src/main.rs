//! `clawbridge-demo-gateway` binary: runs the fake OpenClaw gateway standalone (used by `make demo`).

use clap::Parser;
use demo_gateway::DemoGateway;
use std::time::Duration;

/// Fake OpenClaw gateway (native WebSocket protocol v4 + health/demo HTTP routes) on one port.
#[derive(Debug, Parser)]
#[command(name = "clawbridge-demo-gateway", version)]
struct Args {
    /// Listen address.
    #[arg(long, env = "DEMO_GATEWAY_LISTEN", default_value = "127.0.0.1:18789")]
    listen: String,
    /// Shared gateway token clients must present (auth.token or auth.password).
    #[arg(long, env = "DEMO_GATEWAY_TOKEN")]
    token: Option<String>,
    /// Shared gateway password (instead of a token).
    #[arg(long, env = "DEMO_GATEWAY_PASSWORD", conflicts_with = "token")]
    password: Option<String>,
    /// Delay between reply deltas, in milliseconds.
    #[arg(long, env = "DEMO_GATEWAY_DELAY_MS", default_value_t = 0)]
    delay_ms: u64,
    /// Fixed reply deltas, comma separated (default: echo "You said: <prompt>").
    #[arg(long, env = "DEMO_GATEWAY_REPLY")]
    reply: Option<String>,
    /// Configured agent ids, comma separated; the first is the default.
    #[arg(long, env = "DEMO_GATEWAY_AGENTS", default_value = "main")]
    agents: String,
    /// Tick interval advertised and sent, in milliseconds.
    #[arg(long, env = "DEMO_GATEWAY_TICK_MS", default_value_t = 30_000)]
    tick_ms: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut b = DemoGateway::builder()
        .bind(args.listen.clone())
        .agents(args.agents.split(',').map(str::trim).filter(|s| !s.is_empty()))
        .delta_delay(Duration::from_millis(args.delay_ms))
        .tick_interval(Duration::from_millis(args.tick_ms));
    if let Some(t) = args.token {
        b = b.token(t);
    }
    if let Some(p) = args.password {
        b = b.password(p);
    }
    if let Some(r) = args.reply {
        b = b.reply(r.split(',').map(str::to_string));
    }
    let gw = b.start().await?;
    tracing::info!("clawbridge-demo-gateway listening on {} (ws://{0}, http://{0})", gw.addr());
    wait_for_signal().await?;
    tracing::info!("shutting down");
    gw.shutdown().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix (containers stop with SIGTERM).
async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
