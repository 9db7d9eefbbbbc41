//! `GET /v1/models` and `GET /v1/models/{id}`, as the built-in answers them
//! (`models-http` in 2026.9.6): the agent targets `openclaw`,
//! `openclaw/default` and `openclaw/<id>` per configured agent, read from
//! the gateway's native `agents.list`.

use std::time::Duration;

use pingora::protocols::http::ServerSession as Session;
use serde::{Deserialize, Serialize};

use super::{io, route, Api, ApiLog};
use crate::error::ApiError;
use crate::gateway::CallError;

/// How long `agents.list` may take before the request gets 503.
const LIST_WAIT: Duration = Duration::from_secs(10);
const PREFIX: &str = "/v1/models";

/// The part of the `agents.list` answer the list is built from.
#[derive(Debug, Deserialize)]
struct AgentsList {
    #[serde(default)]
    agents: Vec<AgentEntry>,
}

#[derive(Debug, Deserialize)]
struct AgentEntry {
    id: String,
}

#[derive(Debug, Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    permission: [(); 0],
}

impl<'a> Model<'a> {
    fn new(id: &'a str) -> Self {
        Model { id, object: "model", created: 0, owned_by: "openclaw", permission: [] }
    }
}

#[derive(Debug, Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

/// Serves a models request after the prelude.
pub async fn handle(api: &Api, session: &mut Session, log: &mut ApiLog) -> Result<(), ApiError> {
    let path = crate::ingress::path::routing_path(session.req_header().raw_path()).unwrap_or_default();
    let detail = path.strip_prefix(PREFIX).and_then(|rest| rest.strip_prefix('/')).map(str::to_string);
    let agents = agent_ids(api).await?;
    let ids = model_ids(&agents);
    let body = match detail {
        None => serde_json::to_vec(&List { object: "list", data: ids.iter().map(|id| Model::new(id)).collect() }),
        Some(encoded) => {
            let id = lookup(&encoded, &ids, &agents)?;
            serde_json::to_vec(&Model::new(&id))
        }
    }
    .expect("models serialise");
    log.status = 200;
    log.outcome = "ok";
    io::write_json(session, body, api.limits.keepalive_timeout).await.map_err(|_| ApiError::ClientGone)
}

/// The configured agents, in the gateway's order.
async fn agent_ids(api: &Api) -> Result<Vec<String>, ApiError> {
    let list: AgentsList =
        api.gateway.call("agents.list", &serde_json::json!({}), LIST_WAIT).await.map_err(|e| match e {
            CallError::Gateway(e) => ApiError::Gateway { detail: format!("agents.list: {} {}", e.code, e.message) },
            e => ApiError::GatewayUnavailable { reason: e.to_string() },
        })?;
    Ok(list.agents.into_iter().map(|a| a.id).collect())
}

/// `openclaw`, `openclaw/default`, then one id per agent, without repeats.
fn model_ids(agents: &[String]) -> Vec<String> {
    let mut ids = vec!["openclaw".to_string(), "openclaw/default".to_string()];
    for id in agents {
        let id = format!("openclaw/{id}");
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The built-in's detail checks, in its order.
fn lookup(encoded: &str, ids: &[String], agents: &[String]) -> Result<String, ApiError> {
    if encoded.is_empty() {
        return Err(ApiError::InvalidRequest("Missing model id.".into()));
    }
    let Some(id) = decode_uri_component(encoded) else {
        return Err(ApiError::InvalidRequest("Invalid model id encoding.".into()));
    };
    if !route::is_agent_model(route::js_trim(&id)) {
        return Err(ApiError::InvalidRequest("Invalid model id.".into()));
    }
    let not_found = || ApiError::ModelNotFound(format!("Model '{id}' not found."));
    let normalized = route::js_trim(&id).to_lowercase();
    if normalized != "openclaw" && normalized != "openclaw/default" {
        let agent = route::agent_suffix(route::js_trim(&id)).map(str::to_lowercase);
        if !agent.is_some_and(|a| agents.contains(&a)) {
            return Err(not_found());
        }
    }
    if !ids.contains(&id) {
        return Err(not_found());
    }
    Ok(id)
}

/// JavaScript's `decodeURIComponent`: `None` where it throws (a `%` not
/// followed by two hex digits, or bytes that are not UTF-8).
fn decode_uri_component(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents() -> Vec<String> {
        vec!["main".into(), "ops".into()]
    }

    fn detail(encoded: &str) -> Result<String, String> {
        let agents = agents();
        lookup(encoded, &model_ids(&agents), &agents).map_err(|e| format!("{} {}", e.status(), e.message()))
    }

    #[test]
    fn list_ids_in_the_gateways_order() {
        assert_eq!(model_ids(&agents()), ["openclaw", "openclaw/default", "openclaw/main", "openclaw/ops"]);
        let body = serde_json::to_string(&List { object: "list", data: vec![Model::new("openclaw")] }).unwrap();
        assert_eq!(
            body,
            r#"{"object":"list","data":[{"id":"openclaw","object":"model","created":0,"owned_by":"openclaw","permission":[]}]}"#
        );
    }

    #[test]
    fn detail_checks_in_the_builtins_order() {
        assert_eq!(detail("openclaw%2Fmain").unwrap(), "openclaw/main");
        assert_eq!(detail("openclaw").unwrap(), "openclaw");
        assert_eq!(detail("openclaw%2Fdefault").unwrap(), "openclaw/default");
        assert_eq!(detail(""), Err("400 Missing model id.".into()));
        assert_eq!(detail("%ZZ"), Err("400 Invalid model id encoding.".into()));
        assert_eq!(detail("%C3"), Err("400 Invalid model id encoding.".into()));
        assert_eq!(detail("gpt-4o"), Err("400 Invalid model id.".into()));
        assert_eq!(detail("openclaw:main"), Err("404 Model 'openclaw:main' not found.".into()));
        assert_eq!(detail("openclaw%2Fnosuch"), Err("404 Model 'openclaw/nosuch' not found.".into()));
        assert_eq!(detail("OpenClaw"), Err("404 Model 'OpenClaw' not found.".into()), "matched exactly");
        assert_eq!(
            detail("%20openclaw"),
            Err("404 Model ' openclaw' not found.".into()),
            "trimmed for the syntax check only"
        );
    }
}
