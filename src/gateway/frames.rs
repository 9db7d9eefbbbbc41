//! Wire frames of the gateway's native WebSocket protocol: what clawbridge sends
//! (`connect`, `chat.abort` and call requests; `agent` is `run_request.rs`) and the borrowed views it decodes
//! (responses, `agent` events). Pure serde, no IO; shapes follow
//! `../shared/spec/captures/ws-*.jsonl`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Protocol range sent in `connect`: 2026.5.12+ speaks 4, older gateways 3.
pub const MIN_PROTOCOL: u32 = 3;
pub const MAX_PROTOCOL: u32 = 4;

/// The scope an `agent` run needs; `hello-ok` must grant it.
pub const WRITE_SCOPE: &str = "operator.write";
pub const READ_SCOPE: &str = "operator.read";
/// The built-in endpoint's shared-secret callers hold the full operator set,
/// and their turns run as owner turns (`senderIsOwner`); over the native
/// protocol a run is an owner turn when the connection holds admin scope.
/// The shared secret already grants it to any HTTP caller.
pub const ADMIN_SCOPE: &str = "operator.admin";

/// Which shared secret the connection presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    Token,
    Password,
    /// `gateway.auth.mode: "none"`: no `auth` block at all.
    None,
}

/// Who clawbridge says it is in `connect`; the device signature binds these.
pub const CLIENT_ID: &str = "gateway-client";
pub const CLIENT_MODE: &str = "backend";
pub const PLATFORM: &str = "linux";
pub const ROLE: &str = "operator";
/// The scopes asked for, in the order sent (and signed).
pub const SCOPES: [&str; 3] = [ADMIN_SCOPE, READ_SCOPE, WRITE_SCOPE];

/// What one `connect` carries besides the fixed client description.
pub struct ConnectArgs<'a> {
    pub secret_kind: SecretKind,
    pub secret: &'a str,
    /// `auth.deviceToken`: the token the gateway issued to this device.
    pub device_token: Option<&'a str>,
    /// The signed `device` block.
    pub device: Option<&'a super::device::Proof>,
    pub instance_id: &'a str,
}

/// `{"type":"req","id":..,"method":"connect","params":{..}}` without a device.
pub fn connect_request(id: &str, secret_kind: SecretKind, secret: &str, instance_id: &str) -> String {
    connect_request_with(id, &ConnectArgs { secret_kind, secret, device_token: None, device: None, instance_id })
}

/// The `connect` request. The schema is closed (`additionalProperties:false`),
/// so only known keys are sent.
pub fn connect_request_with(id: &str, args: &ConnectArgs<'_>) -> String {
    #[derive(Serialize)]
    struct Client<'a> {
        id: &'a str,
        version: &'a str,
        platform: &'a str,
        mode: &'a str,
        #[serde(rename = "displayName")]
        display_name: &'a str,
        #[serde(rename = "instanceId")]
        instance_id: &'a str,
    }
    #[derive(Serialize)]
    struct Auth<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        password: Option<&'a str>,
        #[serde(rename = "deviceToken", skip_serializing_if = "Option::is_none")]
        device_token: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Params<'a> {
        #[serde(rename = "minProtocol")]
        min_protocol: u32,
        #[serde(rename = "maxProtocol")]
        max_protocol: u32,
        client: Client<'a>,
        role: &'a str,
        scopes: [&'a str; 3],
        caps: [&'a str; 0],
        #[serde(skip_serializing_if = "Option::is_none")]
        auth: Option<Auth<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        device: Option<&'a super::device::Proof>,
        #[serde(rename = "userAgent")]
        user_agent: &'a str,
    }
    let (token, password) = match args.secret_kind {
        SecretKind::Token => (Some(args.secret), None),
        SecretKind::Password => (None, Some(args.secret)),
        SecretKind::None => (None, None),
    };
    let auth = (token.is_some() || password.is_some() || args.device_token.is_some()).then_some(Auth {
        token,
        password,
        device_token: args.device_token,
    });
    let params = Params {
        min_protocol: MIN_PROTOCOL,
        max_protocol: MAX_PROTOCOL,
        client: Client {
            id: CLIENT_ID,
            version: env!("CARGO_PKG_VERSION"),
            platform: PLATFORM,
            mode: CLIENT_MODE,
            display_name: "clawbridge",
            instance_id: args.instance_id,
        },
        role: ROLE,
        scopes: SCOPES,
        caps: [],
        auth,
        device: args.device,
        user_agent: concat!("clawbridge/", env!("CARGO_PKG_VERSION")),
    };
    request(id, "connect", &params)
}

/// `chat.abort {sessionKey, runId}`: aborts one run (works for `agent` runs).
pub fn abort_request(id: &str, session_key: &str, run_id: &str) -> String {
    #[derive(Serialize)]
    struct Params<'a> {
        #[serde(rename = "sessionKey")]
        session_key: &'a str,
        #[serde(rename = "runId")]
        run_id: &'a str,
    }
    request(id, "chat.abort", &Params { session_key, run_id })
}

pub(super) fn request<P: Serialize>(id: &str, method: &str, params: &P) -> String {
    #[derive(Serialize)]
    struct Req<'a, P> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: &'a str,
        method: &'a str,
        params: &'a P,
    }
    serde_json::to_string(&Req { kind: "req", id, method, params })
        .expect("request frames contain only strings and numbers")
}

/// A frame decoded shallowly (the handshake); payloads stay raw until needed.
/// The link routes frames with `decode::decode`.
#[derive(Debug, Deserialize)]
pub struct InFrame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: &'a str,
    #[serde(borrow, default)]
    pub id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    pub event: Option<&'a str>,
    #[serde(default)]
    pub ok: Option<bool>,
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
    #[serde(default)]
    pub error: Option<ErrorShape>,
}

/// `ErrorShape` = `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct ErrorShape {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// `hello-ok` payload: only what clawbridge checks.
#[derive(Debug, Deserialize)]
pub struct HelloOk {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub protocol: u32,
    #[serde(default)]
    pub server: Option<ServerHello>,
    #[serde(default)]
    pub auth: Option<HelloAuth>,
    #[serde(default)]
    pub policy: Option<Policy>,
    #[serde(default)]
    pub snapshot: Option<Snapshot>,
}

#[derive(Debug, Deserialize)]
pub struct ServerHello {
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct HelloAuth {
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Issued to a paired device; kept and sent on reconnect.
    #[serde(rename = "deviceToken", default)]
    pub device_token: Option<Redacted>,
}

/// A string from the gateway that must never be printed (a device token).
#[derive(Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("*****")
    }
}

/// A refused `connect`: `error {code, message, details {code, reason,
/// requestId, deviceId}}` (`connect-error-details.ts`).
#[derive(Debug, Default, Deserialize)]
pub struct ConnectRefusal {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub details: Option<RefusalDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RefusalDetails {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(rename = "requestId", default)]
    pub request_id: Option<String>,
    #[serde(rename = "deviceId", default)]
    pub device_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Policy {
    #[serde(rename = "tickIntervalMs", default)]
    pub tick_interval_ms: Option<u64>,
    #[serde(rename = "maxPayload", default)]
    pub max_payload: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "sessionDefaults", default)]
    pub session_defaults: Option<SessionDefaults>,
}

#[derive(Debug, Deserialize)]
pub struct SessionDefaults {
    #[serde(rename = "defaultAgentId", default)]
    pub default_agent_id: Option<String>,
}

/// `data` of an `assistant` stream event. `delta` is incremental, `text` the
/// cumulative snapshot (absent in delta-only runtimes), `replace` resets.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct AssistantData {
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub delta: Option<String>,
    #[serde(rename = "itemId", default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub replace: bool,
    /// Provisional text the gateway may still revise; held back until the end.
    #[serde(default)]
    pub replaceable: bool,
}

/// `data` of a `lifecycle` stream event.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct LifecycleData {
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub aborted: Option<bool>,
    #[serde(rename = "errorObservation", default)]
    pub error_observation: Option<ErrorObservation>,
    #[serde(rename = "stopReason", default)]
    pub stop_reason: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
pub struct ErrorObservation {
    #[serde(rename = "failoverReason", default)]
    pub failover_reason: Option<String>,
}

/// Payload of an `agent` response. The first one is `status:"accepted"`
/// (or `"in_flight"`); the second, final one carries `result` or an error.
#[derive(Debug, Deserialize)]
pub struct AgentResPayload {
    #[serde(default)]
    pub status: String,
    #[serde(rename = "stopReason", default)]
    pub stop_reason: Option<String>,
    /// The canonical session key (accepted `res`).
    #[serde(rename = "sessionKey", default)]
    pub session_key: Option<String>,
    #[serde(rename = "agentId", default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub result: Option<RunResult>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RunResult {
    #[serde(default)]
    pub payloads: Vec<ResultPayload>,
    #[serde(default)]
    pub meta: Option<RunMeta>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResultPayload {
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RunMeta {
    #[serde(rename = "agentMeta", default)]
    pub agent_meta: Option<AgentMeta>,
    #[serde(rename = "stopReason", default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub aborted: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AgentMeta {
    #[serde(default)]
    pub usage: Option<RunUsage>,
    #[serde(rename = "lastCallUsage", default)]
    pub last_call_usage: Option<RunUsage>,
}

impl AgentMeta {
    /// The run's aggregate usage, or the last call's when the aggregate is
    /// all zero (`resolveAgentRunUsage`).
    pub fn usage(self) -> Option<RunUsage> {
        let nonzero = |u: &RunUsage| u.input + u.output + u.cache_read + u.cache_write + u.total > 0;
        match (self.usage, self.last_call_usage) {
            (Some(u), _) if nonzero(&u) => Some(u),
            (_, Some(l)) if nonzero(&l) => Some(l),
            (u, l) => u.or(l),
        }
    }
}

/// `meta.agentMeta.usage` = `{input, output, cacheRead, cacheWrite, total}`.
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq)]
pub struct RunUsage {
    #[serde(rename = "reasoningTokens", default)]
    pub reasoning: Option<u64>,
    #[serde(default)]
    pub input: u64,
    #[serde(default)]
    pub output: u64,
    #[serde(rename = "cacheRead", default)]
    pub cache_read: u64,
    #[serde(rename = "cacheWrite", default)]
    pub cache_write: u64,
    #[serde(default)]
    pub total: u64,
}

/// The first frame of a capture (`tests/fixtures/ws-*.jsonl`) that `pred`
/// accepts, as the gateway wrote it (key order kept).
#[cfg(test)]
pub(crate) fn captured_text(file: &str, pred: impl Fn(&serde_json::Value) -> bool) -> String {
    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        frame: Option<&'a RawValue>,
    }
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok()?.frame)
        .find(|f| serde_json::from_str::<serde_json::Value>(f.get()).is_ok_and(|v| pred(&v)))
        .map(|f| f.get().to_string())
        .unwrap_or_else(|| panic!("no matching frame in {file}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn captured(file: &str, pred: impl Fn(&Value) -> bool) -> Value {
        serde_json::from_str(&captured_text(file, pred)).unwrap()
    }

    #[test]
    fn connect_frame_matches_the_backend_client_shape() {
        let v: Value = serde_json::from_str(&connect_request("c1", SecretKind::Token, "tok", "i1")).unwrap();
        assert_eq!(v["type"], "req");
        assert_eq!(v["method"], "connect");
        let p = &v["params"];
        assert_eq!(p["client"]["id"], "gateway-client");
        assert_eq!(p["client"]["mode"], "backend");
        assert_eq!(p["scopes"], json!(["operator.admin", "operator.read", "operator.write"]));
        assert_eq!(p["auth"], json!({"token": "tok"}));
        assert_eq!(p["minProtocol"], 3);
        assert_eq!(p["maxProtocol"], 4);
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        for k in keys {
            assert!(
                ["minProtocol", "maxProtocol", "client", "role", "scopes", "caps", "auth", "userAgent"]
                    .contains(&k.as_str()),
                "unexpected connect key {k}"
            );
        }
        let pw: Value = serde_json::from_str(&connect_request("c1", SecretKind::Password, "pw", "i1")).unwrap();
        assert_eq!(pw["params"]["auth"], json!({"password": "pw"}));
        let none: Value = serde_json::from_str(&connect_request("c1", SecretKind::None, "", "i1")).unwrap();
        assert!(none["params"].get("auth").is_none());
    }

    #[test]
    fn connect_frame_carries_the_device_block_and_a_device_token() {
        let proof = super::super::device::Proof {
            id: "d".into(),
            public_key: "k".into(),
            signature: "s".into(),
            signed_at: 7,
            nonce: "n".into(),
        };
        let args = ConnectArgs {
            secret_kind: SecretKind::None,
            secret: "",
            device_token: Some("dt"),
            device: Some(&proof),
            instance_id: "i1",
        };
        let v: Value = serde_json::from_str(&connect_request_with("c1", &args)).unwrap();
        assert_eq!(v["params"]["auth"], json!({"deviceToken": "dt"}));
        assert_eq!(
            v["params"]["device"],
            json!({"id": "d", "publicKey": "k", "signature": "s", "signedAt": 7, "nonce": "n"})
        );
        let args = ConnectArgs { secret_kind: SecretKind::Token, secret: "tok", device_token: None, ..args };
        let v: Value = serde_json::from_str(&connect_request_with("c1", &args)).unwrap();
        assert_eq!(v["params"]["auth"], json!({"token": "tok"}));
    }

    #[test]
    fn abort_frame() {
        let a: Value = serde_json::from_str(&abort_request("a1", "s", "r")).unwrap();
        assert_eq!(a, json!({"type":"req","id":"a1","method":"chat.abort","params":{"sessionKey":"s","runId":"r"}}));
    }

    #[test]
    fn decodes_captured_hello_ok() {
        let f = captured("ws-agent-run.jsonl", |f| f["type"] == "res" && f["payload"]["type"] == "hello-ok");
        let s = f.to_string();
        let frame: InFrame = serde_json::from_str(&s).unwrap();
        assert_eq!(frame.kind, "res");
        assert_eq!(frame.ok, Some(true));
        let hello: HelloOk = serde_json::from_str(frame.payload.unwrap().get()).unwrap();
        assert_eq!(hello.kind, "hello-ok");
        assert_eq!(hello.protocol, 4);
        assert_eq!(hello.auth.unwrap().scopes, vec!["operator.read", "operator.write"]);
        assert_eq!(hello.policy.unwrap().tick_interval_ms, Some(30000));
        let d = hello.snapshot.unwrap().session_defaults.unwrap();
        assert_eq!(d.default_agent_id.as_deref(), Some("main"));
    }

    // `agent` events are decoded by `decode.rs`, and tested there.
    #[test]
    fn decodes_captured_final_res() {
        let f = captured("ws-agent-run.jsonl", |f| f["type"] == "res" && f["payload"]["status"] == "ok");
        let s = f.to_string();
        let frame: InFrame = serde_json::from_str(&s).unwrap();
        let p: AgentResPayload = serde_json::from_str(frame.payload.unwrap().get()).unwrap();
        let result = p.result.unwrap();
        assert_eq!(result.payloads[0].text.as_deref(), Some("Hello, world!"));
        let usage = result.meta.unwrap().agent_meta.unwrap().usage().unwrap();
        assert_eq!((usage.input, usage.output, usage.total), (10, 3, 13));
    }

    #[test]
    fn decodes_captured_failures() {
        let f = captured("ws-agent-upstream-400.jsonl", |f| f["type"] == "res" && f["ok"] == false);
        let s = f.to_string();
        let frame: InFrame = serde_json::from_str(&s).unwrap();
        assert_eq!(frame.error.as_ref().unwrap().code, "UNAVAILABLE");
        let p: AgentResPayload = serde_json::from_str(frame.payload.unwrap().get()).unwrap();
        assert_eq!(p.status, "error");

        let f = captured("ws-agent-unknown-agent.jsonl", |f| f["type"] == "res" && f["ok"] == false);
        let s = f.to_string();
        let frame: InFrame = serde_json::from_str(&s).unwrap();
        assert_eq!(
            frame.error.unwrap(),
            ErrorShape {
                code: "INVALID_REQUEST".into(),
                message: "invalid agent params: unknown agent id \"nosuchagent\"".into()
            }
        );
    }
}
