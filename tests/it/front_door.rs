//! The front door through the real binary: every spelling of an owned route
//! is served (or refused) by clawbridge and never reaches the gateway; an
//! owned route with `Upgrade` is refused; clients are forwarded as
//! themselves (`X-Forwarded-For`); the lockout keys on the attributed
//! client and never locks loopback, however it is spelled; metric labels
//! never carry a client's agent name.

use std::time::Duration;

use crate::common::raw::{chat_request, RawConn};
use crate::common::*;
use serde_json::{json, Value};

fn config(extra_gateway: &str) -> String {
    format!(
        "{{ gateway: {{ auth: {{ mode: 'token', token: '{TOKEN}', rateLimit: {{ maxAttempts: 2 }} }}, {extra_gateway} \
         http: {{ endpoints: {{ chatCompletions: {{ enabled: true }} }} }} }}, agents: {{ list: [{{ id: 'main' }}, {{ id: 'ops' }}] }} }}"
    )
}

/// A chat body naming the agent: with two agents configured (as here, for
/// the metric labels), a request that names none has no owner (400).
fn main_body(content: &str) -> Value {
    serde_json::json!({"model": "openclaw/main", "messages": [{"role": "user", "content": content}]})
}

fn valid_chat_request(token: &str, content: &str) -> Vec<u8> {
    chat_request(token, &main_body(content), "")
}

/// `valid_chat_request` with another request target.
fn chat_at(target: &str, token: &str) -> Vec<u8> {
    let req = valid_chat_request(token, "spelled");
    let text = String::from_utf8(req).unwrap();
    text.replacen("POST /v1/chat/completions ", &format!("POST {target} "), 1).into_bytes()
}

async fn send(bridge: &Bridge, bytes: Vec<u8>) -> crate::common::raw::RawResponse {
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    c.send_and_read(bytes, false, Duration::from_secs(10)).await.unwrap()
}

/// Spellings the gateway routes to its chat handler (recorded from its own
/// URL code, see `src/ingress/path.rs`). Each is answered by clawbridge: a
/// completion with the token, clawbridge's 401 without. The demo gateway
/// has no HTTP chat route: a forwarded request would get its 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_the_chat_route_is_served_here() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).gateway_config(&config("")).start().await;
    for target in [
        "/v1/chat/completions?x=1",
        "/v1/./chat/completions",
        "/v1/x/../chat/completions",
        "/v1/%2e/chat/completions",
        "/v1/x/%2E%2E/chat/completions",
        "/v1\\chat\\completions",
        "/../v1/chat/completions",
        "//x/v1/chat/completions",
        "///x/v1/chat/completions",
        "http://clawbridge/v1/chat/completions",
        "/__openclaw__/cap/abc/v1/chat/completions",
    ] {
        let r = send(&bridge, chat_at(target, TOKEN)).await;
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["object"], "chat.completion", "{target}");
        let r = send(&bridge, chat_at(target, "wrong-token")).await;
        assert_eq!(r.status, 401, "{target}: {}", r.text());
    }
    // Not the chat route for the gateway either: forwarded, its 404.
    for target in ["/v1/chat/completions/", "//v1/chat/completions", "/v1/chat%2fcompletions", "/V1/chat/completions"] {
        let r = send(&bridge, chat_at(target, TOKEN)).await;
        assert_eq!(r.status, 404, "{target}: {}", r.text());
    }
    // An absolute-form target naming another host than `Host`: Pingora refuses it.
    let r = send(&bridge, chat_at("http://elsewhere.example/v1/chat/completions", TOKEN)).await;
    assert_eq!(r.status, 400);
    // A target whose route cannot be computed is refused, not forwarded.
    let r = send(&bridge, chat_at("//x:99999/v1/chat/completions", TOKEN)).await;
    assert_eq!((r.status, r.text().as_str()), (400, "Bad Request"));
    assert!(gw.received_requests().iter().all(|f| f["params"]["message"] != "spelled" || f["method"] == "agent"));
}

/// `Upgrade` on an owned route is never passed through: answered as the
/// gateway answers it, and the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_routes_refuse_upgrades() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).gateway_config(&config("")).start().await;
    let cases = [
        ("POST", "Upgrade: websocket\r\nConnection: Upgrade\r\n", 405, "Invalid HTTP method"),
        ("POST", "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n", 405, "Invalid HTTP method"),
        ("POST", "Upgrade: websocket\r\nConnection: keep-alive\r\n", 400, "Bad Request"),
        ("GET", "Upgrade: h2c\r\nConnection: Upgrade\r\n", 400, "Invalid Upgrade header"),
        (
            "GET",
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            405,
            "Method Not Allowed",
        ),
    ];
    for (method, upgrade, status, body) in cases {
        for target in ["/v1/chat/completions", "/v1/%2e/chat/completions"] {
            let req = chat_request(TOKEN, &main_body("up"), upgrade);
            let req = String::from_utf8(req).unwrap().replacen(
                "POST /v1/chat/completions ",
                &format!("{method} {target} "),
                1,
            );
            let r = send(&bridge, req.into_bytes()).await;
            assert_eq!((r.status, r.text().as_str()), (status, body), "{method} {target} {upgrade:?}");
            assert!(r.closed, "connection closed after the refusal");
        }
    }
    assert_eq!(gw.connection_count(), 1, "only clawbridge's own link reached the gateway");
}

fn echoed_headers(v: &Value) -> Vec<(String, String)> {
    serde_json::from_value(v["headers"].clone()).unwrap()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

/// A trusted proxy's chain is extended with its address; an untrusted
/// client's forwarding headers are dropped and it is named as itself, so
/// it can never claim to be local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_name_the_client() {
    let gw = gateway().await;
    gw.set(|b| b.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]);
    // Trusted: 127.0.0.1 (clawbridge's clients in this test come from it).
    let bridge = BridgeOpts::new(gw.addr()).gateway_config(&config("trustedProxies: ['127.0.0.1'],")).start().await;
    let r = client()
        .get(bridge.url("/__demo/echo/x"))
        .header("x-forwarded-for", "198.51.100.1")
        .header("x-forwarded-for", "203.0.113.5")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let h = echoed_headers(&r.json().await.unwrap());
    assert_eq!(header(&h, "x-forwarded-for"), ["198.51.100.1, 203.0.113.5, 127.0.0.1"]);
    assert_eq!(header(&h, "x-forwarded-proto"), ["https"], "a trusted proxy's other headers are kept");
    drop(bridge);

    // Not trusted: the client's claims are dropped.
    let bridge = BridgeOpts::new(gw.addr()).gateway_config(&config("")).start().await;
    let r = client()
        .get(bridge.url("/__demo/echo/x"))
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-real-ip", "10.0.0.1")
        .header("forwarded", "for=10.0.0.1")
        .header("tailscale-user-login", "someone")
        .send()
        .await
        .unwrap();
    let h = echoed_headers(&r.json().await.unwrap());
    assert_eq!(
        header(&h, "x-forwarded-for"),
        ["127.0.0.1"],
        "named as itself: a loopback client that forwards is not local"
    );
    for dropped in ["x-real-ip", "forwarded", "tailscale-user-login"] {
        assert!(header(&h, dropped).is_empty(), "{dropped} dropped");
    }
    // A plain local client is forwarded untouched.
    let r = client().get(bridge.url("/__demo/echo/x")).send().await.unwrap();
    let h = echoed_headers(&r.json().await.unwrap());
    assert!(header(&h, "x-forwarded-for").is_empty());
}

/// Behind a trusted proxy the lockout keys on the forwarded client, so one
/// client's failures neither lock out the proxy's other clients nor go
/// unpunished; unattributable requests get the gateway's 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lockout_keys_on_the_forwarded_client() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).gateway_config(&config("trustedProxies: ['127.0.0.1'],")).start().await;
    let from = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");
    let attacker = from("203.0.113.5");
    for _ in 0..2 {
        let r = send(&bridge, chat_request("wrong", &main_body("x"), &attacker)).await;
        assert_eq!(r.status, 401);
    }
    let r = send(&bridge, chat_request(TOKEN, &main_body("x"), &attacker)).await;
    assert_eq!(r.status, 429, "the forwarded client is locked out: {}", r.text());
    let r = send(&bridge, chat_request(TOKEN, &main_body("x"), &from("203.0.113.6"))).await;
    assert_eq!(r.status, 200, "another client behind the same proxy is not");
    let r = send(&bridge, valid_chat_request(TOKEN, "x")).await;
    assert_eq!(r.status, 200, "nor is the proxy itself");
    let r = send(&bridge, chat_request(TOKEN, &main_body("x"), &from("127.0.0.1"))).await;
    assert_eq!(r.status, 403, "a forwarded loopback client is unattributable: {}", r.text());
}

/// On a dual-stack `[::]` listener an IPv4 loopback client arrives as
/// `::ffff:127.0.0.1`: still loopback, slowed but never locked out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_loopback_is_never_locked_out() {
    let gw = gateway().await;
    let port = free_port();
    let bridge = BridgeOpts::new(gw.addr())
        .gateway_config(&config(""))
        .env("CLAWBRIDGE_LISTEN", &format!("[::]:{port}"))
        .start()
        .await;
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..3 {
        let mut c = RawConn::connect(addr).await.unwrap();
        let r = c.send_and_read(valid_chat_request("wrong", "x"), false, Duration::from_secs(10)).await.unwrap();
        assert_eq!(r.status, 401);
    }
    let mut c = RawConn::connect(addr).await.unwrap();
    let r = c.send_and_read(valid_chat_request(TOKEN, "x"), false, Duration::from_secs(10)).await.unwrap();
    assert_eq!(r.status, 200, "past maxAttempts, still served: {}", r.text());
    drop(bridge);
}

/// A client can name any agent (the gateway refuses unknown ones, but the
/// request is still counted); metric labels only ever hold configured
/// agents or `other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_never_carry_client_input() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).gateway_config(&config("")).start().await;
    for agent in ["zz-client-invented-1", "zz-client-invented-2"] {
        let body = json!({"model":format!("openclaw/{agent}"),"messages":[{"role":"user","content":"hi"}]});
        let r = send(&bridge, chat_request(TOKEN, &body, "")).await;
        assert_eq!(r.status, 400, "{}", r.text());
    }
    let r = send(&bridge, valid_chat_request(TOKEN, "x")).await;
    assert_eq!(r.status, 200);
    let metrics = bridge.metrics_when(|m| m.contains("agent=\"main\"") && m.contains("agent=\"other\"")).await;
    assert!(!metrics.contains("zz-client-invented"), "{metrics}");
}

/// `--check` and `/readyz` say plainly whether the gateway will serve
/// forwarded remote clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_readiness_say_whether_remote_clients_are_served() {
    let check = |extra: &str| {
        let mut cfg = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut cfg, config(extra).as_bytes()).unwrap();
        let state = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"))
            .arg("--check")
            .env_clear()
            .env("CLAWBRIDGE_STATE_DIR", state.path())
            .env("OPENCLAW_CONFIG_PATH", cfg.path())
            .env("CLAWBRIDGE_UPSTREAM", "127.0.0.1:18789")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(check("trustedProxies: ['127.0.0.1'],").contains("remote clients are forwarded as themselves"));
    let refused = check("");
    assert!(refused.contains("remote clients are refused by the gateway"), "{refused}");
    assert!(refused.contains("does not include 127.0.0.1"), "{refused}");

    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).gateway_config(&config("")).start().await;
    let v: Value = client().get(bridge.admin_url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["ready"], true);
    assert!(v["remote_clients"].as_str().unwrap().contains("refused by the gateway"), "{v}");
}
