//! Gateway faults with several clients in flight: the gateway killed under
//! concurrent streams and a non-stream wait, a gateway that goes silent
//! (no tick for two intervals), and what each leaves behind (nothing).

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::Value;

fn gauge(metrics: &str, name: &str) -> Option<i64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn ready_is(bridge: &Bridge, want: bool, deadline: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if bridge.ready().await == want {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("readiness never became {want} within {deadline:?}; logs:\n{}", bridge.logs());
}

/// The gateway is killed with four streams and one non-stream request in
/// flight: every stream gets an error event and `[DONE]` within 1 s, the
/// non-stream client a 502 with an OpenAI error body; while it is down new
/// requests get 503 at once and readiness is false; within 2 s of its
/// return requests succeed; no per-run state is left anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_under_concurrent_clients() {
    let gw = gateway().await;
    let addr = gw.addr();
    gw.set(|b| {
        b.reply = Some((0..200).map(|i| format!("w{i} ")).collect());
        b.delta_delay = Duration::from_millis(50);
    });
    let bridge = BridgeOpts::new(addr).start().await;
    let mut streams = Vec::new();
    for i in 0..4 {
        let resp = post_chat(&bridge, &chat_body(true, &format!("s{i}"))).await;
        assert_eq!(resp.status(), 200);
        streams.push(tokio::spawn(async move { resp.text().await.unwrap() }));
    }
    let url = bridge.chat_url();
    let plain = tokio::spawn(async move {
        let r = client().post(url).bearer_auth(TOKEN).json(&chat_body(false, "plain")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    eventually("five runs upstream", Duration::from_secs(5), || gw.runs_in_flight() == 5).await;
    let m = bridge.metrics().await;
    assert_eq!(gauge(&m, "clawbridge_chat_inflight_runs"), Some(5), "{m}");
    assert_eq!(gauge(&m, "clawbridge_chat_inflight_streams"), Some(4), "{m}");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let killed = Instant::now();
    gw.shutdown().await;
    drop(gw);
    for s in streams {
        let body = tokio::time::timeout(Duration::from_secs(1).saturating_sub(killed.elapsed()), s)
            .await
            .expect("stream ended within 1 s of the kill")
            .unwrap();
        let events = parse_sse(&body);
        assert_eq!(events.last(), Some(&Sse::Done), "{body}");
        assert!(
            matches!(&events[events.len() - 2], Sse::Json(v) if v["error"]["type"] == "api_error"),
            "error event before [DONE]: {events:?}"
        );
        assert!(!content_of(&events).is_empty(), "some content came before the kill");
    }
    let (status, body) = tokio::time::timeout(Duration::from_secs(1), plain).await.expect("502 within 1 s").unwrap();
    assert_eq!(status, 502, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"]["message"].is_string() && v["error"]["type"] == "api_error", "{v}");
    assert!(killed.elapsed() < Duration::from_millis(1500));

    // Down: immediate 503s (stream and not), readiness false.
    for stream in [false, true] {
        let t = Instant::now();
        let r = post_chat(&bridge, &chat_body(stream, "down")).await;
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
    }
    ready_is(&bridge, false, Duration::from_secs(2)).await;
    let m = bridge.metrics_when(idle).await;
    assert_eq!(gauge(&m, "clawbridge_chat_inflight_runs"), Some(0), "{m}");
    assert_eq!(gauge(&m, "clawbridge_chat_inflight_streams"), Some(0), "{m}");
    assert_eq!(gauge(&m, "clawbridge_gateway_connected"), Some(0), "{m}");

    // Back: ready and serving within 2 s.
    let gw = DemoGateway::builder().token(TOKEN).bind(addr.to_string()).start().await.unwrap();
    let back = Instant::now();
    ready_is(&bridge, true, Duration::from_secs(2)).await;
    let mut ok = false;
    while back.elapsed() < Duration::from_secs(2) && !ok {
        ok = post_chat(&bridge, &chat_body(false, "again")).await.status() == 200;
    }
    assert!(ok, "serving again within 2 s");
    let resp = post_chat(&bridge, &chat_body(true, "again")).await;
    assert_eq!(parse_sse(&resp.text().await.unwrap()).last(), Some(&Sse::Done));
    eventually("gateway run table empty", Duration::from_secs(2), || gw.runs_in_flight() == 0).await;
    let m = bridge.metrics_when(idle).await;
    assert_eq!(gauge(&m, "clawbridge_chat_inflight_runs"), Some(0), "{m}");
    assert_eq!(gauge(&m, "clawbridge_chat_inflight_streams"), Some(0), "{m}");
}

/// No chat request in flight, by the gauges.
fn idle(m: &str) -> bool {
    gauge(m, "clawbridge_chat_inflight_runs") == Some(0) && gauge(m, "clawbridge_chat_inflight_streams") == Some(0)
}

/// A gateway that stops sending anything (no tick for two tick intervals)
/// is declared dead and replaced; the runs on it fail cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_gateway_is_replaced() {
    let gw = DemoGateway::builder().token(TOKEN).tick_interval(Duration::from_millis(300)).start().await.unwrap();
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    assert_eq!(post_chat(&bridge, &chat_body(false, "hi")).await.status(), 200);
    // Silent, and the runs never end: the accept `res` still comes, then
    // nothing at all.
    gw.set(|b| {
        b.silent = true;
        b.mode = Mode::Hang;
    });
    let silenced = Instant::now();
    let (sb, pb) = (chat_body(true, "hi"), chat_body(false, "hi"));
    let (stream, plain) = tokio::join!(post_chat(&bridge, &sb), post_chat(&bridge, &pb));
    let stream_body = stream.text().await.unwrap();
    let took = silenced.elapsed();
    let events = parse_sse(&stream_body);
    assert_eq!(events.last(), Some(&Sse::Done));
    assert!(matches!(&events[events.len() - 2], Sse::Json(v) if v.get("error").is_some()), "{events:?}");
    assert_eq!(plain.status(), 502);
    assert!(took < Duration::from_secs(3), "declared dead after {took:?} (2 x 300 ms ticks)");
    eventually("logged", Duration::from_secs(2), || bridge.logs().contains("2 tick intervals")).await;
    // Reconnected (the new link stays silent too, so it is dropped again and
    // again); once the gateway speaks, clawbridge serves.
    gw.set(|b| {
        b.silent = false;
        b.mode = Mode::Normal;
    });
    bridge.wait_admin("/readyz", Duration::from_secs(5)).await;
    let start = Instant::now();
    let mut status = 0;
    while start.elapsed() < Duration::from_secs(3) && status != 200 {
        status = post_chat(&bridge, &chat_body(false, "back")).await.status().as_u16();
    }
    assert_eq!(status, 200);
    assert!(gw.received_methods().get("connect").copied().unwrap_or(0) >= 2, "the link was replaced");
    eventually("run table empty", Duration::from_secs(2), || gw.runs_in_flight() == 0).await;
    let m = bridge.metrics_when(idle).await;
    assert_eq!(gauge(&m, "clawbridge_chat_inflight_runs"), Some(0), "{m}");
}

/// A client that reads as fast as it can keeps its stream through a burst of
/// thousands of back-to-back events: the per-run buffer is bounded in bytes
/// (`limits.run_buffer_bytes`), not in events, so only a reader that really
/// fell behind is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_does_not_cut_a_reading_stream() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let words: Vec<String> = (0..5000).map(|i| format!("w{i} ")).collect();
    gw.set(|b| {
        b.reply = Some(words.clone());
        b.assistant_form = AssistantForm::DeltaOnly;
    });
    for _ in 0..3 {
        let events = parse_sse(&post_chat(&bridge, &chat_body(true, "hi")).await.text().await.unwrap());
        assert_eq!(content_of(&events), words.concat(), "stream cut: last events {:?}", &events[events.len() - 2..]);
    }
}
