//! Device pairing against the demo gateway acting as a remote peer
//! (`require_pairing`: it checks the device signature the way the real
//! gateway does, see demo-gateway/src/pairing.rs): clawbridge stays not
//! ready with the device and request id in `/readyz`, the metric and the
//! log; becomes ready without a restart once the request is approved; a
//! restart with the same state dir needs no new approval; a revoked device
//! makes it not ready again. The real gateway runs the same scenario in
//! `e2e/pairing.py`.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

async fn readyz(bridge: &Bridge) -> (u16, Value) {
    let r = client().get(bridge.admin_url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn readyz_until(bridge: &Bridge, what: &str, cond: impl Fn(u16, &Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (status, v) = readyz(bridge).await;
        if cond(status, &v) {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{what}: last /readyz {status} {v}\n{}", bridge.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pending(status: u16, v: &Value) -> bool {
    status == 503 && v["device"]["pairing"] == "pending"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_required_then_approved_restarted_and_revoked() {
    let gw = gateway().await;
    gw.set(|b| b.require_pairing = true);
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap().to_owned();
    let start = || BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_STATE_DIR", &state_dir).no_wait().start();

    let bridge = start().await;
    let v = readyz_until(&bridge, "pairing pending", pending).await;
    let (device_id, request_id) = gw.pending_pairings().pop().expect("a pending request");
    assert_eq!(v["device"]["id"], device_id.as_str(), "{v}");
    assert_eq!(v["device"]["request_id"], request_id.as_str(), "{v}");
    let approve = format!("openclaw devices approve {request_id}");
    assert_eq!(v["device"]["approve"], approve.as_str());
    assert!(v["reason"].as_str().unwrap().contains(&approve), "{v}");
    assert!(bridge.logs().contains(&approve), "{}", bridge.logs());
    let m = bridge.metrics().await;
    assert!(m.contains("clawbridge_gateway_pairing{state=\"pending\"} 1"), "{m}");
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), r#"{"error":{"message":"OpenClaw gateway unavailable","type":"api_error"}}"#);
    // Retries reuse the request.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(gw.pending_pairings(), vec![(device_id.clone(), request_id.clone())]);
    assert_eq!(readyz(&bridge).await.1["device"]["request_id"], request_id.as_str());

    assert!(gw.approve_pairing(&request_id));
    let approved = Instant::now();
    let v = readyz_until(&bridge, "ready after approval", |s, _| s == 200).await;
    assert!(approved.elapsed() < Duration::from_secs(6), "retries back off to at most 4 s");
    assert_eq!(v["device"]["pairing"], "paired", "{v}");
    assert_eq!(v["gateway"], serde_json::json!({"protocol": 4, "server_version": "2026.9.6"}));
    let r = post_chat(&bridge, &chat_body(false, "after pairing")).await;
    assert_eq!(r.status(), 200);
    let m = bridge.metrics().await;
    assert!(m.contains("clawbridge_gateway_pairing{state=\"paired\"} 1"), "{m}");
    assert!(m.contains("clawbridge_gateway_info{protocol=\"4\",server_version=\"2026.9.6\"} 1"), "{m}");
    let token_file = state.path().join("device-token.json");
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&token_file).unwrap()).unwrap();
    let token = stored["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("devtok-"));
    assert!(!bridge.logs().contains(&token), "the device token never reaches the log");
    drop(bridge);

    // Same state: no new approval.
    let bridge = start().await;
    let v = readyz_until(&bridge, "ready after restart", |s, v| s == 200 || pending(s, v)).await;
    assert_eq!(v["ready"], true, "{v}");
    assert!(gw.pending_pairings().is_empty());

    // Revoked: the link is closed (4001 "device removed") and pairing is pending again.
    assert_eq!(gw.revoke_device(&device_id), 1);
    let v = readyz_until(&bridge, "pending after revoke", pending).await;
    assert_ne!(v["device"]["request_id"], request_id.as_str(), "a new request");
    assert!(bridge.logs().contains("4001 device removed"), "{}", bridge.logs());
    assert!(!token_file.exists(), "the revoked device's token is forgotten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mounted_key_is_the_identity_and_a_bad_state_dir_fails_the_start() {
    let gw = gateway().await;
    gw.set(|b| b.require_pairing = true);
    let dir = tempfile::tempdir().unwrap();
    // The key a Kubernetes Secret would mount (`openssl genpkey -algorithm ed25519`).
    let out = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(dir.path().join("key.pem"))
        .output();
    if !out.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: no openssl to make a key");
        return;
    }
    let key = dir.path().join("key.pem");
    let bridge = BridgeOpts::new(gw.addr())
        .env("CLAWBRIDGE_STATE_DIR", dir.path().join("state").to_str().unwrap())
        .env("CLAWBRIDGE_DEVICE_KEY_FILE", key.to_str().unwrap())
        .no_wait()
        .start()
        .await;
    let v = readyz_until(&bridge, "pairing pending", pending).await;
    let (device_id, _) = gw.pending_pairings().pop().unwrap();
    assert_eq!(v["device"]["id"], device_id.as_str());
    assert!(!dir.path().join("state/device-key.pem").exists(), "no key generated beside the mounted one");
    drop(bridge);

    // A state dir under a regular file: one line naming the key, exit 64.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"))
        .env_clear()
        .env("CLAWBRIDGE_CHAT_COMPLETIONS", "on")
        .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
        .env("OPENCLAW_CONFIG_PATH", dir.path().join("none.json"))
        .env("CLAWBRIDGE_STATE_DIR", file.join("state"))
        .env("CLAWBRIDGE_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("CLAWBRIDGE_ADMIN_LISTEN", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CLAWBRIDGE_STATE_DIR"), "{err}");
}

/// Without pairing (a loopback backend client), the device block is
/// harmless: ready at once, pairing `none`, no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_needs_no_pairing() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let (status, v) = readyz(&bridge).await;
    assert_eq!(status, 200);
    assert_eq!(v["device"]["pairing"], "none", "{v}");
    assert_eq!(v["device"]["id"].as_str().map(str::len), Some(64));
    let connect = gw.received_requests().into_iter().find(|r| r["method"] == "connect").unwrap();
    assert!(connect["params"]["device"]["signature"].is_string(), "the device block is sent: {connect}");
    assert!(gw.pending_pairings().is_empty());
}
