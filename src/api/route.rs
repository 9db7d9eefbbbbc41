//! Which agent and which session a request runs in: the agent from
//! `x-openclaw-agent-id` or `model`, the session from `x-openclaw-session-key`,
//! `user`, or a fresh uuid; the same for every API. Pure; mirrors `http-utils.ts` of the gateway.

pub use crate::chat::prompt::js_trim;
use crate::error::ApiError;

/// The routing headers, as text (decoded as Node decodes header bytes).
#[derive(Debug, Default, Clone, Copy)]
pub struct RouteHeaders<'a> {
    /// `x-openclaw-agent-id`, else `x-openclaw-agent`.
    pub agent_id: Option<&'a str>,
    pub session_key: Option<&'a str>,
    /// `x-openclaw-model`: a provider/model override for the run.
    pub model_override: Option<&'a str>,
    /// `x-openclaw-message-channel`.
    pub message_channel: Option<&'a str>,
}

/// Agent ids are at most 64 characters of `[a-z0-9_-]`, starting alphanumeric.
const MAX_AGENT_ID: usize = 64;

/// The agent a request names, before the default agent is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentTarget {
    /// `openclaw`, `openclaw/default`, or no model: the gateway's default agent.
    Default,
    Named(String),
}

impl AgentTarget {
    pub fn resolve<'a>(&'a self, default_agent: &'a str) -> &'a str {
        match self {
            AgentTarget::Default => default_agent,
            AgentTarget::Named(id) => id,
        }
    }
}

/// The built-in's answer (2026.9.6) to `openclaw` or `openclaw/default`
/// when more than one agent is configured: the configured default is not
/// an owner (the gateway writes `agents.ownership: "explicit"` then).
pub const AGENT_SELECTION_REQUIRED: &str = "Multiple agents are configured, but this operation has no explicit owner. Select an agent explicitly; CLI callers can pass --agent <id>, channels can add a binding, and ambient services can set their agentId target.";

pub const INVALID_MODEL_OVERRIDE: &str = "Invalid `x-openclaw-model`.";

/// `x-openclaw-model` as `parseModelRef` reads it: `provider/model`, or a
/// bare model of the agent's default provider; blank is no override.
pub fn model_override(header: Option<&str>) -> Result<Option<crate::gateway::ModelOverride>, ApiError> {
    let Some(raw) = header.map(js_trim).filter(|h| !h.is_empty()) else { return Ok(None) };
    let (provider, model) = match raw.split_once('/') {
        Some((p, m)) => (Some(js_trim(p)), js_trim(m)),
        None => (None, raw),
    };
    if model.is_empty() || provider.is_some_and(str::is_empty) {
        return Err(ApiError::InvalidRequest(INVALID_MODEL_OVERRIDE.into()));
    }
    Ok(Some(crate::gateway::ModelOverride { provider: provider.map(str::to_string), model: model.to_string() }))
}

pub const INVALID_MODEL: &str = "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`.";
pub const RESERVED_SESSION: &str = "`x-openclaw-session-key` cannot use reserved internal session namespaces.";

pub fn unknown_agent(id: &str) -> ApiError {
    ApiError::InvalidRequest(format!("Unknown agent '{id}'."))
}

/// Resolves the agent as `resolveAgentIdForRequest` does: an invalid `model`
/// is refused first, then the header wins, then the model names the agent.
pub fn agent_target(header: Option<&str>, model: Option<&str>) -> Result<AgentTarget, ApiError> {
    let model = model.map(js_trim).filter(|m| !m.is_empty());
    if let Some(m) = model {
        if !is_agent_model(m) {
            return Err(ApiError::InvalidRequest(INVALID_MODEL.into()));
        }
    }
    if let Some(raw) = header.map(js_trim).filter(|h| !h.is_empty()) {
        if !is_valid_agent_id(raw) {
            return Err(unknown_agent(raw));
        }
        return Ok(AgentTarget::Named(raw.to_lowercase()));
    }
    let Some(m) = model else {
        return Ok(AgentTarget::Default);
    };
    let lower = m.to_lowercase();
    if lower == "openclaw" || lower == "openclaw/default" {
        return Ok(AgentTarget::Default);
    }
    Ok(AgentTarget::Named(agent_suffix(m).expect("checked by is_agent_model").to_lowercase()))
}

/// `openclaw`, `openclaw/default`, `openclaw[:/]<id>` or `agent:<id>`, any case.
pub fn is_agent_model(m: &str) -> bool {
    let lower = m.to_lowercase();
    lower == "openclaw" || lower == "openclaw/default" || agent_suffix(m).is_some()
}

pub fn agent_suffix(m: &str) -> Option<&str> {
    let prefix_len = ["openclaw/", "openclaw:", "agent:"]
        .iter()
        .find(|p| m.len() >= p.len() && m.is_char_boundary(p.len()) && m[..p.len()].eq_ignore_ascii_case(p))?
        .len();
    let id = &m[prefix_len..];
    is_valid_agent_id(id).then_some(id)
}

/// `^[a-z0-9][a-z0-9_-]{0,63}$`, case-insensitive.
fn is_valid_agent_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_AGENT_ID
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// Where the run's session comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChoice {
    /// `x-openclaw-session-key`, verbatim. The gateway scopes a key without
    /// the `agent:` prefix to its default agent, so the run is started
    /// without `agentId`, exactly as the built-in endpoint starts it.
    Explicit(String),
    /// `agent:<id>:openai-user:<user>` or `agent:<id>:openai:<uuid>`.
    Derived { main_key: String },
}

impl SessionChoice {
    pub fn key(&self, agent_id: &str) -> String {
        match self {
            SessionChoice::Explicit(k) => k.clone(),
            SessionChoice::Derived { main_key } => format!("agent:{agent_id}:{main_key}"),
        }
    }
}

/// Resolves the session as `resolveSessionKey` does; `prefix` names the
/// API (`openai` for chat, `openresponses` for responses).
pub fn session_choice(prefix: &str, header: Option<&str>, user: Option<&str>) -> Result<SessionChoice, ApiError> {
    if let Some(key) = header.map(js_trim).filter(|k| !k.is_empty()) {
        if is_reserved(key) {
            return Err(ApiError::InvalidRequest(RESERVED_SESSION.into()));
        }
        return Ok(SessionChoice::Explicit(key.to_string()));
    }
    let main_key = match user.map(js_trim).filter(|u| !u.is_empty()) {
        Some(user) => format!("{prefix}-user:{}", user.to_lowercase()),
        None => format!("{prefix}:{}", uuid::Uuid::new_v4()),
    };
    Ok(SessionChoice::Derived { main_key })
}

/// `subagent:`, `cron:`, `acp:` and `harness:` namespaces, bare or after
/// `agent:<id>:`, in any case.
fn is_reserved(key: &str) -> bool {
    let lower = key.to_lowercase();
    let rest = lower
        .strip_prefix("agent:")
        .and_then(|after| after.split_once(':'))
        .filter(|(id, rest)| !id.is_empty() && !rest.is_empty() && !rest.starts_with(':'))
        .map(|(_, rest)| rest);
    let reserved = |s: &str| ["subagent:", "cron:", "acp:", "harness:"].iter().any(|p| s.starts_with(p));
    reserved(&lower) || rest.is_some_and(|r| reserved(js_trim(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(s: &str) -> AgentTarget {
        AgentTarget::Named(s.into())
    }

    #[test]
    fn every_model_form() {
        for (model, want) in [
            (None, AgentTarget::Default),
            (Some(""), AgentTarget::Default),
            (Some("openclaw"), AgentTarget::Default),
            (Some("OpenClaw"), AgentTarget::Default),
            (Some("openclaw/default"), AgentTarget::Default),
            (Some("openclaw/main"), named("main")),
            (Some("openclaw:main"), named("main")),
            (Some("OPENCLAW/Ops"), named("ops")),
            (Some("agent:main"), named("main")),
            (Some("Agent:Main"), named("main")),
            (Some("openclaw:default"), named("default")),
        ] {
            assert_eq!(agent_target(None, model).unwrap(), want, "{model:?}");
        }
        for bad in ["gpt-4o", "openclaw/", "openclaw/-x", "openclaw/a b", "agent:", "agent:a:b", "claw", "openclaw/é"]
        {
            assert_eq!(
                agent_target(None, Some(bad)).unwrap_err(),
                ApiError::InvalidRequest(INVALID_MODEL.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn invalid_model_beats_header_and_header_beats_model() {
        assert_eq!(
            agent_target(Some("main"), Some("gpt-4o")).unwrap_err(),
            ApiError::InvalidRequest(INVALID_MODEL.into())
        );
        assert_eq!(agent_target(Some("Ops"), Some("openclaw/main")).unwrap(), named("ops"));
        assert_eq!(agent_target(Some(" a b "), None).unwrap_err(), unknown_agent("a b"));
        assert_eq!(agent_target(Some("  "), Some("openclaw:x")).unwrap(), named("x"));
    }

    #[test]
    fn model_overrides() {
        let parsed = |h: &str| model_override(Some(h)).map(|o| o.map(|o| (o.provider, o.model)));
        assert_eq!(parsed("fake/other").unwrap(), Some((Some("fake".into()), "other".into())));
        assert_eq!(parsed(" fake-model ").unwrap(), Some((None, "fake-model".into())));
        assert_eq!(parsed("a/b/c").unwrap(), Some((Some("a".into()), "b/c".into())));
        assert_eq!(parsed("  ").unwrap(), None);
        for bad in ["/x", "a/", " / "] {
            assert_eq!(parsed(bad).unwrap_err().message(), INVALID_MODEL_OVERRIDE, "{bad}");
        }
    }

    #[test]
    fn session_keys() {
        assert_eq!(session_choice("openai", Some(" k "), Some("u")).unwrap(), SessionChoice::Explicit("k".into()));
        assert_eq!(session_choice("openai", None, Some("Alice")).unwrap().key("main"), "agent:main:openai-user:alice");
        assert_eq!(
            session_choice("openai", None, Some("conv:ref-1")).unwrap().key("main"),
            "agent:main:openai-user:conv:ref-1"
        );
        let a = session_choice("openai", None, None).unwrap().key("main");
        let b = session_choice("openai", None, Some("  ")).unwrap().key("main");
        assert!(a.starts_with("agent:main:openai:") && a.len() == "agent:main:openai:".len() + 36, "{a}");
        assert_ne!(a, b, "a fresh session every call");
        for reserved in
            ["subagent:x", "cron:x", "acp:x", "agent:main:subagent:x", "CRON:x", "Agent:Main:Cron:job", "harness:x"]
        {
            assert_eq!(
                session_choice("openai", Some(reserved), None).unwrap_err(),
                ApiError::InvalidRequest(RESERVED_SESSION.into()),
                "{reserved}"
            );
        }
        for fine in ["cron", "my-cron:x", "agent:main:k"] {
            assert!(session_choice("openai", Some(fine), None).is_ok(), "{fine}");
        }
    }
}
