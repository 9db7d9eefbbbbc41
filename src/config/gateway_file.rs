//! Reads the gateway's own JSON5 config (`OPENCLAW_CONFIG_PATH`): the
//! chat-completions switch, the auth mode and secret (the file first, then
//! `OPENCLAW_GATEWAY_TOKEN`/`_PASSWORD`, as the gateway resolves them), the
//! auth rate limit and `gateway.trustedProxies`. A missing file means the
//! gateway's defaults.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{ConfigError, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Token,
    Password,
    /// Private ingress: no bearer check, no secret on the socket.
    None,
}

/// `gateway.auth.rateLimit`. The gateway always limits; an absent key means
/// the defaults (10 failures per minute, 5 minute lockout, loopback exempt).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub max_attempts: u32,
    pub window: Duration,
    pub lockout: Duration,
    pub exempt_loopback: bool,
}

#[derive(Debug, Clone)]
pub struct GatewayFile {
    pub chat_completions_enabled: bool,
    /// `gateway.http.endpoints.responses.enabled` (off by default).
    pub responses_enabled: bool,
    pub auth_mode: AuthMode,
    pub secret: Option<Secret>,
    pub rate_limit: RateLimit,
    /// `gateway.trustedProxies` and `gateway.allowRealIpFallback`: how the
    /// gateway attributes a request to its client.
    pub attribution: crate::ingress::Attributor,
    /// `agents.list[].id`: the configured agents (metric label values).
    pub agents: Vec<String>,
}

impl GatewayFile {
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let root = match std::fs::read_to_string(path) {
            Ok(text) => json5::from_str::<Value>(&text)
                .map_err(|e| ConfigError::new(path.display().to_string(), format!("not valid JSON5: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
            Err(e) => return Err(ConfigError::new(path.display().to_string(), e.to_string())),
        };
        Self::from_value(&root, env)
    }

    fn from_value(root: &Value, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let flag = |key: &str| -> Result<bool, ConfigError> {
            match lookup(root, key) {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(other) => Err(type_error(key, "a boolean", other)),
            }
        };
        let enabled = flag("gateway.http.endpoints.chatCompletions.enabled")?;
        let responses_enabled = flag("gateway.http.endpoints.responses.enabled")?;
        let text = |key: &str| -> Result<Option<String>, ConfigError> {
            match lookup(root, key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(type_error(key, "a string", other)),
            }
        };
        // The gateway resolves credentials config-first: the env var applies
        // only when the file has no value (`resolveGatewayCredentialsFromValues`).
        let trimmed = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let token = trimmed(text("gateway.auth.token")?).or_else(|| trimmed(env("OPENCLAW_GATEWAY_TOKEN")));
        let password = trimmed(text("gateway.auth.password")?).or_else(|| trimmed(env("OPENCLAW_GATEWAY_PASSWORD")));
        let mode = match text("gateway.auth.mode")?.as_deref() {
            Some("token") => AuthMode::Token,
            Some("password") => AuthMode::Password,
            Some("none") => AuthMode::None,
            Some(other) => {
                return Err(ConfigError::new(
                    "gateway.auth.mode",
                    format!("{other:?} is not supported by clawbridge (token, password or none)"),
                ))
            }
            // No explicit mode: a password alone selects password auth.
            None if token.is_none() && password.is_some() => AuthMode::Password,
            None => AuthMode::Token,
        };
        let secret = match mode {
            AuthMode::Token => token,
            AuthMode::Password => password,
            AuthMode::None => None,
        }
        .map(Secret::new);
        Ok(GatewayFile {
            chat_completions_enabled: enabled,
            responses_enabled,
            auth_mode: mode,
            secret,
            rate_limit: rate_limit(root)?,
            agents: configured_agents(root),
            attribution: crate::ingress::Attributor {
                trusted: trusted_proxies(root)?,
                real_ip_fallback: match lookup(root, "gateway.allowRealIpFallback") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => return Err(type_error("gateway.allowRealIpFallback", "a boolean", other)),
                },
            },
        })
    }

    /// The endpoint cannot run without the secret its mode names.
    pub fn require_secret(&self) -> Result<(), ConfigError> {
        match (self.auth_mode, &self.secret) {
            (AuthMode::Token, None) => Err(ConfigError::new(
                "gateway.auth.token",
                "auth mode is token but neither gateway.auth.token nor OPENCLAW_GATEWAY_TOKEN is set",
            )),
            (AuthMode::Password, None) => Err(ConfigError::new(
                "gateway.auth.password",
                "auth mode is password but neither gateway.auth.password nor OPENCLAW_GATEWAY_PASSWORD is set",
            )),
            _ => Ok(()),
        }
    }
}

fn rate_limit(root: &Value) -> Result<RateLimit, ConfigError> {
    let empty = Value::Object(Default::default());
    let v = lookup(root, "gateway.auth.rateLimit").unwrap_or(&empty);
    if !v.is_object() {
        return Err(type_error("gateway.auth.rateLimit", "an object", v));
    }
    let num = |key: &str, default: u64| -> Result<u64, ConfigError> {
        match v.get(key) {
            None => Ok(default),
            Some(n) => {
                n.as_u64().ok_or_else(|| type_error(&format!("gateway.auth.rateLimit.{key}"), "a whole number", n))
            }
        }
    };
    let exempt = match v.get("exemptLoopback") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(type_error("gateway.auth.rateLimit.exemptLoopback", "a boolean", other)),
    };
    Ok(RateLimit {
        max_attempts: num("maxAttempts", 10)?.clamp(1, u32::MAX as u64) as u32,
        window: Duration::from_millis(num("windowMs", 60_000)?),
        lockout: Duration::from_millis(num("lockoutMs", 300_000)?),
        exempt_loopback: exempt,
    })
}

fn trusted_proxies(root: &Value) -> Result<crate::ingress::trusted::TrustedProxies, ConfigError> {
    let key = "gateway.trustedProxies";
    let entries: Vec<&str> = match lookup(root, key) {
        None => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().ok_or_else(|| type_error(key, "an array of strings", v)))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(type_error(key, "an array of strings", other)),
    };
    crate::ingress::trusted::TrustedProxies::parse(entries)
        .map_err(|bad| ConfigError::new(key, format!("{bad:?} is not an IP address or CIDR range")))
}

/// The configured agent ids: `agents.list[].id`, or the keys of
/// `agents.entries` (the form 2026.9.6 writes), without repeats.
fn configured_agents(root: &Value) -> Vec<String> {
    let listed: Vec<&str> = match (lookup(root, "agents.list"), lookup(root, "agents.entries")) {
        (Some(Value::Array(list)), _) => list.iter().filter_map(|a| a.get("id").and_then(Value::as_str)).collect(),
        (_, Some(Value::Object(entries))) => entries.keys().map(String::as_str).collect(),
        _ => Vec::new(),
    };
    let mut ids: Vec<String> = Vec::new();
    for id in listed.into_iter().map(|id| id.trim().to_lowercase()).filter(|id| !id.is_empty()) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

fn lookup<'a>(root: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(root, |v, k| v.get(k)).filter(|v| !v.is_null())
}

fn type_error(key: &str, expected: &str, got: &Value) -> ConfigError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ConfigError::new(key, format!("expected {expected}, got {kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<GatewayFile, ConfigError> {
        let v: Value = json5::from_str(text).unwrap();
        let env: Vec<(String, String)> = env.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        GatewayFile::from_value(&v, &move |k| env.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone()))
    }

    #[test]
    fn reads_the_kit_config_shape() {
        let g = parse(
            "{ // comment\n gateway: { mode: 'local', auth: { mode: 'token', token: 'test-token', }, http: { endpoints: { chatCompletions: { enabled: true } } } } }",
            &[],
        )
        .unwrap();
        assert!(g.chat_completions_enabled);
        assert_eq!(g.auth_mode, AuthMode::Token);
        assert!(g.secret.unwrap().matches(b"test-token"));
        assert_eq!(g.rate_limit.max_attempts, 10, "limiting is on by default");
    }

    #[test]
    fn password_mode_and_env_precedence() {
        let g =
            parse("{gateway:{auth:{mode:'password', password:'file-pw'}}}", &[("OPENCLAW_GATEWAY_PASSWORD", "env-pw")])
                .unwrap();
        assert_eq!(g.auth_mode, AuthMode::Password);
        assert!(g.secret.unwrap().matches(b"file-pw"), "the file wins, as in the gateway");
        let g = parse("{gateway:{auth:{mode:'password'}}}", &[("OPENCLAW_GATEWAY_PASSWORD", "env-pw")]).unwrap();
        assert!(g.secret.unwrap().matches(b"env-pw"), "env fills a missing value");
        let g = parse("{}", &[("OPENCLAW_GATEWAY_PASSWORD", "env-pw")]).unwrap();
        assert_eq!(g.auth_mode, AuthMode::Password, "a password alone selects password mode");
        assert!(!parse("{}", &[]).unwrap().chat_completions_enabled);
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = parse("{gateway:{http:{endpoints:{chatCompletions:{enabled:'yes'}}}}}", &[]).unwrap_err();
        assert_eq!(e.key, "gateway.http.endpoints.chatCompletions.enabled");
        let e = parse("{gateway:{auth:{mode:'trusted-proxy'}}}", &[]).unwrap_err();
        assert_eq!(e.key, "gateway.auth.mode");
        let e = parse("{gateway:{auth:{rateLimit:{maxAttempts:'x'}}}}", &[]).unwrap_err();
        assert_eq!(e.key, "gateway.auth.rateLimit.maxAttempts");
    }

    #[test]
    fn rate_limit_defaults() {
        let g = parse("{gateway:{auth:{token:'t', rateLimit:{}}}}", &[]).unwrap();
        let r = g.rate_limit;
        assert_eq!((r.max_attempts, r.window.as_secs(), r.lockout.as_secs(), r.exempt_loopback), (10, 60, 300, true));
    }
}
