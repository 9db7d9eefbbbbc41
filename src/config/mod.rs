//! clawbridge's own settings: the YAML file (`--config`), then `CLAWBRIDGE_*`
//! env vars on top, validated into one [`Config`]. The gateway's JSON5 file
//! (auth and the enable switch) is read by `gateway_file.rs`. Every error
//! names the key it is about.

mod gateway_file;
mod live;
mod secret;
mod upstream_tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use gateway_file::{AuthMode, GatewayFile, RateLimit};
pub use live::Live;
pub use secret::Secret;
pub use upstream_tls::UpstreamTls;

/// One line, naming the key; `main` prints it and exits 64.
#[derive(Debug, thiserror::Error)]
#[error("config: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// `inherit` follows the gateway's own switch for the route
/// (`gateway.http.endpoints.chatCompletions.enabled` / `.responses.enabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatSwitch {
    Inherit,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The YAML file's shape; every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    upstream: Option<String>,
    #[serde(default)]
    upstream_tls: upstream_tls::FileUpstreamTls,
    admin_listen: Option<String>,
    chat_completions: Option<ChatSwitch>,
    responses: Option<ChatSwitch>,
    openclaw_config: Option<PathBuf>,
    log_format: Option<LogFormat>,
    threads: Option<usize>,
    grace_period_secs: Option<u64>,
    state_dir: Option<PathBuf>,
    device_key_file: Option<PathBuf>,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_body_bytes: Option<usize>,
    max_concurrent_runs: Option<usize>,
    max_frame_bytes: Option<usize>,
    run_timeout_secs: Option<u64>,
    accept_timeout_ms: Option<u64>,
    handshake_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    sse_keepalive_secs: Option<u64>,
    run_buffer_bytes: Option<usize>,
    write_timeout_ms: Option<u64>,
    headers_timeout_ms: Option<u64>,
    keepalive_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    max_header_bytes: Option<usize>,
}

/// Limits; each is documented in `conf/clawbridge.yaml`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_concurrent_runs: usize,
    pub max_frame_bytes: usize,
    pub run_timeout: Duration,
    pub accept_timeout: Duration,
    pub handshake_timeout: Duration,
    pub body_timeout: Duration,
    /// Zero disables the `: ping` comments.
    pub sse_keepalive: Duration,
    /// Bytes of gateway events queued per run before a reader that fell
    /// behind is cut off and its run aborted.
    pub run_buffer_bytes: usize,
    /// A client that accepts no response bytes for this long is dropped
    /// (its run aborted): bounds what a slow reader can hold.
    pub write_timeout: Duration,
    /// Every client connection, every route (Node's server defaults):
    /// a request head must be in within `headers_timeout` (408), a
    /// kept-alive connection may idle `keepalive_timeout` between requests,
    /// a whole request must be in within `request_timeout` (408), and a head
    /// over `max_header_bytes` gets 431.
    pub headers_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub request_timeout: Duration,
    pub max_header_bytes: usize,
}

impl Limits {
    pub fn conn(&self) -> crate::conn_guard::ConnLimits {
        crate::conn_guard::ConnLimits {
            headers_timeout: self.headers_timeout,
            keepalive_timeout: self.keepalive_timeout,
            request_timeout: self.request_timeout,
            max_header_bytes: self.max_header_bytes,
        }
    }
}

/// Everything the process needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The gateway's `host:port` (the scheme of `upstream` stripped).
    pub upstream: String,
    /// `Some` for an `https://` upstream: the link dials `wss://`, passthrough
    /// speaks HTTPS, both verified with these settings.
    pub upstream_tls: Option<UpstreamTls>,
    pub admin_listen: SocketAddr,
    pub chat_switch: ChatSwitch,
    pub responses_switch: ChatSwitch,
    pub openclaw_config: PathBuf,
    pub gateway: GatewayFile,
    pub log_format: LogFormat,
    pub threads: usize,
    pub grace_period: Duration,
    pub limits: Limits,
    pub device: DeviceSettings,
}

/// Where the device identity lives (`gateway::device`): the state dir holds
/// the generated key and the device token; `key_file` is a key mounted
/// read-only (a Kubernetes Secret) used instead of the state dir's.
#[derive(Debug, Clone)]
pub struct DeviceSettings {
    pub state_dir: PathBuf,
    pub key_file: Option<PathBuf>,
}

impl Config {
    /// Whether clawbridge serves `/v1/chat/completions` itself.
    pub fn chat_enabled(&self) -> bool {
        match self.chat_switch {
            ChatSwitch::On => true,
            ChatSwitch::Off => false,
            ChatSwitch::Inherit => self.gateway.chat_completions_enabled,
        }
    }

    /// Whether clawbridge serves `/v1/responses` itself.
    pub fn responses_enabled(&self) -> bool {
        match self.responses_switch {
            ChatSwitch::On => true,
            ChatSwitch::Off => false,
            ChatSwitch::Inherit => self.gateway.responses_enabled,
        }
    }

    /// The owned routes that are switched on (models follow either).
    pub fn routes(&self) -> crate::ingress::Routes {
        crate::ingress::Routes { chat_completions: self.chat_enabled(), responses: self.responses_enabled() }
    }

    /// Loads the YAML (if given), applies env from `env`, reads the gateway file.
    pub fn load(path: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::new("--config", format!("{}: {e}", p.display())))?;
                serde_yaml::from_str::<FileConfig>(&text).map_err(|e| {
                    let key = e.location().map(|l| format!("line {}", l.line())).unwrap_or_default();
                    ConfigError::new(format!("{} {key}", p.display()), e.to_string())
                })?
            }
            None => FileConfig::default(),
        };
        Self::build(file, env)
    }

    fn build(f: FileConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &str| env(var).filter(|v| !v.trim().is_empty());
        let listen = addr("listen", get("CLAWBRIDGE_LISTEN").or(f.listen), "0.0.0.0:8080")?;
        let admin_listen = addr("admin_listen", get("CLAWBRIDGE_ADMIN_LISTEN").or(f.admin_listen), "0.0.0.0:9464")?;
        let (upstream, upstream_tls) = upstream_tls::resolve(
            &get("CLAWBRIDGE_UPSTREAM").or(f.upstream).unwrap_or_else(|| "127.0.0.1:18789".into()),
            get("CLAWBRIDGE_UPSTREAM_CA_FILE").map(PathBuf::from).or(f.upstream_tls.ca_file),
            get("CLAWBRIDGE_UPSTREAM_SERVER_NAME").or(f.upstream_tls.server_name),
        )?;
        let chat_switch = match get("CLAWBRIDGE_CHAT_COMPLETIONS") {
            Some(v) => parse_enum::<ChatSwitch>("CLAWBRIDGE_CHAT_COMPLETIONS", &v, "inherit, on or off")?,
            None => f.chat_completions.unwrap_or(ChatSwitch::Inherit),
        };
        let responses_switch = match get("CLAWBRIDGE_RESPONSES") {
            Some(v) => parse_enum::<ChatSwitch>("CLAWBRIDGE_RESPONSES", &v, "inherit, on or off")?,
            None => f.responses.unwrap_or(ChatSwitch::Inherit),
        };
        let log_format = match get("CLAWBRIDGE_LOG_FORMAT") {
            Some(v) => parse_enum::<LogFormat>("CLAWBRIDGE_LOG_FORMAT", &v, "text or json")?,
            None => f.log_format.unwrap_or(LogFormat::Text),
        };
        let openclaw_config = get("OPENCLAW_CONFIG_PATH")
            .map(PathBuf::from)
            .or(f.openclaw_config)
            .unwrap_or_else(|| default_gateway_config_path(env));
        let gateway = GatewayFile::load(&openclaw_config, env)?;
        let l = f.limits;
        let num = |key: &str, var: &str, file: Option<u64>, default: u64| -> Result<u64, ConfigError> {
            match get(var) {
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| ConfigError::new(var, format!("expected a whole number, got {v:?}"))),
                None => Ok(file.unwrap_or(default)),
            }
            .and_then(|n| {
                if key.ends_with("_bytes") && n == 0 {
                    Err(ConfigError::new(key, "must be > 0"))
                } else {
                    Ok(n)
                }
            })
        };
        let as_usize = |v: Option<usize>| v.map(|n| n as u64);
        let limits = Limits {
            max_body_bytes: num(
                "limits.max_body_bytes",
                "CLAWBRIDGE_MAX_BODY_BYTES",
                as_usize(l.max_body_bytes),
                20 * 1024 * 1024,
            )? as usize,
            max_concurrent_runs: num(
                "limits.max_concurrent_runs",
                "CLAWBRIDGE_MAX_CONCURRENT_RUNS",
                as_usize(l.max_concurrent_runs),
                4096,
            )? as usize,
            max_frame_bytes: num(
                "limits.max_frame_bytes",
                "CLAWBRIDGE_MAX_FRAME_BYTES",
                as_usize(l.max_frame_bytes),
                25 * 1024 * 1024,
            )? as usize,
            run_timeout: Duration::from_secs(num(
                "limits.run_timeout_secs",
                "CLAWBRIDGE_RUN_TIMEOUT_SECS",
                l.run_timeout_secs,
                600,
            )?),
            accept_timeout: Duration::from_millis(num(
                "limits.accept_timeout_ms",
                "CLAWBRIDGE_ACCEPT_TIMEOUT_MS",
                l.accept_timeout_ms,
                15_000,
            )?),
            handshake_timeout: Duration::from_millis(num(
                "limits.handshake_timeout_ms",
                "CLAWBRIDGE_HANDSHAKE_TIMEOUT_MS",
                l.handshake_timeout_ms,
                10_000,
            )?),
            body_timeout: Duration::from_millis(num(
                "limits.body_timeout_ms",
                "CLAWBRIDGE_BODY_TIMEOUT_MS",
                l.body_timeout_ms,
                30_000,
            )?),
            sse_keepalive: Duration::from_secs(num(
                "limits.sse_keepalive_secs",
                "CLAWBRIDGE_SSE_KEEPALIVE_SECS",
                l.sse_keepalive_secs,
                15,
            )?),
            run_buffer_bytes: num(
                "limits.run_buffer_bytes",
                "CLAWBRIDGE_RUN_BUFFER_BYTES",
                as_usize(l.run_buffer_bytes),
                1024 * 1024,
            )?
            .max(1024) as usize,
            write_timeout: Duration::from_millis(num(
                "limits.write_timeout_ms",
                "CLAWBRIDGE_WRITE_TIMEOUT_MS",
                l.write_timeout_ms,
                30_000,
            )?),
            headers_timeout: Duration::from_millis(num(
                "limits.headers_timeout_ms",
                "CLAWBRIDGE_HEADERS_TIMEOUT_MS",
                l.headers_timeout_ms,
                60_000,
            )?),
            keepalive_timeout: Duration::from_millis(num(
                "limits.keepalive_timeout_ms",
                "CLAWBRIDGE_KEEPALIVE_TIMEOUT_MS",
                l.keepalive_timeout_ms,
                5_000,
            )?),
            request_timeout: Duration::from_millis(num(
                "limits.request_timeout_ms",
                "CLAWBRIDGE_REQUEST_TIMEOUT_MS",
                l.request_timeout_ms,
                300_000,
            )?),
            max_header_bytes: num(
                "limits.max_header_bytes",
                "CLAWBRIDGE_MAX_HEADER_BYTES",
                as_usize(l.max_header_bytes),
                16 * 1024,
            )? as usize,
        };
        for (key, v) in [
            ("limits.max_concurrent_runs", limits.max_concurrent_runs as u64),
            ("limits.run_timeout_secs", limits.run_timeout.as_secs()),
            ("limits.accept_timeout_ms", limits.accept_timeout.as_millis() as u64),
            ("limits.handshake_timeout_ms", limits.handshake_timeout.as_millis() as u64),
            ("limits.body_timeout_ms", limits.body_timeout.as_millis() as u64),
            ("limits.write_timeout_ms", limits.write_timeout.as_millis() as u64),
            ("limits.headers_timeout_ms", limits.headers_timeout.as_millis() as u64),
            ("limits.keepalive_timeout_ms", limits.keepalive_timeout.as_millis() as u64),
            ("limits.request_timeout_ms", limits.request_timeout.as_millis() as u64),
        ] {
            if v == 0 {
                return Err(ConfigError::new(key, "must be > 0"));
            }
        }
        let threads = num("threads", "CLAWBRIDGE_THREADS", as_usize(f.threads), 1)? as usize;
        if threads == 0 {
            return Err(ConfigError::new("threads", "must be > 0"));
        }
        let grace = num("grace_period_secs", "CLAWBRIDGE_GRACE_PERIOD_SECS", f.grace_period_secs, 20)?;
        let device = DeviceSettings {
            state_dir: get("CLAWBRIDGE_STATE_DIR")
                .map(PathBuf::from)
                .or(f.state_dir)
                .unwrap_or_else(|| default_state_dir(env)),
            key_file: get("CLAWBRIDGE_DEVICE_KEY_FILE").map(PathBuf::from).or(f.device_key_file),
        };
        let cfg = Config {
            listen,
            upstream,
            upstream_tls,
            admin_listen,
            chat_switch,
            responses_switch,
            openclaw_config,
            gateway,
            log_format,
            threads,
            grace_period: Duration::from_secs(grace),
            limits,
            device,
        };
        if cfg.routes().any() {
            cfg.gateway.require_secret()?;
        }
        Ok(cfg)
    }
}

fn addr(key: &str, value: Option<String>, default: &str) -> Result<SocketAddr, ConfigError> {
    let v = value.unwrap_or_else(|| default.to_string());
    v.trim().parse().map_err(|_| ConfigError::new(key, format!("expected ip:port, got {v:?}")))
}

fn parse_enum<T: serde::de::DeserializeOwned>(key: &str, v: &str, allowed: &str) -> Result<T, ConfigError> {
    serde_json::from_value(serde_json::Value::String(v.trim().to_ascii_lowercase()))
        .map_err(|_| ConfigError::new(key, format!("expected {allowed}, got {v:?}")))
}

/// `~/.openclaw/openclaw.json`, or under `OPENCLAW_STATE_DIR` when set, as the gateway does.
fn default_gateway_config_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = env("OPENCLAW_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("openclaw.json");
    }
    let home = env("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".openclaw").join("openclaw.json")
}

/// `$XDG_STATE_HOME/clawbridge`, else `~/.local/state/clawbridge`, else
/// `/var/lib/clawbridge` (no `HOME`, as in the container image).
fn default_state_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = env("XDG_STATE_HOME").filter(|d| d.starts_with('/')) {
        return PathBuf::from(dir).join("clawbridge");
    }
    match env("HOME").filter(|h| h.starts_with('/') && h != "/") {
        Some(home) => PathBuf::from(home).join(".local/state/clawbridge"),
        None => PathBuf::from("/var/lib/clawbridge"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    fn gateway_file(text: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with(text)
    }

    /// Tiny temp-file helper so tests need no extra crate.
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn with(text: &str) -> Self {
                let p = std::env::temp_dir().join(format!("clawbridge-test-{}.json5", uuid::Uuid::new_v4()));
                std::fs::write(&p, text).unwrap();
                TempPath(p)
            }
            pub fn s(&self) -> &str {
                self.0.to_str().unwrap()
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_without_file_or_env() {
        let cfg = Config::build(FileConfig::default(), &env_of(&[("HOME", "/nonexistent-home")])).unwrap();
        assert_eq!(cfg.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(cfg.admin_listen.to_string(), "0.0.0.0:9464");
        assert_eq!(cfg.upstream, "127.0.0.1:18789");
        assert!(!cfg.chat_enabled(), "off by default, as in the gateway");
        assert_eq!(cfg.limits.max_body_bytes, 20 * 1024 * 1024);
        assert_eq!(cfg.grace_period, Duration::from_secs(20));
        // Node's HTTP server defaults, as the gateway runs it.
        assert_eq!(cfg.limits.headers_timeout, Duration::from_secs(60));
        assert_eq!(cfg.limits.keepalive_timeout, Duration::from_secs(5));
        assert_eq!(cfg.limits.request_timeout, Duration::from_secs(300));
        assert_eq!(cfg.limits.max_header_bytes, 16 * 1024);
        assert_eq!(cfg.device.state_dir, PathBuf::from("/nonexistent-home/.local/state/clawbridge"));
        assert_eq!(cfg.device.key_file, None);
    }

    #[test]
    fn state_dir_and_key_file_from_env_or_yaml() {
        let f: FileConfig = serde_yaml::from_str("state_dir: /srv/cb\ndevice_key_file: /keys/a.pem\n").unwrap();
        let cfg = Config::build(f, &env_of(&[("HOME", "/nonexistent-home")])).unwrap();
        assert_eq!(cfg.device.state_dir, PathBuf::from("/srv/cb"));
        assert_eq!(cfg.device.key_file, Some(PathBuf::from("/keys/a.pem")));
        let env = env_of(&[
            ("HOME", "/nonexistent-home"),
            ("CLAWBRIDGE_STATE_DIR", "/s"),
            ("CLAWBRIDGE_DEVICE_KEY_FILE", "/k.pem"),
        ]);
        let cfg = Config::build(FileConfig::default(), &env).unwrap();
        assert_eq!(cfg.device.state_dir, PathBuf::from("/s"));
        assert_eq!(cfg.device.key_file, Some(PathBuf::from("/k.pem")));
        let cfg =
            Config::build(FileConfig::default(), &env_of(&[("HOME", "/nonexistent-home"), ("XDG_STATE_HOME", "/x")]))
                .unwrap();
        assert_eq!(cfg.device.state_dir, PathBuf::from("/x/clawbridge"));
    }

    #[test]
    fn connection_limits_from_yaml_and_env() {
        let f: FileConfig =
            serde_yaml::from_str("limits:\n  headers_timeout_ms: 1500\n  max_header_bytes: 4096\n").unwrap();
        let env = env_of(&[("HOME", "/nonexistent-home"), ("CLAWBRIDGE_KEEPALIVE_TIMEOUT_MS", "250")]);
        let cfg = Config::build(f, &env).unwrap();
        assert_eq!(cfg.limits.headers_timeout, Duration::from_millis(1500));
        assert_eq!(cfg.limits.keepalive_timeout, Duration::from_millis(250));
        assert_eq!(cfg.limits.max_header_bytes, 4096);
        let err = Config::build(
            FileConfig::default(),
            &env_of(&[("HOME", "/nonexistent-home"), ("CLAWBRIDGE_REQUEST_TIMEOUT_MS", "0")]),
        )
        .unwrap_err();
        assert_eq!(err.key, "limits.request_timeout_ms");
    }

    #[test]
    fn env_overrides_file_and_enables_from_gateway_key() {
        let gw = gateway_file(
            "{ gateway: { auth: { mode: 'token', token: 'file-token' }, http: { endpoints: { chatCompletions: { enabled: true } } } } }",
        );
        let f: FileConfig = serde_yaml::from_str("listen: 127.0.0.1:1\nlimits:\n  max_body_bytes: 10\n").unwrap();
        let env = env_of(&[
            ("OPENCLAW_CONFIG_PATH", gw.s()),
            ("CLAWBRIDGE_LISTEN", "127.0.0.1:2"),
            ("OPENCLAW_GATEWAY_TOKEN", "env-token"),
        ]);
        let cfg = Config::build(f, &env).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:2");
        assert_eq!(cfg.limits.max_body_bytes, 10);
        assert!(cfg.chat_enabled());
        assert!(
            cfg.gateway.secret.as_ref().unwrap().matches(b"file-token"),
            "the gateway file wins, as in the gateway"
        );
    }

    #[test]
    fn switch_on_requires_a_secret_and_names_the_key() {
        let err = Config::build(
            FileConfig::default(),
            &env_of(&[("HOME", "/nonexistent-home"), ("CLAWBRIDGE_CHAT_COMPLETIONS", "on")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("gateway.auth.token"), "{err}");
        let err =
            Config::build(FileConfig::default(), &env_of(&[("CLAWBRIDGE_CHAT_COMPLETIONS", "maybe")])).unwrap_err();
        assert_eq!(err.key, "CLAWBRIDGE_CHAT_COMPLETIONS");
        let err = Config::build(FileConfig::default(), &env_of(&[("CLAWBRIDGE_LISTEN", "nope")])).unwrap_err();
        assert_eq!(err.key, "listen");
    }

    #[test]
    fn yaml_rejects_unknown_keys() {
        let err = serde_yaml::from_str::<FileConfig>("listn: 1\n").unwrap_err();
        assert!(err.to_string().contains("listn"), "{err}");
    }
}
