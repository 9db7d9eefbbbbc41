//! HTTP side of the shared port: health/ready, the passthrough echo, the proxy-attribution rule, demo control routes.

mod common;

use common::*;
use demo_gateway::{DemoGateway, Mode};
use serde_json::{json, Value};

#[tokio::test]
async fn health_ready_and_404() {
    let gw = DemoGateway::builder().token(TOKEN).start().await.unwrap();
    for path in ["/healthz", "/health"] {
        let (status, head, body) =
            http(gw.addr(), &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), b"").await;
        assert_eq!(status, 200);
        assert!(head.to_ascii_lowercase().contains("content-type: application/json; charset=utf-8"));
        assert_eq!(body, r#"{"ok":true,"status":"live"}"#);
    }
    let (status, _, body) = http(gw.addr(), "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["ready"].clone(), v["failing"].clone()), (json!(true), json!([])));
    assert!(v["uptimeMs"].is_u64());
    let (status, head, body) =
        http(gw.addr(), "GET /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"").await;
    assert_eq!(status, 404);
    assert!(head.to_ascii_lowercase().contains("text/plain"));
    assert_eq!(body, "Not Found");
}

#[tokio::test]
async fn echo_returns_request_unchanged() {
    let gw = DemoGateway::builder().start().await.unwrap();
    let body = "héllo body";
    let head = format!(
        "PUT /__demo/echo/a/b?x=1&y=%20 HTTP/1.1\r\nHost: example\r\nX-Custom: One\r\nAuthorization: Bearer abc\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (status, _, resp) = http(gw.addr(), &head, body.as_bytes()).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["path"], "/__demo/echo/a/b");
    assert_eq!(v["query"], "x=1&y=%20");
    assert_eq!(v["body"], body);
    assert_eq!(v["body_len"], body.len());
    assert_eq!(
        v["headers"],
        json!([
            ["host", "example"],
            ["x-custom", "One"],
            ["authorization", "Bearer abc"],
            ["content-length", body.len().to_string()],
            ["connection", "close"]
        ])
    );
}

#[tokio::test]
async fn forwarded_headers_get_403() {
    let gw = DemoGateway::builder().start().await.unwrap();
    for h in ["X-Forwarded-For: 1.2.3.4", "Forwarded: for=1.2.3.4"] {
        let (status, _, body) =
            http(gw.addr(), &format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{h}\r\nConnection: close\r\n\r\n"), b"")
                .await;
        assert_eq!(status, 403);
        assert_eq!(body, r#"{"error":{"message":"proxy_attribution_required","type":"forbidden"}}"#);
    }
}

#[tokio::test]
async fn demo_config_and_state() {
    let gw = DemoGateway::builder().token(TOKEN).start().await.unwrap();
    let patch = r#"{"mode":"hang","delta_delay_ms":7}"#;
    let head = format!("POST /__demo/config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", patch.len());
    let (status, _, body) = http(gw.addr(), &head, patch.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["mode"], "hang");
    assert_eq!(v["delta_delay_ms"], 7);
    assert_eq!(gw.behaviour().mode, Mode::Hang);
    let bad = r#"{"nope":1}"#;
    let head = format!(
        "POST /__demo/config HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bad.len()
    );
    assert_eq!(http(gw.addr(), &head, bad.as_bytes()).await.0, 400);

    let mut ws = handshake(gw.addr()).await;
    agent(&mut ws, "a", json!({"message":"hello state","idempotencyKey":"st-1","sessionKey":"k"})).await;
    recv_no_tick(&mut ws).await;
    send(&mut ws, json!({"type":"req","id":"x","method":"chat.abort","params":{"sessionKey":"k"}})).await;
    collect_run(&mut ws, "a").await;
    let (status, _, body) =
        http(gw.addr(), "GET /__demo/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["connections"], 1);
    assert_eq!(v["runs_in_flight"], 0);
    assert_eq!(v["aborts"], json!([{"sessionKey":"agent:main:k","runId":""}]));
    assert_eq!(v["received_methods"], json!({"agent":1,"chat.abort":1,"connect":1}));
    assert_eq!(v["sessions"], json!({"agent:main:k":["hello state"]}));
}
