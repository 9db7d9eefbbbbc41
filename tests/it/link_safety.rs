//! One request cannot break the link every run shares: a request whose
//! `agent` frame would be over the gateway's `maxPayload` is refused (413)
//! and never sent; a gateway frame over `limits.max_frame_bytes` stops only
//! its own run; a reply of several MiB arrives whole; a client that reads
//! too slowly is told so. Each beside a live stream that must finish intact
//! on the same link.

use std::time::{Duration, Instant};

use crate::common::raw::RawConn;
use crate::common::*;
use serde_json::Value;

/// A stream of 20 words, 60 ms apart, running while something else happens.
fn live_reply() -> Vec<String> {
    (0..20).map(|i| format!("w{i} ")).collect()
}

fn live_gateway_knobs(b: &mut demo_gateway::Behaviour) {
    b.reply = Some(live_reply());
    b.delta_delay = Duration::from_millis(60);
}

/// Starts the live stream; its run is upstream when this returns.
async fn start_live_stream(bridge: &Bridge, gw: &DemoGateway) -> tokio::task::JoinHandle<String> {
    let before = gw.runs_in_flight();
    let resp = post_chat(bridge, &chat_body(true, "live")).await;
    assert_eq!(resp.status(), 200);
    let reader = tokio::spawn(async move { resp.text().await.unwrap() });
    eventually("live run upstream", Duration::from_secs(5), || gw.runs_in_flight() > before).await;
    reader
}

/// The live stream finished with every word, a finish chunk and `[DONE]`.
async fn assert_live_stream_intact(reader: tokio::task::JoinHandle<String>) {
    let body = tokio::time::timeout(Duration::from_secs(20), reader).await.expect("live stream ended").unwrap();
    let events = parse_sse(&body);
    assert_eq!(content_of(&events), live_reply().concat(), "live stream intact: {body}");
    assert_eq!(events.last(), Some(&Sse::Done), "{body}");
    assert!(!body.contains("\"error\""), "{body}");
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0)
}

/// `{"messages":[{"role":"user","content":"<n bytes of 0xFF>"}]}`: under
/// the 20 MiB body limit, but each invalid byte becomes U+FFFD (3 bytes) in
/// the frame sent to the gateway.
fn invalid_utf8_body(stream: bool, n: usize) -> Vec<u8> {
    let mut body =
        format!(r#"{{"model":"openclaw","stream":{stream},"messages":[{{"role":"user","content":""#).into_bytes();
    body.extend(std::iter::repeat_n(0xFFu8, n));
    body.extend_from_slice(br#""}]}"#);
    body
}

/// 9 MiB of invalid UTF-8 is 27 MiB once encoded for the gateway, over its
/// 25 MiB `maxPayload`: sent, the gateway would close the shared link
/// (1009) and every stream on it would fail. It gets a 413 saying so, in
/// stream and non-stream mode, and the gateway never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_over_the_gateway_frame_limit_is_refused_not_sent() {
    let gw = gateway().await;
    gw.set(live_gateway_knobs);
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let live = start_live_stream(&bridge, &gw).await;
    for stream in [false, true] {
        let r = client()
            .post(bridge.chat_url())
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(invalid_utf8_body(stream, 9 * 1024 * 1024))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "stream={stream}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with("Request too large for the gateway: it is "), "{msg}");
        assert!(msg.contains("over the gateway's 26214400-byte frame limit"), "{msg}");
        let bytes: usize = msg.split("it is ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!(bytes > 27 * 1024 * 1024, "{msg}");
    }
    assert_live_stream_intact(live).await;
    assert_eq!(gw.received_methods().get("agent"), Some(&1), "only the live run reached the gateway");
    assert_eq!(gw.connection_count(), 1);
    let m = bridge.metrics_when(|m| m.contains("outcome=\"request_too_large\"")).await;
    assert_eq!(counter(&m, "clawbridge_gateway_reconnects_total"), 0, "{m}");
    assert!(m.contains("outcome=\"request_too_large\""), "{m}");
    assert!(gw.aborts().is_empty(), "nothing to abort: {:?}", gw.aborts());
}

/// The limit is the `maxPayload` the gateway announced in `hello-ok`, in
/// the bytes the gateway reads; a request under it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_is_the_announced_max_payload() {
    let gw = demo_gateway::DemoGateway::builder()
        .token(TOKEN)
        .configure(|b| b.max_payload = 64 * 1024)
        .start()
        .await
        .unwrap();
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    // 30,000 × "é" is 60,000 bytes of UTF-8: over 64 KiB only with the frame around it.
    let r = post_chat(&bridge, &chat_body(false, &"é".repeat(30_000))).await;
    assert_eq!(r.status(), 200);
    let r = post_chat(&bridge, &chat_body(false, &"é".repeat(33_000))).await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("over the gateway's 65536-byte frame limit"), "{v}");
    let r = post_chat(&bridge, &chat_body(false, "after")).await;
    assert_eq!(r.status(), 200, "the link is unharmed");
    assert_eq!(gw.connection_count(), 1);
}

/// A gateway frame over `limits.max_frame_bytes` for one run (an assistant
/// event of 1.5 MiB against a 1 MiB limit) stops that run with an error
/// saying so, stream and non-stream, and `chat.abort` reaches the gateway;
/// the live stream on the same link and later requests are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_stops_only_its_run() {
    let gw = gateway().await;
    gw.set(live_gateway_knobs);
    let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_MAX_FRAME_BYTES", "1048576").start().await;
    let live = start_live_stream(&bridge, &gw).await;
    gw.set(|b| {
        b.oversized_run_event = Some(1536 * 1024);
        b.reply = Some(vec!["never ".into(), "seen".into()]);
        b.delta_delay = Duration::ZERO;
    });
    let (sb, pb) = (chat_body(true, "big"), chat_body(false, "big"));
    let (stream, plain) = tokio::join!(post_chat(&bridge, &sb), post_chat(&bridge, &pb));
    let want = "for this run, over clawbridge's 1048576-byte frame limit (limits.max_frame_bytes); the run was stopped";
    assert_eq!(plain.status(), 502);
    let v: Value = plain.json().await.unwrap();
    assert_eq!(v["error"]["type"], "api_error", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(want), "{v}");
    assert_eq!(stream.status(), 200);
    let events = parse_sse(&stream.text().await.unwrap());
    assert_eq!(events.last(), Some(&Sse::Done));
    assert!(
        matches!(&events[events.len() - 2], Sse::Json(v) if v["error"]["message"].as_str().unwrap().contains(want)),
        "{events:?}"
    );
    assert!(!content_of(&events).contains("seen"), "{events:?}");
    assert_live_stream_intact(live).await;
    eventually("both stopped runs aborted upstream", Duration::from_secs(3), || gw.aborts().len() >= 2).await;
    gw.set(|b| b.oversized_run_event = None);
    let r = post_chat(&bridge, &chat_body(false, "after")).await;
    assert_eq!(r.status(), 200);
    let m = bridge.metrics_when(|m| m.contains("clawbridge_chat_inflight_runs 0")).await;
    assert_eq!(counter(&m, "clawbridge_gateway_reconnects_total"), 0, "the link was never replaced: {m}");
    assert!(counter(&m, "clawbridge_gateway_frames_dropped_total{reason=\"oversized\"}") >= 2, "{m}");
    assert!(m.contains("outcome=\"frame_too_large\""), "{m}");
    assert_eq!(gw.connection_count(), 1);
}

/// An 8 MiB reply, in eight 1 MiB deltas back to back, each event carrying
/// the whole text so far (as the gateway sends them): whole in stream mode
/// (one chunk per delta) and non-stream mode, with the default 1 MiB
/// `limits.run_buffer_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_mib_reply_arrives_whole() {
    let gw = gateway().await;
    let deltas: Vec<String> =
        (0..8).map(|i| format!("[{i}]{}", char::from(b'a' + i as u8).to_string().repeat(1 << 20))).collect();
    let whole = deltas.concat();
    gw.set(|b| b.reply = Some(deltas.clone()));
    // One at a time, and patient: ~60 MiB of frames per run through debug
    // builds on a machine that may be running the rest of the suite.
    let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_ACCEPT_TIMEOUT_MS", "60000").start().await;
    let started = Instant::now();
    let patient = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let post =
        |stream: bool| patient.post(bridge.chat_url()).bearer_auth(TOKEN).json(&chat_body(stream, "long")).send();
    let plain = post(false).await.unwrap();
    assert_eq!(plain.status(), 200);
    let v: Value = plain.json().await.unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap_or_else(|| panic!("{v:.200}"));
    assert!(content == whole, "non-stream: {} bytes of {}", content.len(), whole.len());
    let stream = post(true).await.unwrap();
    assert_eq!(stream.status(), 200);
    let events = parse_sse(&stream.text().await.unwrap());
    let streamed = content_of(&events);
    assert!(streamed == whole, "stream: {} bytes of {}; last {:?}", streamed.len(), whole.len(), events.last());
    let chunks =
        events.iter().filter(|e| matches!(e, Sse::Json(v) if v["choices"][0]["delta"]["content"].is_string())).count();
    assert_eq!(chunks, 8, "one chunk per delta");
    assert_eq!(events.last(), Some(&Sse::Done));
    eprintln!("8 MiB reply, stream + non-stream: {:?}", started.elapsed());
    let m = bridge.metrics().await;
    assert_eq!(counter(&m, "clawbridge_gateway_frames_dropped_total{reason=\"slow_reader\"}"), 0, "{}", bridge.logs());
}

/// A client that stops reading a fast stream is cut off as before, and when
/// it reads again it is told why: it read too slowly, not that the link was
/// lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_told_it_read_too_slowly() {
    let gw = gateway().await;
    gw.set(|b| {
        b.assistant_form = AssistantForm::DeltaOnly;
        b.reply = Some((0..1200).map(|i| format!("{i:05}{}", "x".repeat(8187))).collect());
    });
    let bridge = BridgeOpts::new(gw.addr())
        .env("CLAWBRIDGE_RUN_BUFFER_BYTES", "65536")
        .env("CLAWBRIDGE_WRITE_TIMEOUT_MS", "20000")
        .start()
        .await;
    let mut c = RawConn::connect_small_window(bridge.addr, 4096).await.unwrap();
    let body = chat_body(true, "flood").to_string();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert!(c.write_now(req.as_bytes()).await);
    eventually("the run is cut and aborted", Duration::from_secs(10), || !gw.aborts().is_empty()).await;
    let r = c.read(false, Duration::from_secs(10)).await.unwrap();
    let events = parse_sse(&r.text());
    assert_eq!(events.last(), Some(&Sse::Done));
    let Sse::Json(err) = &events[events.len() - 2] else { panic!("{:?}", &events[events.len() - 2]) };
    assert_eq!(
        err["error"]["message"],
        "the client read the reply too slowly: over 65536 bytes of it were waiting (limits.run_buffer_bytes); the run was stopped"
    );
    let m = bridge.metrics_when(|m| m.contains("outcome=\"slow_reader\"")).await;
    assert!(m.contains("outcome=\"slow_reader\""), "{m}");
}
