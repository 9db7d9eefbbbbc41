//! Security properties through the real binary: the gateway secret and the
//! client's bearer appear in no log line, metric, error body or panic; the
//! client's `Authorization` never travels on the chat route's upstream
//! connection; failed authentication is rate limited as the gateway does it.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

/// The configured gateway secret in the leak test.
const CANARY_SECRET: &str = "CANARY-secret-5b1f0e7a9c";
/// What a client wrongly presents in the leak test.
const CANARY_CLIENT: &str = "CANARY-client-93d2aa41";

fn config_for(token: &str) -> String {
    format!(
        "{{ gateway: {{ auth: {{ mode: 'token', token: '{token}' }}, http: {{ endpoints: {{ chatCompletions: {{ enabled: true }} }} }} }} }}"
    )
}

async fn send(bridge: &Bridge, bearer: &str, body: &str) -> (u16, String) {
    let r = client()
        .post(bridge.chat_url())
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let headers = format!("{:?}", r.headers());
    (status, format!("{headers}\n{}", r.text().await.unwrap_or_default()))
}

fn assert_clean(what: &str, text: &str) {
    for canary in [CANARY_SECRET, CANARY_CLIENT] {
        assert!(!text.contains(canary), "{what} contains {canary}:\n{text}");
    }
}

/// The most verbose filter there is: everything at trace, and module-level
/// trace directives for the dependencies that see secrets (a more specific
/// directive wins over a crate-level one in tracing's filter syntax).
const VERBOSE: &str = "trace,pingora=trace,pingora_core=trace,pingora_core::protocols::http::v1::server=trace,\
pingora_core::protocols::http::v1::client=trace,pingora_proxy=trace,pingora_http=trace,tungstenite=trace,\
tungstenite::protocol=trace,tungstenite::handshake=trace,tokio_tungstenite=trace,[{authorization}]=trace";

/// Drives every error path with a distinctive secret and a distinctive wrong
/// bearer, then greps stderr (at the most verbose filter), /metrics and every response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_leak() {
    let gw = DemoGateway::builder().token(CANARY_SECRET).start().await.unwrap();
    let bridge = BridgeOpts::new(gw.addr())
        .gateway_config(&config_for(CANARY_SECRET))
        .env("CLAWBRIDGE_LOG", VERBOSE)
        .env("CLAWBRIDGE_RUN_TIMEOUT_SECS", "1")
        .start()
        .await;
    let mut bodies = Vec::new();
    let ok = chat_body(false, "hi").to_string();
    let ok_stream = chat_body(true, "hi").to_string();
    // Bad auth: wrong, missing scheme, the secret as a prefix.
    for bearer in [CANARY_CLIENT, &format!("{CANARY_CLIENT}{CANARY_SECRET}")[..], &CANARY_SECRET[..10]] {
        bodies.push(send(&bridge, bearer, &ok).await);
    }
    // Bad JSON and invalid requests that echo parts of the body.
    for body in [
        format!("{{\"messages\":\"{CANARY_CLIENT}"),
        format!("{{\"model\":\"{CANARY_CLIENT}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"),
        "{".to_string(),
    ] {
        bodies.push(send(&bridge, CANARY_SECRET, &body).await);
    }
    // Upstream failures, stream and not.
    for mode in [Mode::Upstream400, Mode::Upstream500] {
        gw.set(|b| b.mode = mode);
        bodies.push(send(&bridge, CANARY_SECRET, &ok).await);
        bodies.push(send(&bridge, CANARY_SECRET, &ok_stream).await);
    }
    // A run that times out.
    gw.set(|b| b.mode = Mode::Hang);
    bodies.push(send(&bridge, CANARY_SECRET, &ok).await);
    bodies.push(send(&bridge, CANARY_SECRET, &ok_stream).await);
    gw.set(|b| b.mode = Mode::Normal);
    // The gateway refusing the handshake: drop the link, refuse reconnects.
    gw.set(|b| b.handshake = HandshakeMode::RejectToken);
    gw.drop_all_connections();
    let deadline = Instant::now() + Duration::from_secs(5);
    while bridge.ready().await && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bodies.push(send(&bridge, CANARY_SECRET, &ok).await);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !bridge.logs().contains("refused connect") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The gateway gone entirely; chat and passthrough.
    gw.shutdown().await;
    bodies.push(send(&bridge, CANARY_SECRET, &ok).await);
    let r = client().get(bridge.url("/some/gateway/path")).bearer_auth(CANARY_CLIENT).send().await.unwrap();
    bodies.push((r.status().as_u16(), r.text().await.unwrap_or_default()));

    let statuses: Vec<u16> = bodies.iter().map(|(s, _)| *s).collect();
    for (i, (status, body)) in bodies.iter().enumerate() {
        assert_clean(&format!("response {i} ({status})"), body);
    }
    for want in [401, 400, 502, 503, 504] {
        assert!(statuses.contains(&want), "paths covered: {statuses:?}");
    }
    let logs = bridge.logs();
    assert!(logs.contains("refused connect"), "handshake refusal was driven:\n{logs}");
    assert_clean("stderr", &logs);
    assert!(!logs.contains("panicked"), "{logs}");
    assert_clean("/metrics", &bridge.metrics().await);
    for path in ["/readyz", "/healthz"] {
        let t = client().get(bridge.admin_url(path)).send().await.unwrap().text().await.unwrap();
        assert_clean(path, &t);
    }
}

/// A clawbridge configured with the wrong secret: the refusal is logged, the
/// secret is not, and requests get a clean 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_configured_secret_is_not_logged() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr())
        .gateway_config(&config_for(CANARY_SECRET))
        .env("CLAWBRIDGE_LOG", "debug")
        .no_wait()
        .start()
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !bridge.logs().contains("refused connect") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = send(&bridge, CANARY_SECRET, &chat_body(false, "hi").to_string()).await;
    assert_eq!(status, 503, "{body}");
    assert_clean("response", &body);
    let logs = bridge.logs();
    assert!(logs.contains("refused connect"), "{logs}");
    assert_clean("stderr", &logs);
    assert_clean("/metrics", &bridge.metrics().await);
    let ready = client().get(bridge.admin_url("/readyz")).send().await.unwrap().text().await.unwrap();
    assert_clean("/readyz", &ready);
}

/// The chat route's upstream is clawbridge's own WebSocket: the client's
/// `Authorization` is never forwarded on it, and the only credential the
/// gateway sees is the configured one, in `connect`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_authorization_is_not_forwarded_upstream() {
    // Auth mode none: clawbridge accepts any bearer, so a distinctive one
    // can be sent without being the secret.
    let gw = DemoGateway::builder().start().await.unwrap();
    let bridge = BridgeOpts::new(gw.addr())
        .gateway_config(
            "{ gateway: { auth: { mode: 'none' }, http: { endpoints: { chatCompletions: { enabled: true } } } } }",
        )
        .start()
        .await;
    for stream in [false, true] {
        let r = client()
            .post(bridge.chat_url())
            .header("authorization", format!("Bearer {CANARY_CLIENT}"))
            .header("x-api-key", CANARY_CLIENT)
            .header("cookie", format!("session={CANARY_CLIENT}"))
            .json(&chat_body(stream, "hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let _ = r.text().await;
    }
    let frames = gw.received_requests();
    assert!(frames.iter().any(|f| f["method"] == "agent"), "{frames:?}");
    for f in &frames {
        assert!(!f.to_string().contains(CANARY_CLIENT), "forwarded upstream: {f}");
        if f["method"] == "connect" {
            assert!(f["params"].get("auth").is_none(), "mode none sends no auth: {f}");
        }
    }

    // Token mode: the connect frame carries the configured token, and no
    // other frame carries any credential.
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 200);
    let frames = gw.received_requests();
    let connects: Vec<&Value> = frames.iter().filter(|f| f["method"] == "connect").collect();
    assert!(!connects.is_empty());
    for c in connects {
        assert_eq!(c["params"]["auth"], serde_json::json!({"token": TOKEN}), "{c}");
    }
    for f in frames.iter().filter(|f| f["method"] != "connect") {
        assert!(!f.to_string().contains(TOKEN), "credential outside connect: {f}");
    }
}

/// `gateway.auth.rateLimit {maxAttempts: 3, exemptLoopback: false}`: three
/// wrong tokens lock the client out; the fourth request, even with the right
/// token, gets the gateway's 429 with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_auth_is_rate_limited() {
    let gw = gateway().await;
    let locked = BridgeOpts::new(gw.addr())
        .gateway_config(&format!(
            "{{ gateway: {{ auth: {{ mode: 'token', token: '{TOKEN}', rateLimit: {{ maxAttempts: 3, exemptLoopback: false }} }}, http: {{ endpoints: {{ chatCompletions: {{ enabled: true }} }} }} }} }}"
        ))
        .start()
        .await;
    let exempt = BridgeOpts::new(gw.addr())
        .gateway_config(&format!(
            "{{ gateway: {{ auth: {{ mode: 'token', token: '{TOKEN}', rateLimit: {{ maxAttempts: 3 }} }}, http: {{ endpoints: {{ chatCompletions: {{ enabled: true }} }} }} }} }}"
        ))
        .start()
        .await;
    let body = chat_body(false, "hi").to_string();
    let exempt_run = async {
        // Loopback is exempt by default: slowed down, never locked out.
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(send(&exempt, "wrong", &body).await.0);
        }
        statuses.push(send(&exempt, TOKEN, &body).await.0);
        statuses
    };
    let locked_run = async {
        let mut out = Vec::new();
        for _ in 0..3 {
            let (status, text) = send(&locked, "wrong", &body).await;
            assert_eq!(status, 401, "{text}");
        }
        for bearer in [TOKEN, "wrong"] {
            let r = client()
                .post(locked.chat_url())
                .bearer_auth(bearer)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 429);
            let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((295..=300).contains(&retry), "Retry-After {retry}");
            out.push(r.text().await.unwrap());
        }
        out
    };
    let (exempt_statuses, locked_bodies) = tokio::join!(exempt_run, locked_run);
    assert_eq!(exempt_statuses, [401, 401, 401, 401, 200]);
    for b in locked_bodies {
        assert_eq!(
            b,
            r#"{"error":{"message":"Too many failed authentication attempts. Please try again later.","type":"rate_limited"}}"#
        );
    }
    let m = locked.metrics().await;
    assert!(m.contains("clawbridge_auth_failures_total{reason=\"rate_limited\"} 2"), "{m}");
    assert!(m.contains("clawbridge_auth_failures_total{reason=\"mismatch\"} 3"), "{m}");
    // Passthrough traffic is not the chat route's business: not locked.
    let r = client().get(locked.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
