//! The `connect` handshake on an open socket: wait for the gateway's
//! `connect.challenge`, send `connect` (with the device block signed over
//! the challenge nonce when clawbridge has an identity), and decode
//! `hello-ok` or the refusal. Keeps the device token `hello-ok` issues.
//! The caller bounds the whole exchange with the handshake timeout.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use super::connection::Ws;
use super::device::{Claims, DeviceAuth};
use super::frames::{self, ConnectArgs, ConnectRefusal, HelloOk, InFrame, SecretKind};
use super::readiness::{NotReady, Pairing, ServerInfo};
use super::Credentials;

/// How `connect` words a refusal by the gateway.
pub(super) const REFUSED: &str = "gateway refused connect";

/// How long to wait for `connect.challenge` before sending `connect`
/// without a device block (every gateway in use sends it at once).
const CHALLENGE_WAIT: Duration = Duration::from_secs(3);

/// What a successful handshake yields.
pub(super) struct Hello {
    pub(super) tick_ms: u64,
    pub(super) max_payload: Option<usize>,
    pub(super) default_agent: Arc<str>,
    pub(super) server: ServerInfo,
    /// The gateway issued (or re-issued) a device token on this connect.
    pub(super) paired: bool,
}

#[derive(Deserialize)]
struct Challenge {
    #[serde(default)]
    nonce: Option<String>,
}

/// Runs the handshake on `ws`.
pub(super) async fn handshake(
    ws: &mut Ws,
    creds: &Credentials,
    device: Option<&Arc<DeviceAuth>>,
) -> Result<Hello, NotReady> {
    let nonce = match device {
        Some(_) => wait_challenge(ws).await?,
        None => None,
    };
    let connect_id = format!("connect-{}", uuid::Uuid::new_v4());
    let instance = uuid::Uuid::new_v4().to_string();
    // As the gateway's own client does: a configured shared secret is what
    // authenticates; the stored device token only when there is none.
    let stored = device.and_then(|d| d.token());
    let device_token = match creds.kind {
        SecretKind::None => stored.as_ref().map(|t| t.expose()),
        SecretKind::Token | SecretKind::Password => None,
    };
    // The signed token: `auth.token ?? auth.deviceToken ?? ""`.
    let signed_token = match creds.kind {
        SecretKind::Token => creds.secret.expose(),
        _ => device_token.unwrap_or(""),
    };
    let proof = match (device, nonce.as_deref()) {
        (Some(d), Some(nonce)) => Some(d.identity().prove(&Claims {
            client_id: frames::CLIENT_ID,
            client_mode: frames::CLIENT_MODE,
            role: frames::ROLE,
            scopes: &frames::SCOPES,
            signed_at_ms: now_ms(),
            token: signed_token,
            nonce,
            platform: frames::PLATFORM,
            device_family: "",
        })),
        _ => None,
    };
    let frame = frames::connect_request_with(
        &connect_id,
        &ConnectArgs {
            secret_kind: creds.kind,
            secret: creds.secret.expose(),
            device_token,
            device: proof.as_ref(),
            instance_id: &instance,
        },
    );
    ws.send(Message::Text(frame.into())).await.map_err(|e| format!("send connect: {e}"))?;
    loop {
        let text = next_text(ws).await?;
        let Ok(frame) = serde_json::from_str::<InFrame>(&text) else {
            continue;
        };
        if frame.kind != "res" || frame.id.as_deref() != Some(connect_id.as_str()) {
            continue; // anything else before hello-ok
        }
        if frame.ok != Some(true) {
            let (why, effect) = refusal(&text, device.map(|d| d.identity().device_id()));
            apply(device, effect).await;
            return Err(why);
        }
        let hello: HelloOk = frame
            .payload
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .ok_or_else(|| "connect answer is not hello-ok".to_string())?;
        let (hello, effect) = accept(hello, device.is_some())?;
        apply(device, effect).await;
        return Ok(hello);
    }
}

/// Reads frames until `connect.challenge`; `None` if none came in time.
async fn wait_challenge(ws: &mut Ws) -> Result<Option<String>, NotReady> {
    let wait = async {
        loop {
            let text = next_text(ws).await?;
            let Ok(frame) = serde_json::from_str::<InFrame>(&text) else {
                continue;
            };
            if frame.kind == "event" && frame.event == Some("connect.challenge") {
                let nonce = frame.payload.and_then(|p| serde_json::from_str::<Challenge>(p.get()).ok()?.nonce);
                return Ok::<_, NotReady>(nonce.filter(|n| !n.trim().is_empty()));
            }
        }
    };
    match timeout(CHALLENGE_WAIT, wait).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("no connect.challenge from the gateway; connecting without a device identity");
            Ok(None)
        }
    }
}

async fn next_text(ws: &mut Ws) -> Result<String, NotReady> {
    loop {
        let msg = ws
            .next()
            .await
            .ok_or_else(|| "gateway closed the socket during the handshake".to_string())?
            .map_err(|e| format!("handshake: {e}"))?;
        match msg {
            Message::Text(t) => return Ok(t.to_string()),
            Message::Close(c) => {
                return Err(NotReady::from(format!(
                    "gateway closed the socket during the handshake: {}",
                    c.map(|c| format!("{} {}", u16::from(c.code), c.reason)).unwrap_or_default()
                )))
            }
            _ => continue,
        }
    }
}

/// What a handshake's answer asks of the device-token store.
#[derive(Debug, PartialEq)]
enum TokenEffect {
    None,
    /// `hello-ok` issued (or re-issued, or rotated) this token.
    Store(frames::Redacted),
    /// The token is dead (pairing required again, or refused).
    Clear,
}

/// Applies `effect` off the event loop (an fsync must not stall the
/// requests sharing the link's thread). Store failures are logged: the link
/// works without the file, only a restart would miss the token.
async fn apply(device: Option<&Arc<DeviceAuth>>, effect: TokenEffect) {
    let Some(d) = device else { return };
    let held = d.token();
    let work: Box<dyn FnOnce(&DeviceAuth) + Send> = match effect {
        TokenEffect::None => return,
        TokenEffect::Store(t) if held.as_ref().is_some_and(|h| h.matches(t.0.as_bytes())) => return,
        TokenEffect::Clear if held.is_none() => return,
        TokenEffect::Store(t) => Box::new(move |d: &DeviceAuth| match d.store_token(&t.0) {
            Ok(_) => tracing::info!(device_id = d.identity().device_id(), "stored the device token the gateway issued"),
            Err(e) => tracing::warn!(error = %e, "could not store the device token"),
        }),
        TokenEffect::Clear => Box::new(|d: &DeviceAuth| {
            tracing::info!(
                device_id = d.identity().device_id(),
                "forgetting the device token the gateway no longer accepts"
            );
            if let Err(e) = d.clear_token() {
                tracing::warn!(error = %e, "could not remove the device token");
            }
        }),
    };
    let d = d.clone();
    let _ = tokio::task::spawn_blocking(move || work(&d)).await;
}

/// Checks the grant; says what to keep of a device token.
fn accept(hello: HelloOk, has_device: bool) -> Result<(Hello, TokenEffect), NotReady> {
    let scopes = hello.auth.as_ref().map(|a| a.scopes.clone()).unwrap_or_default();
    if !scopes.iter().any(|s| s == frames::WRITE_SCOPE || s == frames::ADMIN_SCOPE) {
        return Err(NotReady::from(format!(
            "gateway granted scopes {scopes:?} without operator.write; clawbridge must reach the gateway over loopback, without proxy headers, or as a paired device"
        )));
    }
    let issued = hello.auth.and_then(|a| a.device_token).filter(|t| !t.0.is_empty() && has_device);
    let paired = issued.is_some();
    let effect = issued.map_or(TokenEffect::None, TokenEffect::Store);
    let server = ServerInfo {
        protocol: hello.protocol,
        version: Arc::from(hello.server.and_then(|s| s.version).unwrap_or_else(|| "unknown".into())),
    };
    let policy = hello.policy.as_ref();
    let hello = Hello {
        tick_ms: policy.and_then(|p| p.tick_interval_ms).unwrap_or(30_000),
        max_payload: policy.and_then(|p| p.max_payload).and_then(|n| usize::try_from(n).ok()).filter(|&n| n > 0),
        default_agent: Arc::from(
            hello
                .snapshot
                .and_then(|s| s.session_defaults)
                .and_then(|d| d.default_agent_id)
                .unwrap_or_else(|| "main".to_string()),
        ),
        server,
        paired,
    };
    Ok((hello, effect))
}

/// Decodes a refused `connect` into why (`own`: this device's id).
fn refusal(text: &str, own: Option<&str>) -> (NotReady, TokenEffect) {
    #[derive(Deserialize)]
    struct Res {
        #[serde(default)]
        error: Option<ConnectRefusal>,
    }
    let e = serde_json::from_str::<Res>(text).ok().and_then(|r| r.error).unwrap_or_default();
    let details = e.details.unwrap_or_default();
    let detail_code = details.code.as_deref().unwrap_or("");
    if detail_code == "PAIRING_REQUIRED" {
        // A revoked device's token is dead; approval issues a new one.
        let pairing = Pairing {
            device_id: own.map(str::to_owned).or(details.device_id).unwrap_or_default(),
            request_id: details.request_id.filter(|r| is_request_id(r)),
            reason: details.reason.filter(|r| is_request_id(r)),
        };
        return (NotReady::PairingRequired(Arc::new(pairing)), TokenEffect::Clear);
    }
    let effect = if detail_code == "AUTH_DEVICE_TOKEN_MISMATCH" { TokenEffect::Clear } else { TokenEffect::None };
    let code = if e.code.is_empty() { "?" } else { e.code.as_str() };
    let detail = if detail_code.is_empty() { String::new() } else { format!(" ({detail_code})") };
    (NotReady::Refused(Arc::from(format!("{REFUSED}: {code} {}{detail}", e.message))), effect)
}

/// `PAIRING_CONNECT_REQUEST_ID_PATTERN`: `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`,
/// so a value printed in a log or a command line cannot carry anything else.
fn is_request_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked_like_the_gateway() {
        assert!(is_request_id("4f0c9d1e-2b7a-4c55-9c0e-5f1d2b3a4c5d"));
        assert!(is_request_id("a"));
        assert!(!is_request_id(""));
        assert!(!is_request_id("-a"));
        assert!(!is_request_id("a b"));
        assert!(!is_request_id("a;rm"));
        assert!(!is_request_id(&"a".repeat(129)));
    }

    fn hello(auth: &str) -> HelloOk {
        serde_json::from_str(&format!(
            r#"{{"type":"hello-ok","protocol":3,"server":{{"version":"2026.3.31"}},"auth":{auth},"policy":{{"tickIntervalMs":15000}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn hello_ok_yields_server_info_and_the_issued_token() {
        let (h, effect) =
            accept(hello(r#"{"scopes":["operator.admin"],"deviceToken":"dt-1","role":"operator"}"#), true).unwrap();
        assert_eq!(h.server, ServerInfo { protocol: 3, version: "2026.3.31".into() });
        assert_eq!(h.tick_ms, 15_000);
        assert!(h.paired);
        assert_eq!(effect, TokenEffect::Store(frames::Redacted("dt-1".into())));
        let (h, effect) = accept(hello(r#"{"scopes":["operator.write"]}"#), true).unwrap();
        assert!(!h.paired, "loopback: no pairing, no token");
        assert_eq!(effect, TokenEffect::None);
        let err = accept(hello(r#"{"scopes":[],"deviceToken":"dt-1"}"#), true).err().unwrap();
        assert!(err.to_string().contains("without operator.write"), "{err}");
        assert!(!format!("{:?}", hello(r#"{"scopes":[],"deviceToken":"dt-secret"}"#)).contains("dt-secret"));
    }

    #[test]
    fn pairing_refusal_is_typed() {
        let text = r#"{"type":"res","id":"c","ok":false,"error":{"code":"NOT_PAIRED","message":"pairing required: device is not approved yet","details":{"code":"PAIRING_REQUIRED","reason":"not-paired","requestId":"r-1","deviceId":"dev"}}}"#;
        let (why, effect) = refusal(text, None);
        assert_eq!(effect, TokenEffect::Clear, "a token of a device to pair again is dead");
        match why {
            NotReady::PairingRequired(p) => {
                assert_eq!(p.device_id, "dev");
                assert_eq!(p.request_id.as_deref(), Some("r-1"));
                assert_eq!(p.reason.as_deref(), Some("not-paired"));
            }
            other => panic!("{other:?}"),
        }
        let text = r#"{"type":"res","id":"c","ok":false,"error":{"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch","details":{"code":"AUTH_TOKEN_MISMATCH"}}}"#;
        let (r, effect) = refusal(text, None);
        assert_eq!(effect, TokenEffect::None);
        assert!(r.rereads());
        assert_eq!(
            r.to_string(),
            "gateway refused connect: INVALID_REQUEST unauthorized: gateway token mismatch (AUTH_TOKEN_MISMATCH)"
        );
    }
}
