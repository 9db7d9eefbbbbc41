//! Unit tests of `device.rs`. The signature vector was verified by the
//! gateway's own connect-handler code (`resolveDeviceSignaturePayloadVersion`
//! of OpenClaw 2026.9.6): `tests/fixtures/device-auth-vector.json`,
//! regenerated with `tests/fixtures/gen/device-auth-vector.sh`.

use super::*;

const FIXTURE: &str = include_str!("../../tests/fixtures/device-auth-vector.json");

/// The vectors the fixture holds, computed by this code.
fn vectors() -> Vec<serde_json::Value> {
    let cases: [(u8, &str, &str, &str, &str); 3] = [
        (7, "test-token", "0f3c1a2b-7d9e-4f60-8a1b-2c3d4e5f6a7b", "linux", ""),
        (42, "", "nonce-with-no-token", "  Linux ", "Server"),
        (200, "dev-token-\u{e9}", "n", "linux", "K8S Pod"),
    ];
    cases
        .iter()
        .map(|&(seed, token, nonce, platform, family)| {
            let id = Identity::from_key(SigningKey::from_bytes(&[seed; 32]));
            let claims = Claims {
                client_id: "gateway-client",
                client_mode: "backend",
                role: "operator",
                scopes: &["operator.admin", "operator.read", "operator.write"],
                signed_at_ms: 1_795_637_068_646 + u64::from(seed),
                token,
                nonce,
                platform,
                device_family: family,
            };
            let proof = id.prove(&claims);
            serde_json::json!({
                "seed": seed,
                "claims": {
                    "clientId": claims.client_id, "clientMode": claims.client_mode, "role": claims.role,
                    "scopes": claims.scopes, "signedAtMs": claims.signed_at_ms, "token": token, "nonce": nonce,
                    "platform": platform, "deviceFamily": family,
                },
                "payload": payload_v3(id.device_id(), &claims),
                "device": proof,
            })
        })
        .collect()
}

#[test]
fn signatures_match_the_vectors_the_gateway_verified() {
    let fixture: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let ours = vectors();
    let theirs = fixture["vectors"].as_array().unwrap();
    assert_eq!(theirs.len(), ours.len());
    for (ours, theirs) in ours.iter().zip(theirs) {
        let g = &theirs["gateway"];
        // What the gateway computed from the claims and the public key alone.
        assert_eq!(ours["payload"], g["payloadV3"], "the payload the gateway builds");
        assert_eq!(ours["device"]["id"], g["deviceId"], "the device id the gateway derives");
        assert_eq!(g["verifiedAs"], "v3", "the gateway's connect handler accepted the signature");
        // Ed25519 is deterministic: the signature it verified is ours.
        assert_eq!(ours["device"], theirs["device"]);
    }
}

#[test]
fn payload_binds_every_claim() {
    let id = Identity::from_key(SigningKey::from_bytes(&[1; 32]));
    let base = Claims {
        client_id: "gateway-client",
        client_mode: "backend",
        role: "operator",
        scopes: &["a", "b"],
        signed_at_ms: 5,
        token: "t",
        nonce: "n",
        platform: " LiNuX ",
        device_family: "",
    };
    assert_eq!(payload_v3("d", &base), "v3|d|gateway-client|backend|operator|a,b|5|t|n|linux|");
    let sig = id.prove(&base).signature;
    for changed in [Claims { nonce: "m", ..base }, Claims { token: "u", ..base }, Claims { signed_at_ms: 6, ..base }] {
        assert_ne!(id.prove(&changed).signature, sig);
    }
    assert_eq!(id.device_id().len(), 64);
    assert!(id.public_key().len() == 43 && !id.public_key().contains('='));
    assert!(!format!("{id:?}").contains(id.public_key()));
}

/// Prints the vectors for `tests/fixtures/gen/device-auth-vector.sh`.
#[test]
#[ignore]
fn print_device_vectors() {
    println!("VECTORS {}", serde_json::Value::Array(vectors()));
}

fn settings(dir: &Path) -> DeviceSettings {
    DeviceSettings { state_dir: dir.join("state"), key_file: None }
}

#[test]
fn key_is_generated_once_0600_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    assert_eq!(DeviceAuth::check(&s).unwrap(), None, "check creates no key");
    let a = DeviceAuth::open(&s).unwrap();
    let key = s.state_dir.join(KEY_FILE);
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pem = fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    let b = DeviceAuth::open(&s).unwrap();
    assert_eq!(a.identity().device_id(), b.identity().device_id());
    assert_eq!(DeviceAuth::check(&s).unwrap().as_deref(), Some(a.identity().device_id()));
    // No temp files left behind.
    let names: Vec<String> =
        fs::read_dir(&s.state_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec![KEY_FILE.to_string()]);
}

#[test]
fn token_is_stored_atomically_rotated_and_bound_to_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let a = DeviceAuth::open(&s).unwrap();
    assert!(a.token().is_none());
    assert!(a.store_token("tok-1").unwrap());
    assert!(!a.store_token("tok-1").unwrap(), "same token: no write");
    let path = s.state_dir.join(TOKEN_FILE);
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(DeviceAuth::open(&s).unwrap().token().unwrap().matches(b"tok-1"));
    assert!(a.store_token("tok-2").unwrap(), "rotated");
    assert!(DeviceAuth::open(&s).unwrap().token().unwrap().matches(b"tok-2"));
    a.clear_token().unwrap();
    assert!(DeviceAuth::open(&s).unwrap().token().is_none());
    // A token of another key is not used.
    a.store_token("tok-3").unwrap();
    fs::remove_file(s.state_dir.join(KEY_FILE)).unwrap();
    assert!(DeviceAuth::open(&s).unwrap().token().is_none());
}

#[test]
fn a_mounted_key_is_used_and_a_bad_one_named() {
    let dir = tempfile::tempdir().unwrap();
    // `openssl genpkey -algorithm ed25519` output for seed [9; 32] (PKCS#8 v1).
    let id = Identity::from_key(SigningKey::from_bytes(&[9; 32]));
    let key = dir.path().join("secret.pem");
    fs::write(&key, id.to_pem().unwrap().as_bytes()).unwrap();
    let s = DeviceSettings { state_dir: dir.path().join("state"), key_file: Some(key.clone()) };
    let d = DeviceAuth::open(&s).unwrap();
    assert_eq!(d.identity().device_id(), id.device_id());
    assert!(!s.state_dir.join(KEY_FILE).exists(), "no key generated beside a mounted one");
    fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n").unwrap();
    let err = DeviceAuth::open(&s).unwrap_err().to_string();
    assert!(err.contains("secret.pem") && err.contains("PKCS#8"), "{err}");
    assert!(!err.contains("not a key"));
}

#[test]
fn an_unusable_state_dir_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    // Under a regular file: fails for root too.
    let file = dir.path().join("file");
    fs::write(&file, "").unwrap();
    let s = DeviceSettings { state_dir: file.join("state"), key_file: None };
    let err = DeviceAuth::open(&s).unwrap_err().to_string();
    assert!(err.contains("CLAWBRIDGE_STATE_DIR") && err.contains("file/state"), "{err}");
    assert!(DeviceAuth::check(&s).is_err());
    // Read-only: only binds when not running as root.
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
    if fs::File::create(ro.join("x")).is_err() {
        let s = DeviceSettings { state_dir: ro, key_file: None };
        let err = DeviceAuth::open(&s).unwrap_err().to_string();
        assert!(err.contains("not writable") && err.contains("CLAWBRIDGE_STATE_DIR"), "{err}");
    }
}
