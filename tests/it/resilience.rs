//! Failure paths through the real binary: client disconnects abort the run
//! upstream, a down gateway answers 503 at once, a gateway that dies
//! mid-stream ends the stream with an error and is reconnected, bad
//! handshakes never hang a request, and SIGTERM drains.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

fn raw_stream_request(bridge: &Bridge, stream: bool) -> TcpStream {
    let body = chat_body(stream, "hi").to_string();
    let mut s = TcpStream::connect(bridge.addr).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

/// A client that goes away (before the first token, mid-stream, or while
/// waiting for a non-stream answer) gets its run aborted with `chat.abort`,
/// and the gateway's run table empties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_aborts_the_run() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    for (case, stream, mode) in [("before first token", true, Mode::Hang), ("non-stream wait", false, Mode::Hang)] {
        gw.set(|b| b.mode = mode);
        let before = gw.aborts().len();
        let mut s = raw_stream_request(&bridge, stream);
        eventually(case, Duration::from_secs(5), || gw.runs_in_flight() == 1).await;
        if stream {
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"), "{case}");
        }
        let dropped = Instant::now();
        drop(s);
        eventually(case, Duration::from_millis(500), || gw.aborts().len() > before).await;
        assert!(dropped.elapsed() < Duration::from_millis(500), "{case}: abort within 500 ms");
        eventually(case, Duration::from_secs(2), || gw.runs_in_flight() == 0).await;
    }
    // Mid-stream: slow deltas, read one content chunk, hang up.
    gw.set(|b| {
        b.mode = Mode::Normal;
        b.reply = Some((0..50).map(|i| format!("w{i} ")).collect());
        b.delta_delay = Duration::from_millis(100);
    });
    let before = gw.aborts().len();
    let mut s = raw_stream_request(&bridge, true);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("\"content\"") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    drop(s);
    eventually("mid-stream abort", Duration::from_millis(500), || gw.aborts().len() > before).await;
    eventually("run table empty", Duration::from_secs(2), || gw.runs_in_flight() == 0).await;
    let m = bridge.metrics().await;
    assert!(m.contains("clawbridge_gateway_aborts_sent_total 3"), "{m}");
}

/// With no gateway at all, a chat request gets a 503 OpenAI error at once,
/// readiness is false, and health still passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_down_is_an_immediate_503() {
    let closed: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let bridge = BridgeOpts::new(closed).no_wait().start().await;
    assert!(!bridge.ready().await);
    let start = Instant::now();
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert!(start.elapsed() < Duration::from_millis(500), "took {:?}", start.elapsed());
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "api_error");
    assert!(!v.to_string().contains(TOKEN));
}

/// The gateway dies mid-stream: the client gets an error event and `[DONE]`
/// within a second; new requests get 503; when the gateway returns, requests
/// succeed again without restarting clawbridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_restart_mid_stream() {
    let gw = gateway().await;
    let addr = gw.addr();
    gw.set(|b| {
        b.reply = Some((0..100).map(|i| format!("w{i} ")).collect());
        b.delta_delay = Duration::from_millis(50);
    });
    let bridge = BridgeOpts::new(addr).start().await;
    let resp = post_chat(&bridge, &chat_body(true, "hi")).await;
    let reader = tokio::spawn(async move { resp.text().await.unwrap() });
    eventually("run started", Duration::from_secs(5), || gw.runs_in_flight() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = Instant::now();
    gw.shutdown().await;
    drop(gw);
    let body = tokio::time::timeout(Duration::from_secs(1), reader).await.expect("stream ended within 1 s").unwrap();
    let events = parse_sse(&body);
    assert_eq!(events.last(), Some(&Sse::Done));
    assert!(
        matches!(&events[events.len() - 2], Sse::Json(v) if v.get("error").is_some()),
        "error event before [DONE]: {events:?}"
    );
    assert!(killed.elapsed() < Duration::from_secs(1));
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 503, "down gateway: immediate 503");
    eventually_ready(&bridge, false).await;

    let gw = demo_gateway::DemoGateway::builder().token(TOKEN).bind(addr.to_string()).start().await.unwrap();
    let back = Instant::now();
    eventually_ready(&bridge, true).await;
    assert!(back.elapsed() < Duration::from_secs(2), "reconnected in {:?}", back.elapsed());
    let r = post_chat(&bridge, &chat_body(false, "again")).await;
    assert_eq!(r.status(), 200);
    drop(gw);
}

async fn eventually_ready(bridge: &Bridge, want: bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if bridge.ready().await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("readiness never became {want}; logs:\n{}", bridge.logs());
}

/// A gateway that never answers `connect`, or that grants no write scope,
/// leaves clawbridge not ready with the reason logged, and requests get a
/// clean 503 rather than a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_handshakes_never_hang_requests() {
    for (mode, needle) in [(HandshakeMode::NeverAnswer, "timed out"), (HandshakeMode::ClearScopes, "operator.write")] {
        let gw = gateway().await;
        gw.set(|b| b.handshake = mode);
        let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_HANDSHAKE_TIMEOUT_MS", "300").no_wait().start().await;
        let start = Instant::now();
        let r = post_chat(&bridge, &chat_body(false, "hi")).await;
        assert_eq!(r.status(), 503, "{mode:?}");
        assert!(start.elapsed() < Duration::from_secs(1), "{mode:?}");
        assert!(!bridge.ready().await);
        let deadline = Instant::now() + Duration::from_secs(3);
        while !bridge.logs().contains(needle) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(bridge.logs().contains(needle), "{mode:?}: logs say why:\n{}", bridge.logs());
    }
}

/// Garbage from the gateway (malformed frames, frames for unknown runs) is
/// dropped and counted; the run still completes and the process stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_gateway_frames_are_dropped() {
    let gw = gateway().await;
    gw.set(|b| {
        b.send_garbage_before_events = Some(0);
        b.reply = Some(vec!["ok".into()]);
    });
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let events = parse_sse(&post_chat(&bridge, &chat_body(true, "hi")).await.text().await.unwrap());
    assert_eq!(content_of(&events), "ok");
    let m = bridge.metrics().await;
    assert!(m.contains("clawbridge_gateway_frames_dropped_total{reason=\"malformed\"} 1"), "{m}");
}

/// SIGTERM: readiness fails first, an open slow stream still completes, and
/// the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_open_streams() {
    let gw = gateway().await;
    gw.set(|b| {
        b.reply = Some((0..10).map(|i| format!("w{i} ")).collect());
        b.delta_delay = Duration::from_millis(100);
    });
    let mut bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_GRACE_PERIOD_SECS", "5").start().await;
    let resp = post_chat(&bridge, &chat_body(true, "hi")).await;
    let reader = tokio::spawn(async move { resp.text().await.unwrap() });
    eventually("run started", Duration::from_secs(5), || gw.runs_in_flight() == 1).await;
    let pid = bridge.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    eventually_ready(&bridge, false).await;
    let body = reader.await.unwrap();
    let events = parse_sse(&body);
    assert_eq!(content_of(&events), (0..10).map(|i| format!("w{i} ")).collect::<String>(), "stream completed");
    assert_eq!(events.last(), Some(&Sse::Done));
    let status = tokio::task::spawn_blocking(move || bridge.wait_exit(Duration::from_secs(10))).await.unwrap();
    assert!(status.is_some(), "process exited after the drain");
}

/// A stream still open at the drain deadline is ended with an error event
/// and `[DONE]`, never cut silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_deadline_ends_streams_with_an_error() {
    let gw = gateway().await;
    gw.set(|b| b.mode = Mode::Hang);
    let mut bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_GRACE_PERIOD_SECS", "2").start().await;
    let resp = post_chat(&bridge, &chat_body(true, "hi")).await;
    let reader = tokio::spawn(async move { resp.text().await.unwrap() });
    eventually("run started", Duration::from_secs(5), || gw.runs_in_flight() == 1).await;
    let pid = bridge.pid().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let body =
        tokio::time::timeout(Duration::from_secs(4), reader).await.expect("ended before the grace period").unwrap();
    let events = parse_sse(&body);
    assert_eq!(events.last(), Some(&Sse::Done));
    assert!(
        matches!(&events[events.len() - 2], Sse::Json(v) if v["error"]["message"] == "Server is shutting down"),
        "{events:?}"
    );
    eventually("upstream abort", Duration::from_secs(2), || !gw.aborts().is_empty()).await;
    let _ = tokio::task::spawn_blocking(move || bridge.wait_exit(Duration::from_secs(10))).await;
}
