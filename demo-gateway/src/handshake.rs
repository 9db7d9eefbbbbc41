//! Pure evaluation of a `connect` request: schema checks, protocol negotiation, auth and the scope-clearing rule,
//! with the error texts and close codes of `ws-matrix/*.jsonl` and `ws-handshake-bad-token.jsonl`.

use crate::behaviour::HandshakeMode;
use crate::protocol as p;
use serde_json::Value;

/// Facts about the upgrade request and the gateway needed to judge `connect`.
#[derive(Debug, Clone)]
pub struct ConnectCtx<'a> {
    pub secret: Option<&'a str>,
    pub password_mode: bool,
    /// The upgrade request had an `Origin` header.
    pub has_origin: bool,
    /// The upgrade request had `X-Forwarded-For`, `X-Real-IP` or `Forwarded`.
    pub has_proxy_headers: bool,
    pub mode: HandshakeMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOutcome {
    Accept {
        scopes: Vec<String>,
        auth_method: &'static str,
    },
    Reject {
        /// `ErrorShape` JSON.
        error: String,
        close_code: u16,
        close_reason: String,
        /// Apply the configured auth-failure delay before answering.
        auth_failure: bool,
    },
}

fn reject(error: String, message: &str, close_code: u16) -> ConnectOutcome {
    ConnectOutcome::Reject { error, close_code, close_reason: message.to_string(), auth_failure: false }
}

fn invalid(detail: &str) -> ConnectOutcome {
    let msg = format!("invalid connect params: {detail}");
    reject(p::err_invalid_request(&msg), &msg, 1008)
}

fn check_str(obj: &serde_json::Map<String, Value>, key: &str, path: &str) -> Result<(), ConnectOutcome> {
    match obj.get(key) {
        None => Ok(()),
        Some(Value::String(s)) if s.is_empty() => {
            Err(invalid(&format!("at {path}/{key}: must not have fewer than 1 characters")))
        }
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err(invalid(&format!("at {path}/{key}: must be string"))),
    }
}

fn check_protocol(obj: &serde_json::Map<String, Value>, key: &str) -> Result<i64, ConnectOutcome> {
    match obj.get(key) {
        None => Err(invalid(&format!("at root: must have required property '{key}'"))),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 1 => Ok(n),
            Some(_) => Err(invalid(&format!("at /{key}: must be >= 1"))),
            None => Err(invalid(&format!("at /{key}: must be integer"))),
        },
    }
}

/// Judge a `connect` request's params.
pub fn evaluate_connect(params: Option<&Value>, ctx: &ConnectCtx<'_>) -> ConnectOutcome {
    match evaluate_inner(params, ctx) {
        Ok(o) | Err(o) => o,
    }
}

fn evaluate_inner(params: Option<&Value>, ctx: &ConnectCtx<'_>) -> Result<ConnectOutcome, ConnectOutcome> {
    let obj = match params {
        Some(Value::Object(o)) => o,
        _ => return Err(invalid("at root: must be object")),
    };
    for k in ["minProtocol", "maxProtocol", "client"] {
        if !obj.contains_key(k) {
            return Err(invalid(&format!("at root: must have required property '{k}'")));
        }
    }
    if let Some(k) = obj.keys().find(|k| !p::CONNECT_KEYS.contains(&k.as_str())) {
        return Err(invalid(&format!("at root: unexpected property '{k}'")));
    }
    let min = check_protocol(obj, "minProtocol")?;
    let max = check_protocol(obj, "maxProtocol")?;
    let client = match obj.get("client") {
        Some(Value::Object(c)) => c,
        _ => return Err(invalid("at /client: must be object")),
    };
    for k in ["id", "version", "platform", "mode"] {
        if !client.contains_key(k) {
            return Err(invalid(&format!("at /client: must have required property '{k}'")));
        }
    }
    if let Some(k) = client.keys().find(|k| !p::CLIENT_KEYS.contains(&k.as_str())) {
        return Err(invalid(&format!("at /client: unexpected property '{k}'")));
    }
    for k in p::CLIENT_KEYS {
        check_str(client, k, "/client")?;
    }
    let id = client["id"].as_str().unwrap_or_default();
    let mode = client["mode"].as_str().unwrap_or_default();
    if !p::CLIENT_IDS.contains(&id) {
        return Err(invalid("at /client/id: must be equal to one of the allowed values"));
    }
    if !p::CLIENT_MODES.contains(&mode) {
        return Err(invalid("at /client/mode: must be equal to one of the allowed values"));
    }
    let scopes: Vec<String> = match obj.get("scopes") {
        None => Vec::new(),
        Some(Value::Array(a)) => {
            let mut v = Vec::with_capacity(a.len());
            for (i, s) in a.iter().enumerate() {
                match s.as_str() {
                    Some(s) => v.push(s.to_string()),
                    None => return Err(invalid(&format!("at /scopes/{i}: must be string"))),
                }
            }
            v
        }
        Some(_) => return Err(invalid("at /scopes: must be array")),
    };
    let role = match obj.get("role") {
        None => "operator",
        Some(Value::String(r)) if r == "operator" || r == "node" => r.as_str(),
        Some(_) => return Err(reject(p::err_invalid_request(p::MSG_INVALID_ROLE), p::MSG_INVALID_ROLE, 1008)),
    };
    if !(min <= p::PROTOCOL_VERSION as i64 && p::PROTOCOL_VERSION as i64 <= max) {
        return Err(reject(p::err_protocol_mismatch(min, max), p::MSG_PROTOCOL_MISMATCH, 1002));
    }
    let device_required = || reject(p::err_device_required(), p::MSG_DEVICE_REQUIRED, 1008);
    if role == "node" {
        return Err(device_required());
    }
    if matches!(id, "webchat" | "webchat-ui") || mode == "webchat" {
        return Err(reject(p::err_control_ui_origin(), p::MSG_CONTROL_UI_ORIGIN, 1008));
    }
    if matches!(id, "openclaw-control-ui" | "openclaw-tui") {
        return Err(reject(p::err_control_ui_device(), p::MSG_CONTROL_UI_DEVICE, 1008));
    }
    let auth = obj.get("auth").and_then(Value::as_object);
    let field = |k: &str| auth.and_then(|a| a.get(k)).and_then(Value::as_str).filter(|s| !s.is_empty());
    let presented = field("token").or_else(|| field("password"));
    let auth_method: &'static str = match (ctx.secret, ctx.password_mode) {
        (None, _) => "none",
        (Some(_), true) => "password",
        (Some(_), false) => "token",
    };
    let mismatch = || {
        let err = p::err_auth_mismatch(ctx.password_mode);
        let msg = if ctx.password_mode { p::MSG_PASSWORD_MISMATCH } else { p::MSG_TOKEN_MISMATCH };
        ConnectOutcome::Reject { error: err, close_code: 1008, close_reason: msg.to_string(), auth_failure: true }
    };
    if ctx.mode == HandshakeMode::RejectToken {
        return Err(mismatch());
    }
    if let Some(secret) = ctx.secret {
        match presented {
            None => return Err(device_required()),
            Some(p) if !constant_time_eq(p.as_bytes(), secret.as_bytes()) => return Err(mismatch()),
            Some(_) => {}
        }
    }
    let trusted_client = (id == "gateway-client" && mode == "backend") || (id == "cli" && mode == "cli");
    let keep = trusted_client && !ctx.has_origin && !ctx.has_proxy_headers && ctx.mode != HandshakeMode::ClearScopes;
    Ok(ConnectOutcome::Accept { scopes: if keep { scopes } else { Vec::new() }, auth_method })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Scope checks used after the handshake (`operator.admin` implies everything).
pub fn has_scope(scopes: &[String], want: &str) -> bool {
    scopes.iter().any(|s| s == want || s == "operator.admin")
        || (want == "operator.read" && scopes.iter().any(|s| s == "operator.write"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> ConnectCtx<'static> {
        ConnectCtx {
            secret: Some("test-token"),
            password_mode: false,
            has_origin: false,
            has_proxy_headers: false,
            mode: HandshakeMode::Normal,
        }
    }

    fn params() -> Value {
        json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"gateway-client","version":"0.1.0","platform":"linux","mode":"backend"},"role":"operator","scopes":["operator.read","operator.write"],"auth":{"token":"test-token"}})
    }

    fn scopes_of(o: ConnectOutcome) -> Vec<String> {
        match o {
            ConnectOutcome::Accept { scopes, .. } => scopes,
            r => panic!("rejected: {r:?}"),
        }
    }

    fn reject_of(o: ConnectOutcome) -> (String, u16, String) {
        match o {
            ConnectOutcome::Reject { error, close_code, close_reason, .. } => (error, close_code, close_reason),
            a => panic!("accepted: {a:?}"),
        }
    }

    #[test]
    fn backend_keeps_scopes_others_lose_them() {
        assert_eq!(scopes_of(evaluate_connect(Some(&params()), &ctx())), vec!["operator.read", "operator.write"]);
        let mut c = ctx();
        c.has_origin = true;
        assert!(scopes_of(evaluate_connect(Some(&params()), &c)).is_empty());
        let mut c = ctx();
        c.has_proxy_headers = true;
        assert!(scopes_of(evaluate_connect(Some(&params()), &c)).is_empty());
        let mut p = params();
        p["client"]["mode"] = json!("cli");
        assert!(scopes_of(evaluate_connect(Some(&p), &ctx())).is_empty());
        p["client"]["id"] = json!("cli");
        assert_eq!(scopes_of(evaluate_connect(Some(&p), &ctx())).len(), 2);
        let mut p = params();
        p["auth"] = json!({"password":"test-token"});
        assert_eq!(scopes_of(evaluate_connect(Some(&p), &ctx())).len(), 2);
    }

    #[test]
    fn matrix_errors() {
        let mut p = params();
        p["auth"]["token"] = json!("wrong-token");
        let (e, code, reason) = reject_of(evaluate_connect(Some(&p), &ctx()));
        assert_eq!(
            e,
            r#"{"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (provide gateway auth token)","details":{"code":"AUTH_TOKEN_MISMATCH","authReason":"token_mismatch","canRetryWithDeviceToken":false,"recommendedNextStep":"update_auth_credentials"}}"#
        );
        assert_eq!((code, reason.as_str()), (1008, p::MSG_TOKEN_MISMATCH));

        let mut p = params();
        p.as_object_mut().unwrap().remove("auth");
        let (e, code, _) = reject_of(evaluate_connect(Some(&p), &ctx()));
        assert_eq!(
            e,
            r#"{"code":"NOT_PAIRED","message":"device identity required","details":{"code":"DEVICE_IDENTITY_REQUIRED"}}"#
        );
        assert_eq!(code, 1008);

        let mut p = params();
        p["minProtocol"] = json!(3);
        p["maxProtocol"] = json!(3);
        let (e, code, reason) = reject_of(evaluate_connect(Some(&p), &ctx()));
        assert_eq!(
            e,
            r#"{"code":"INVALID_REQUEST","message":"protocol mismatch","details":{"code":"PROTOCOL_MISMATCH","clientMinProtocol":3,"clientMaxProtocol":3,"expectedProtocol":4,"minimumProbeProtocol":3}}"#
        );
        assert_eq!((code, reason.as_str()), (1002, "protocol mismatch"));

        let mut p = params();
        p["foo"] = json!(1);
        let (e, code, _) = reject_of(evaluate_connect(Some(&p), &ctx()));
        assert_eq!(
            e,
            r#"{"code":"INVALID_REQUEST","message":"invalid connect params: at root: unexpected property 'foo'"}"#
        );
        assert_eq!(code, 1008);

        let mut p = params();
        p["client"].as_object_mut().unwrap().remove("version");
        let (e, _, _) = reject_of(evaluate_connect(Some(&p), &ctx()));
        assert!(e.contains(r#"invalid connect params: at /client: must have required property 'version'"#));

        let mut p = params();
        p["client"]["id"] = json!("my-proxy");
        let (e, _, _) = reject_of(evaluate_connect(Some(&p), &ctx()));
        assert!(e.contains("at /client/id: must be equal to one of the allowed values"));

        let mut p = params();
        p["role"] = json!("admin");
        let (e, _, r) = reject_of(evaluate_connect(Some(&p), &ctx()));
        assert_eq!(e, r#"{"code":"INVALID_REQUEST","message":"invalid role"}"#);
        assert_eq!(r, "invalid role");

        let mut p = params();
        p["minProtocol"] = json!(1);
        p["maxProtocol"] = json!(9);
        assert_eq!(scopes_of(evaluate_connect(Some(&p), &ctx())).len(), 2);
    }

    #[test]
    fn scope_implications() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_scope(&s(&["operator.admin"]), "operator.write"));
        assert!(!has_scope(&s(&["operator.read"]), "operator.write"));
        assert!(has_scope(&s(&["operator.read"]), "operator.read"));
        assert!(!has_scope(&[], "operator.read"));
    }
}
