//! Device pairing as a remote peer meets it (`Behaviour::require_pairing`):
//! the `device` block of `connect` is checked as the gateway's
//! `verifyGatewayConnectDeviceProof` checks it (id = SHA-256 of the key,
//! `signedAt` within 120 s, the challenge nonce, an Ed25519 signature over
//! the v3 payload); an unknown device gets `NOT_PAIRED`/`PAIRING_REQUIRED`
//! with a request id reused on retries, an approved one a device token, and
//! a revoked one has its links closed with 4001 "device removed".

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::json::Obj;
use crate::protocol::error_shape;

/// `DEVICE_SIGNATURE_SKEW_MS`.
const SKEW_MS: u64 = 120_000;

/// Approved devices, pending requests, and which connection is which device.
#[derive(Default)]
pub struct DeviceBook {
    inner: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    /// device id -> device token
    approved: HashMap<String, String>,
    /// device id -> request id
    pending: HashMap<String, String>,
    /// connection id -> device id
    conns: HashMap<u64, String>,
}

/// What `connect` gets for a device.
pub enum Verdict {
    /// Approved: the token to put in `hello-ok.auth.deviceToken`.
    Paired(String),
    /// A refusal: the `ErrorShape` JSON and the close reason (code 1008).
    Refused(String, String),
}

impl DeviceBook {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Judges a connect's `device` block against the connection's nonce.
    pub fn judge(&self, params: &Value, nonce: &str, now_ms: u64) -> Verdict {
        let device_id = match verify(params, nonce, now_ms) {
            Ok(id) => id,
            Err((code, reason, message)) => {
                let details = Obj::new().str("code", code).str("reason", reason).finish();
                return Verdict::Refused(error_shape("INVALID_REQUEST", message, Some(&details)), message.into());
            }
        };
        let mut book = self.book();
        if let Some(token) = book.approved.get(&device_id) {
            return Verdict::Paired(token.clone());
        }
        let request_id =
            book.pending.entry(device_id.clone()).or_insert_with(|| uuid::Uuid::new_v4().to_string()).clone();
        let message = "pairing required: device is not approved yet";
        let details = Obj::new()
            .str("code", "PAIRING_REQUIRED")
            .str("reason", "not-paired")
            .str("requestId", &request_id)
            .str("remediationHint", "Approve this device from the pending pairing requests.")
            .str("deviceId", &device_id)
            .finish();
        Verdict::Refused(error_shape("NOT_PAIRED", message, Some(&details)), message.into())
    }

    pub fn bind(&self, conn: u64, params: &Value) {
        if let Some(id) = params.pointer("/device/id").and_then(Value::as_str) {
            self.book().conns.insert(conn, id.to_string());
        }
    }

    pub fn unbind(&self, conn: u64) {
        self.book().conns.remove(&conn);
    }

    /// `(device id, request id)` of every pending request.
    pub fn pending(&self) -> Vec<(String, String)> {
        self.book().pending.iter().map(|(d, r)| (d.clone(), r.clone())).collect()
    }

    /// `openclaw devices approve <requestId>`; false if there is no such request.
    pub fn approve(&self, request_id: &str) -> bool {
        let mut book = self.book();
        let Some(device) = book.pending.iter().find(|(_, r)| r.as_str() == request_id).map(|(d, _)| d.clone()) else {
            return false;
        };
        book.pending.remove(&device);
        book.approved.insert(device, format!("devtok-{}", uuid::Uuid::new_v4().simple()));
        true
    }

    /// `openclaw devices revoke`: forgets the device; returns the
    /// connections to close with 4001 "device removed".
    pub fn revoke(&self, device_id: &str) -> Vec<u64> {
        let mut book = self.book();
        book.approved.remove(device_id);
        book.conns.iter().filter(|(_, d)| d.as_str() == device_id).map(|(c, _)| *c).collect()
    }
}

type Reject = (&'static str, &'static str, &'static str);

/// `verifyGatewayConnectDeviceProof` for a v3 payload; the device id.
pub fn verify(params: &Value, nonce: &str, now_ms: u64) -> Result<String, Reject> {
    const SIGNATURE: Reject = ("DEVICE_AUTH_SIGNATURE_INVALID", "device-signature", "device signature invalid");
    let d = params.get("device").ok_or(SIGNATURE)?;
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
    let id_mismatch = ("DEVICE_AUTH_DEVICE_ID_MISMATCH", "device-id-mismatch", "device identity mismatch");
    let key: [u8; 32] =
        URL_SAFE_NO_PAD.decode(s("publicKey")).ok().and_then(|k| k.try_into().ok()).ok_or(id_mismatch)?;
    if hex(&Sha256::digest(key)) != s("id") {
        return Err(id_mismatch);
    }
    let signed_at = d.get("signedAt").and_then(Value::as_u64).unwrap_or(0);
    if now_ms.abs_diff(signed_at) > SKEW_MS {
        return Err(("DEVICE_AUTH_SIGNATURE_EXPIRED", "device-signature-stale", "device signature expired"));
    }
    if s("nonce").trim().is_empty() {
        return Err(("DEVICE_AUTH_NONCE_REQUIRED", "device-nonce-missing", "device nonce required"));
    }
    if s("nonce").trim() != nonce {
        return Err(("DEVICE_AUTH_NONCE_MISMATCH", "device-nonce-mismatch", "device nonce mismatch"));
    }
    let p = |ptr: &str| params.pointer(ptr).and_then(Value::as_str).unwrap_or("");
    let scopes: Vec<&str> = params
        .get("scopes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let token = [p("/auth/token"), p("/auth/deviceToken"), p("/auth/bootstrapToken")]
        .into_iter()
        .find(|t| !t.is_empty())
        .unwrap_or("");
    let meta = |v: &str| v.trim().to_ascii_lowercase();
    let role = params.get("role").and_then(Value::as_str).unwrap_or("operator");
    let payload = [
        "v3",
        s("id"),
        p("/client/id"),
        p("/client/mode"),
        role,
        &scopes.join(","),
        &signed_at.to_string(),
        token,
        s("nonce").trim(),
        &meta(p("/client/platform")),
        &meta(p("/client/deviceFamily")),
    ]
    .join("|");
    let sig: [u8; 64] = URL_SAFE_NO_PAD.decode(s("signature")).ok().and_then(|b| b.try_into().ok()).ok_or(SIGNATURE)?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| SIGNATURE)?;
    key.verify(payload.as_bytes(), &Signature::from_bytes(&sig)).map_err(|_| SIGNATURE)?;
    Ok(s("id").to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors signed by clawbridge and accepted by the real gateway's code.
    fn vectors() -> Vec<Value> {
        let text = include_str!("../../tests/fixtures/device-auth-vector.json");
        let v: Value = serde_json::from_str(text).unwrap();
        v["vectors"].as_array().unwrap().clone()
    }

    fn params_of(v: &Value) -> Value {
        let c = &v["claims"];
        serde_json::json!({
            "client": {"id": c["clientId"], "mode": c["clientMode"], "platform": c["platform"], "deviceFamily": c["deviceFamily"]},
            "role": c["role"], "scopes": c["scopes"], "auth": {"token": c["token"]}, "device": v["device"],
        })
    }

    #[test]
    fn accepts_what_the_gateway_accepted_and_nothing_else() {
        for v in vectors() {
            let params = params_of(&v);
            let nonce = v["claims"]["nonce"].as_str().unwrap();
            let at = v["claims"]["signedAtMs"].as_u64().unwrap();
            assert_eq!(verify(&params, nonce, at + 1000).unwrap(), v["device"]["id"].as_str().unwrap());
            assert_eq!(verify(&params, "other", at).unwrap_err().0, "DEVICE_AUTH_NONCE_MISMATCH");
            assert_eq!(verify(&params, nonce, at + SKEW_MS + 1).unwrap_err().0, "DEVICE_AUTH_SIGNATURE_EXPIRED");
            let mut bad = params.clone();
            bad["scopes"] = serde_json::json!(["operator.read"]);
            assert_eq!(verify(&bad, nonce, at).unwrap_err().0, "DEVICE_AUTH_SIGNATURE_INVALID");
            let mut bad = params.clone();
            bad["device"]["id"] = serde_json::json!("0".repeat(64));
            assert_eq!(verify(&bad, nonce, at).unwrap_err().0, "DEVICE_AUTH_DEVICE_ID_MISMATCH");
        }
    }

    #[test]
    fn pending_request_is_reused_until_approved_and_revoked() {
        let v = &vectors()[0];
        let params = params_of(v);
        let nonce = v["claims"]["nonce"].as_str().unwrap();
        let at = v["claims"]["signedAtMs"].as_u64().unwrap();
        let book = DeviceBook::default();
        let Verdict::Refused(first, _) = book.judge(&params, nonce, at) else { panic!("paired unapproved") };
        let Verdict::Refused(again, _) = book.judge(&params, nonce, at) else { panic!("paired unapproved") };
        assert_eq!(first, again, "same request id on retries");
        let (device, request) = book.pending().pop().unwrap();
        assert!(first.contains(&request) && first.contains("PAIRING_REQUIRED"));
        assert!(!book.approve("nope"));
        assert!(book.approve(&request));
        assert!(matches!(book.judge(&params, nonce, at), Verdict::Paired(_)));
        book.bind(7, &params);
        assert_eq!(book.revoke(&device), vec![7]);
        assert!(matches!(book.judge(&params, nonce, at), Verdict::Refused(..)));
    }
}
