//! Everything that is not the chat route reaches the gateway unchanged:
//! HTTP (method, path, query, headers, body, status) and WebSocket upgrades,
//! on which a native client completes `connect` and an `agent` turn. With
//! the endpoint off, the chat route itself is passed through.

use crate::common::*;
use serde_json::{json, Value};

/// The demo gateway echoes what it received; clawbridge changed nothing and
/// added no forwarding headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_passes_through_unchanged() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let r = client()
        .put(bridge.url("/__demo/echo/some/path?q=1&x=%20y"))
        .header("x-custom", "A b")
        .header("authorization", "Bearer something-else")
        .body("raw body \u{1F980}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["path"], "/__demo/echo/some/path");
    assert_eq!(v["query"], "q=1&x=%20y");
    assert_eq!(v["body"], "raw body \u{1F980}");
    let headers: Vec<(String, String)> = serde_json::from_value(v["headers"].clone()).unwrap();
    let get = |k: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
    assert_eq!(get("x-custom"), Some("A b"));
    assert_eq!(get("authorization"), Some("Bearer something-else"));
    assert_eq!(get("host"), Some(bridge.addr.to_string().as_str()), "Host is kept");
    for added in ["x-forwarded-for", "forwarded", "x-real-ip", "via"] {
        assert_eq!(get(added), None, "{added} must not be added");
    }
    let r = client().get(bridge.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"ok":true,"status":"live"}"#);
    let r = client().get(bridge.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404, "gateway statuses pass through");
}

/// A native OpenClaw client connects through clawbridge, keeps its scopes
/// (no Origin or forwarding header added) and runs an `agent` turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_pass_through() {
    let gw = gateway().await;
    gw.set(|b| b.reply = Some(vec!["Hi".into(), " there".into()]));
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let turn = crate::common::ws::ws_turn(bridge.addr, "hello", "idem-ws-1").await;
    assert_eq!(
        turn.hello["auth"]["scopes"],
        json!(["operator.read", "operator.write"]),
        "scopes kept through the proxy"
    );
    assert_eq!(turn.text, "Hi there");
}

/// With the endpoint disabled (the gateway's key false, no override), the
/// chat route goes to the gateway untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_endpoint_is_passed_through() {
    let gw = gateway().await;
    let bridge =
        BridgeOpts::new(gw.addr()).gateway_config("{ gateway: { auth: { token: 'test-token' } } }").start().await;
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 404, "the demo gateway has no built-in endpoint");
    assert!(gw.received_requests().iter().all(|r| r["method"] != "agent"));
    let r = client().get(bridge.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "passthrough-only is ready without a link");

    let forced = BridgeOpts::new(gw.addr())
        .gateway_config("{ gateway: { auth: { token: 'test-token' } } }")
        .env("CLAWBRIDGE_CHAT_COMPLETIONS", "on")
        .start()
        .await;
    assert_eq!(post_chat(&forced, &chat_body(false, "hi")).await.status(), 200, "forced on");
}

/// The admin listener: health, readiness and Prometheus metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    post_chat(&bridge, &chat_body(true, "hi")).await.text().await.unwrap();
    client().get(bridge.url("/healthz")).send().await.unwrap();
    let r = client().get(bridge.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Request metrics are recorded in Pingora's logging phase, which runs
    // just after the response is written: allow it a moment.
    let needles = [
        "clawbridge_chat_requests_total{agent=\"main\",api=\"chat\",outcome=\"ok\",status_class=\"2xx\",stream=\"true\"} 1",
        "clawbridge_passthrough_requests_total{kind=\"http\",status_class=\"2xx\"} 1",
        "clawbridge_gateway_connected 1",
        "clawbridge_gateway_runs_tracked 0",
        "clawbridge_chat_time_to_first_token_seconds_count{agent=\"main\",stream=\"true\"} 1",
        "clawbridge_build_info{version=",
    ];
    let m = bridge.metrics_when(|m| needles.iter().all(|n| m.contains(n))).await;
    for needle in needles {
        assert!(m.contains(needle), "missing {needle} in\n{m}");
    }
}
