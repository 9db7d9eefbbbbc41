//! Pure validation of `agent` params and session-key canonicalisation (spec 2.5; report section 6; `ws-matrix/agent-*`).

use crate::protocol::AGENT_KEYS;
use serde_json::Value;

/// A validated `agent` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRequest {
    /// Trimmed prompt.
    pub message: String,
    pub idempotency_key: String,
    pub agent_id: String,
    /// Canonical session key (`agent:<id>:<rest>`).
    pub session_key: String,
    /// `timeout` param, seconds.
    pub timeout_secs: Option<u64>,
}

fn invalid(detail: &str) -> String {
    format!("invalid agent params: {detail}")
}

/// Validate params against the closed `AgentParamsSchema` and resolve agent + session key.
/// `Err` carries the `INVALID_REQUEST` message.
pub fn parse_agent_params(params: Option<&Value>, agents: &[String]) -> Result<AgentRequest, String> {
    let obj = match params {
        Some(Value::Object(o)) => o,
        _ => return Err(invalid("at root: must be object")),
    };
    for k in ["message", "idempotencyKey"] {
        if !obj.contains_key(k) {
            return Err(invalid(&format!("at root: must have required property '{k}'")));
        }
    }
    if let Some(k) = obj.keys().find(|k| !AGENT_KEYS.contains(&k.as_str())) {
        return Err(invalid(&format!("at root: unexpected property '{k}'")));
    }
    let non_empty = |k: &str| -> Result<Option<String>, String> {
        match obj.get(k) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => {
                Err(invalid(&format!("at /{k}: must not have fewer than 1 characters")))
            }
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&format!("at /{k}: must be string"))),
        }
    };
    let plain = |k: &str| -> Result<Option<String>, String> {
        match obj.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&format!("at /{k}: must be string"))),
        }
    };
    let message = non_empty("message")?.unwrap_or_default();
    let idempotency_key = non_empty("idempotencyKey")?.unwrap_or_default();
    let agent_param = plain("agentId")?.filter(|s| !s.trim().is_empty());
    let session_param = plain("sessionKey")?.filter(|s| !s.trim().is_empty());
    let timeout_secs = match obj.get("timeout") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) => Some(n),
            None => return Err(invalid("at /timeout: must be integer >= 0")),
        },
    };
    let default_agent = agents.first().cloned().unwrap_or_else(|| "main".to_string());
    let known = |a: &str| agents.iter().any(|x| x == a);
    if let Some(a) = &agent_param {
        if !known(a) {
            return Err(format!("invalid agent params: unknown agent id \"{a}\""));
        }
    }
    let (agent_id, session_key) = match session_param {
        None => {
            let a = agent_param.unwrap_or(default_agent);
            let k = format!("agent:{a}:main");
            (a, k)
        }
        Some(raw) => {
            let key = raw.trim().to_lowercase();
            if let Some(rest) = key.strip_prefix("agent:") {
                let (owner, tail) = rest.split_once(':').unwrap_or((rest, ""));
                if owner.is_empty() || tail.is_empty() {
                    return Err(invalid(&format!("malformed session key \"{raw}\"")));
                }
                match &agent_param {
                    Some(a) if a != owner => {
                        return Err(format!(
                            "Multiple agents are configured, but session agent resolution has no explicit owner. The agent-scoped session key belongs to \"{owner}\", not \"{a}\"."
                        ))
                    }
                    Some(a) => (a.clone(), key.clone()),
                    None if known(owner) => (owner.to_string(), key.clone()),
                    None => return Err(format!("invalid agent params: unknown agent id \"{owner}\"")),
                }
            } else {
                let a = agent_param.unwrap_or(default_agent);
                let k = format!("agent:{a}:{key}");
                (a, k)
            }
        }
    };
    Ok(AgentRequest { message: message.trim().to_string(), idempotency_key, agent_id, session_key, timeout_secs })
}

/// Canonicalise a `chat.abort`/`sessions.abort` session key the same way (best effort, never fails).
pub fn canonical_session_key(raw: &str, agents: &[String]) -> String {
    let key = raw.trim().to_lowercase();
    if key.starts_with("agent:") || key.is_empty() {
        key
    } else {
        let a = agents.first().map(String::as_str).unwrap_or("main");
        format!("agent:{a}:{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn agents() -> Vec<String> {
        vec!["main".into(), "ops".into()]
    }

    fn parse(v: Value) -> Result<AgentRequest, String> {
        parse_agent_params(Some(&v), &agents())
    }

    #[test]
    fn session_keys_canonicalise() {
        let r = parse(json!({"message":" Say hello ","idempotencyKey":"k","agentId":"main"})).unwrap();
        assert_eq!((r.session_key.as_str(), r.message.as_str()), ("agent:main:main", "Say hello"));
        let r = parse(json!({"message":"m","idempotencyKey":"k","agentId":"main","sessionKey":"Probe-S1"})).unwrap();
        assert_eq!(r.session_key, "agent:main:probe-s1");
        let r = parse(json!({"message":"m","idempotencyKey":"k","agentId":"main","sessionKey":"agent:main:matrix-q"}))
            .unwrap();
        assert_eq!(r.session_key, "agent:main:matrix-q");
        let r = parse(json!({"message":"m","idempotencyKey":"k","sessionKey":"agent:ops:x"})).unwrap();
        assert_eq!((r.agent_id.as_str(), r.session_key.as_str()), ("ops", "agent:ops:x"));
        let r = parse(json!({"message":"m","idempotencyKey":"k","agentId":"ops"})).unwrap();
        assert_eq!(r.session_key, "agent:ops:main");
    }

    #[test]
    fn captured_errors() {
        assert_eq!(
            parse(json!({"message":"m","idempotencyKey":"k","agentId":"main","sessionKey":"agent:other:matrix-x"})).unwrap_err(),
            "Multiple agents are configured, but session agent resolution has no explicit owner. The agent-scoped session key belongs to \"other\", not \"main\"."
        );
        assert_eq!(
            parse(json!({"message":"m","idempotencyKey":"k","agentId":"nosuchagent"})).unwrap_err(),
            "invalid agent params: unknown agent id \"nosuchagent\""
        );
        assert_eq!(
            parse(json!({"message":"m","idempotencyKey":"k","agentId":"main","bogus":true})).unwrap_err(),
            "invalid agent params: at root: unexpected property 'bogus'"
        );
        assert_eq!(
            parse(json!({"message":"m","idempotencyKey":"","agentId":"main"})).unwrap_err(),
            "invalid agent params: at /idempotencyKey: must not have fewer than 1 characters"
        );
        assert_eq!(
            parse(json!({"idempotencyKey":"k"})).unwrap_err(),
            "invalid agent params: at root: must have required property 'message'"
        );
        assert_eq!(
            parse(json!({"message":"","idempotencyKey":"k"})).unwrap_err(),
            "invalid agent params: at /message: must not have fewer than 1 characters"
        );
    }

    #[test]
    fn abort_keys() {
        assert_eq!(canonical_session_key("K", &agents()), "agent:main:k");
        assert_eq!(canonical_session_key("agent:ops:x", &agents()), "agent:ops:x");
    }
}
