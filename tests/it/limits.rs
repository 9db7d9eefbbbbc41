//! Every limit of `conf/clawbridge.yaml`, enforced through the real binary:
//! body size and read time, header size (431), connection deadlines (head,
//! keep-alive idle, whole request), run deadline, gateway
//! handshake timeout, concurrent runs, gateway frame size, and the bounded
//! per-run buffer with the write timeout for clients that stop reading.

use std::time::{Duration, Instant};

use crate::common::raw::{assert_openai_error, valid_chat_request, RawConn};
use crate::common::*;
use serde_json::Value;

fn chat_head(len: Option<usize>, extra: &str) -> String {
    let cl = len.map(|n| format!("Content-Length: {n}\r\n")).unwrap_or_default();
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n{cl}{extra}\r\n"
    )
}

async fn eventually_async<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not true within {deadline:?}");
}

/// `limits.max_body_bytes` (413, with and without Content-Length, and the
/// connection is closed) and `limits.body_timeout_ms` (a client that sends
/// its body slowly gets 408 and its connection is freed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_size_and_body_time() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr())
        .env("CLAWBRIDGE_MAX_BODY_BYTES", "1000")
        .env("CLAWBRIDGE_BODY_TIMEOUT_MS", "500")
        .start()
        .await;
    let big = format!(r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#, "a".repeat(1000));
    // Declared too large: refused before the body is read.
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    let r = c.send_and_read(chat_head(Some(big.len()), "").into_bytes(), false, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 413);
    assert_openai_error("413 declared", &r);
    assert!(r.closed, "connection: close after an unread body");
    // Chunked, no Content-Length: refused once the limit is crossed.
    let mut req = chat_head(None, "Transfer-Encoding: chunked\r\n").into_bytes();
    for piece in big.as_bytes().chunks(300) {
        req.extend(format!("{:x}\r\n", piece.len()).into_bytes());
        req.extend_from_slice(piece);
        req.extend(b"\r\n");
    }
    req.extend(b"0\r\n\r\n");
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    let r = c.send_and_read(req, false, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 413);
    assert_openai_error("413 chunked", &r);
    // At the limit exactly: accepted.
    let overhead = r#"{"messages":[{"role":"user","content":""}]}"#.len();
    let fits = format!(r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#, "a".repeat(1000 - overhead));
    assert_eq!(fits.len(), 1000);
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    let mut req = chat_head(Some(fits.len()), "").into_bytes();
    req.extend(fits.as_bytes());
    let r = c.send_and_read(req, false, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    // Slow body: one byte every 100 ms against a 500 ms budget.
    let body = chat_body(false, "slow").to_string();
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    assert!(c.write_now(chat_head(Some(body.len()), "").as_bytes()).await);
    let started = Instant::now();
    let drip = async {
        for b in body.as_bytes() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = c.write_now(&[*b]).await;
            if started.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        c
    };
    let mut c = drip.await;
    let r = c.read(false, Duration::from_secs(2)).await.unwrap();
    assert_eq!(r.status, 408);
    assert_openai_error("408", &r);
    assert!(r.closed, "the slow client's connection is closed");
    assert!(c.closed_within(Duration::from_secs(2)).await, "connection freed");

    // Body never sent at all.
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    let sent = Instant::now();
    let r = c.send_and_read(chat_head(Some(50), "").into_bytes(), false, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 408);
    assert!(sent.elapsed() < Duration::from_secs(2), "408 after {:?}", sent.elapsed());
    assert_eq!(gw.runs_in_flight(), 0);
}

/// `limits.max_header_bytes` (16 KiB, Node's `maxHeaderSize`): a bigger
/// head gets Node's raw 431 and a closed connection, on the chat route and on
/// passthrough, before Pingora buffers it (it would take 1 MiB); a head just
/// under the limit is served. More than 256 header lines still get Pingora's
/// empty 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_a_431() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    for (what, head) in [
        ("chat, 100 KB header", chat_head(Some(0), &format!("X-Big: {}\r\n", "a".repeat(100_000)))),
        ("chat, 16.4 KB header", chat_head(Some(0), &format!("X-Big: {}\r\n", "a".repeat(16_400)))),
        ("passthrough, 1.1 MiB", format!("GET /x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(1100 * 1024))),
        ("passthrough, 17 KB request line", format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(17_000))),
    ] {
        let mut c = RawConn::connect(bridge.addr).await.unwrap();
        let r = c.send_and_read(head.into_bytes(), false, Duration::from_secs(5)).await.unwrap();
        assert_eq!(r.status, 431, "{what}");
        assert!(r.closed && r.body.is_empty(), "{what}");
    }
    let body = serde_json::json!({"model":"openclaw","messages":[{"role":"user","content":"hi"}]}).to_string();
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    let mut req = chat_head(Some(body.len()), &format!("X-Big: {}\r\n", "a".repeat(16_000))).into_bytes();
    req.extend_from_slice(body.as_bytes());
    let r = c.send_and_read(req, false, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 200, "a head under 16 KiB is served: {}", r.text());
    let extra: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    let r = c.send_and_read(chat_head(Some(0), &extra).into_bytes(), false, Duration::from_secs(5)).await.unwrap();
    assert_eq!((r.status, r.closed), (400, true), "300 headers");
}

/// Short deadlines for the connection tests.
fn deadline_bridge(gw: &DemoGateway) -> BridgeOpts {
    BridgeOpts::new(gw.addr())
        .env("CLAWBRIDGE_HEADERS_TIMEOUT_MS", "1000")
        .env("CLAWBRIDGE_KEEPALIVE_TIMEOUT_MS", "500")
        .env("CLAWBRIDGE_REQUEST_TIMEOUT_MS", "2000")
        .env("CLAWBRIDGE_BODY_TIMEOUT_MS", "10000")
}

/// Writes `bytes` one at a time, `gap` apart, until the connection closes.
async fn trickle(c: &mut RawConn, bytes: &[u8], gap: Duration) {
    for b in bytes {
        if !c.write_now(&[*b]).await {
            return;
        }
        tokio::time::sleep(gap).await;
    }
}

/// `limits.headers_timeout_ms`, `limits.keepalive_timeout_ms` and
/// `limits.request_timeout_ms`, as Node's server enforces them: a silent new
/// connection, a head that never ends and a head trickled a byte at a time
/// all get a raw 408 at the headers deadline (counted from the accept);
/// an idle kept-alive connection is closed without a word after the
/// keep-alive time (and not before); a trickled body gets 408 at the request
/// deadline, on the chat route before its own (longer) body timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_deadlines() {
    let gw = gateway().await;
    let bridge = deadline_bridge(&gw).start().await;
    let timed_408 =
        |what: &'static str, r: Result<crate::common::raw::RawResponse, String>, start: Instant, lo: u64, hi: u64| {
            let r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
            let took = start.elapsed();
            assert_eq!(r.status, 408, "{what}");
            assert!(r.closed && r.body.is_empty(), "{what}");
            assert!(took >= Duration::from_millis(lo) && took < Duration::from_millis(hi), "{what}: after {took:?}");
        };

    let start = Instant::now();
    let mut silent = RawConn::connect(bridge.addr).await.unwrap();
    timed_408("silent", silent.read(false, Duration::from_secs(5)).await, start, 900, 1800);

    let start = Instant::now();
    let mut partial = RawConn::connect(bridge.addr).await.unwrap();
    assert!(partial.write_now(b"GET /x HTTP/1.1\r\nHost: x\r\n").await);
    timed_408("partial head", partial.read(false, Duration::from_secs(5)).await, start, 900, 1800);

    // A byte every 100 ms: each read is quick, the head never ends.
    let start = Instant::now();
    let mut trickled = RawConn::connect(bridge.addr).await.unwrap();
    trickle(&mut trickled, b"GET /x H", Duration::from_millis(100)).await;
    let r = trickled.read(false, Duration::from_secs(3)).await;
    timed_408("trickled head", r, start, 900, 1800);

    // Kept alive after an answer, then idle: closed quietly after ~500 ms.
    let mut idle = RawConn::connect(bridge.addr).await.unwrap();
    let r = idle.send_and_read(valid_chat_request(TOKEN, "hi"), false, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.closed);
    assert_eq!(r.header("keep-alive"), Some("timeout=0"), "advertises the configured idle time (floored seconds)");
    let start = Instant::now();
    assert!(!idle.closed_within(Duration::from_millis(300)).await, "closed before the keep-alive time");
    assert!(idle.closed_within(Duration::from_secs(2)).await, "idle connection never closed");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(400) && took < Duration::from_millis(1200), "idle closed after {took:?}");

    // A trickled chat body: the request deadline (2 s) comes before the
    // chat route's own body timeout (10 s).
    let start = Instant::now();
    let mut slow = RawConn::connect(bridge.addr).await.unwrap();
    assert!(slow.write_now(chat_head(Some(1000), "").as_bytes()).await);
    trickle(&mut slow, &[b' '; 18], Duration::from_millis(100)).await;
    let r = slow.read(false, Duration::from_secs(3)).await;
    timed_408("trickled chat body", r, start, 1900, 3000);

    // Served normally afterwards, and a stream that lasts longer than the
    // request deadline is not cut: the deadline ends with the body.
    gw.set(|b| b.delta_delay = Duration::from_millis(300));
    let r = post_chat(&bridge, &chat_body(true, "one two three four five six seven eight nine ten")).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("data: [DONE]"), "stream cut: {text}");
}

/// Thousands of idle and trickling connections cost bounded memory and are
/// all closed by the deadlines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_and_trickling_connections_are_bounded_and_closed() {
    const N: usize = 2000;
    let gw = gateway().await;
    let bridge = deadline_bridge(&gw).env("CLAWBRIDGE_HEADERS_TIMEOUT_MS", "3000").start().await;
    let before = rss_kib(bridge.pid());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..N {
        let addr = bridge.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = RawConn::connect(addr).await.expect("connect");
            if i % 2 == 1 {
                // Trickling: a header line, one byte every 200 ms.
                let line = b"GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
                let t = trickle(&mut c, line, Duration::from_millis(200));
                tokio::select! { _ = t => {}, _ = tokio::time::sleep(Duration::from_secs(8)) => {} }
            }
            c.closed_within(Duration::from_secs(10)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let open = rss_kib(bridge.pid());
    let mut closed = 0;
    for t in tasks {
        closed += usize::from(t.await.unwrap());
    }
    let took = start.elapsed();
    eprintln!("{N} connections: RSS {before} KiB -> {open} KiB while open; all closed after {took:?}");
    assert_eq!(closed, N, "connections left open");
    assert!(took < Duration::from_secs(8), "closed after {took:?}");
    assert!(open.saturating_sub(before) < 64 * 1024, "RSS grew from {before} to {open} KiB");
    let r = post_chat(&bridge, &chat_body(false, "still here")).await;
    assert_eq!(r.status(), 200);
}

/// `limits.run_timeout_secs`: a run that never ends gets an error event and
/// `[DONE]` (stream) or a 504 (non-stream), and `chat.abort` upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_timeout_ends_and_aborts() {
    let gw = gateway().await;
    gw.set(|b| b.mode = Mode::Hang);
    let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_RUN_TIMEOUT_SECS", "1").start().await;
    let start = Instant::now();
    let (sb, pb) = (chat_body(true, "hi"), chat_body(false, "hi"));
    let (stream, plain) = tokio::join!(post_chat(&bridge, &sb), post_chat(&bridge, &pb));
    assert_eq!(plain.status(), 504);
    let v: Value = plain.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"error":{"message":"upstream provider timeout","type":"api_error"}}));
    assert_eq!(stream.status(), 200);
    let events = parse_sse(&stream.text().await.unwrap());
    assert_eq!(events.last(), Some(&Sse::Done));
    assert!(
        matches!(&events[events.len() - 2], Sse::Json(v) if v["error"]["message"] == "upstream provider timeout"),
        "{events:?}"
    );
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "{took:?}");
    eventually("both runs aborted upstream", Duration::from_secs(2), || gw.aborts().len() >= 2).await;
    eventually("run table empty", Duration::from_secs(2), || gw.runs_in_flight() == 0).await;
}

/// `limits.handshake_timeout_ms`: a gateway that never answers `connect` is
/// given up on after the timeout and retried; once it answers, clawbridge
/// becomes ready without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_timeout_then_recovery() {
    let gw = gateway().await;
    gw.set(|b| b.handshake = HandshakeMode::NeverAnswer);
    let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_HANDSHAKE_TIMEOUT_MS", "300").no_wait().start().await;
    eventually("timeout logged", Duration::from_secs(3), || bridge.logs().contains("timed out after 300 ms")).await;
    assert!(!bridge.ready().await);
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 503);
    gw.set(|b| b.handshake = HandshakeMode::Normal);
    bridge.wait_admin("/readyz", Duration::from_secs(5)).await;
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 200);
    let m = bridge.metrics().await;
    assert!(!m.contains("clawbridge_gateway_handshake_failures_total 0"), "{m}");
}

/// `limits.max_concurrent_runs`: with 2, a third concurrent request gets a
/// clean 503 with `Retry-After`; a freed slot is usable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_are_capped() {
    let gw = gateway().await;
    gw.set(|b| b.mode = Mode::Hang);
    let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_MAX_CONCURRENT_RUNS", "2").start().await;
    let mut held = Vec::new();
    for stream in [true, false] {
        let mut c = RawConn::connect(bridge.addr).await.unwrap();
        let body = chat_body(stream, "hold").to_string();
        let mut req = chat_head(Some(body.len()), "").into_bytes();
        req.extend(body.as_bytes());
        assert!(c.write_now(&req).await);
        held.push(c);
    }
    eventually("two runs upstream", Duration::from_secs(5), || gw.runs_in_flight() == 2).await;
    for stream in [false, true] {
        let r = post_chat(&bridge, &chat_body(stream, "third")).await;
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, serde_json::json!({"error":{"message":"Too many concurrent requests","type":"api_error"}}));
    }
    assert_eq!(gw.runs_in_flight(), 2, "the refused requests never reached the gateway");
    held.pop();
    eventually("slot freed", Duration::from_secs(2), || gw.runs_in_flight() == 1).await;
    gw.set(|b| b.mode = Mode::Normal);
    eventually_async("a freed slot is usable", Duration::from_secs(2), || async {
        post_chat(&bridge, &chat_body(false, "again")).await.status() == 200
    })
    .await;
    drop(held);
    eventually("run table empty", Duration::from_secs(2), || gw.runs_in_flight() == 0).await;
}

/// `limits.max_frame_bytes`: a gateway frame over the limit that belongs to
/// no run of this link is dropped (counted as `oversized`) and the link
/// serves on; one over the transport bound (twice the limit), which the
/// socket cannot skip, resets the link, and every run on it is told that,
/// not just "connection lost". Malformed frames and frames for unknown
/// runs on the way are dropped without harm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_gateway_frames() {
    let gw = gateway().await;
    // Over 16 KiB, under the 32 KiB transport bound, for no run of ours.
    gw.set(|b| b.send_garbage_before_events = Some(24 * 1024));
    let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_MAX_FRAME_BYTES", "16384").start().await;
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 200, "dropped, the link serves on");
    let m = bridge.metrics().await;
    assert!(m.contains("clawbridge_gateway_frames_dropped_total{reason=\"oversized\"} 1"), "{m}");
    assert!(m.contains("clawbridge_gateway_reconnects_total 0"), "{m}");

    gw.set(|b| b.send_garbage_before_events = Some(64 * 1024));
    let stream = post_chat(&bridge, &chat_body(true, "hi")).await;
    let plain = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(stream.status(), 200);
    let events = parse_sse(&stream.text().await.unwrap());
    assert_eq!(events.last(), Some(&Sse::Done));
    let want = "upstream gateway connection lost: the gateway sent a frame over clawbridge's 32768-byte transport limit (2 x limits.max_frame_bytes), so the shared link was reset";
    assert!(matches!(&events[events.len() - 2], Sse::Json(v) if v["error"]["message"] == want), "{events:?}");
    // The second request raced the drop: refused (503) or failed (502),
    // never hung; or, if it started after the reconnect, it hit the same
    // oversized frame.
    assert!([502, 503].contains(&plain.status().as_u16()), "{}", plain.status());
    let m = bridge.metrics().await;
    assert!(m.contains("clawbridge_gateway_frames_dropped_total{reason=\"oversized\"}"), "{m}");
    assert!(bridge.logs().contains("gateway frame over the 32768-byte transport bound"), "{}", bridge.logs());
    gw.set(|b| b.send_garbage_before_events = Some(0));
    bridge.wait_admin("/readyz", Duration::from_secs(5)).await;
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 200, "link replaced");
    let m = bridge.metrics_when(|m| m.contains("clawbridge_chat_inflight_runs 0")).await;
    assert!(m.contains("clawbridge_gateway_frames_dropped_total{reason=\"malformed\"}"), "{m}");
    assert!(m.contains("clawbridge_chat_inflight_runs 0"), "{m}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `limits.run_buffer_bytes` + `limits.write_timeout_ms`: a client that
/// stops reading a big, fast stream does not grow clawbridge's memory; its
/// run is cut loose, the write times out, and `chat.abort` reaches the
/// gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_bounded_and_aborted() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr())
        .env("CLAWBRIDGE_RUN_BUFFER_BYTES", "65536")
        .env("CLAWBRIDGE_WRITE_TIMEOUT_MS", "500")
        .start()
        .await;
    // Warm up, then measure.
    assert_eq!(post_chat(&bridge, &chat_body(false, "warm")).await.status(), 200);
    // ~10 MiB of deltas, back to back, in delta-only form (no cumulative
    // text): more than the socket buffers between clawbridge and a client
    // with a 4 KiB receive window hold.
    gw.set(|b| {
        b.assistant_form = AssistantForm::DeltaOnly;
        b.reply = Some((0..1200).map(|i| format!("{i:05}{}", "x".repeat(8187))).collect());
    });
    let rss_before = rss_kib(bridge.pid());
    let mut c = RawConn::connect_small_window(bridge.addr, 4096).await.unwrap();
    let body = chat_body(true, "flood").to_string();
    let mut req = chat_head(Some(body.len()), "").into_bytes();
    req.extend(body.as_bytes());
    assert!(c.write_now(&req).await);
    // Never read. The abort must come while the gateway still streams.
    let aborts_before = gw.aborts().len();
    let mut peak = rss_before;
    let start = Instant::now();
    while gw.aborts().len() == aborts_before && start.elapsed() < Duration::from_secs(10) {
        peak = peak.max(rss_kib(bridge.pid()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.aborts().len() > aborts_before, "no chat.abort within 10 s; logs:\n{}", bridge.logs());
    eventually("run table empty", Duration::from_secs(5), || gw.runs_in_flight() == 0).await;
    let grew = peak.saturating_sub(rss_before);
    eprintln!("slow reader: RSS {rss_before} KiB -> peak {peak} KiB (+{grew} KiB), abort after {:?}", start.elapsed());
    // The gateway's final `res` repeats the whole 10 MiB text (one ~20 MiB
    // frame, under max_frame_bytes); nothing grows with the stalled stream.
    assert!(grew < 64 * 1024, "RSS grew by {grew} KiB for one stalled 10 MiB stream");
    let m = bridge
        .metrics_when(|m| {
            m.contains("clawbridge_chat_inflight_streams 0") && m.contains("clawbridge_chat_inflight_runs 0")
        })
        .await;
    assert!(m.contains("clawbridge_chat_inflight_streams 0"), "{m}");
    assert!(m.contains("clawbridge_chat_inflight_runs 0"), "{m}");
    drop(c);
    // Still serving.
    gw.set(|b| b.reply = None);
    bridge.wait_admin("/readyz", Duration::from_secs(5)).await;
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    let r = c.send_and_read(valid_chat_request(TOKEN, "after"), false, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A body of `n` short messages (44 bytes each) then `tail` (more fields).
fn many_messages(n: usize, tail: &str) -> String {
    let mut s = String::with_capacity(n * 48 + 64);
    s.push_str(r#"{"messages":["#);
    for i in 0..n {
        s.push_str(&format!(r#"{{"role":"user","content":"message {i:07}"}},"#));
    }
    s.push_str(r#"{"role":"user","content":"last"}]"#);
    s.push_str(tail);
    s.push('}');
    s
}

/// Bodies above the inline threshold (128 KiB) are parsed on another thread:
/// the answers are the same as for small bodies, valid or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_get_the_same_answers() {
    let gw = gateway().await;
    gw.set(|b| b.reply = Some(vec!["ok".into()]));
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let client = client();
    let post = |body: String| {
        client.post(bridge.chat_url()).bearer_auth(TOKEN).header("content-type", "application/json").body(body).send()
    };
    // Valid: served, and the gateway got the whole history.
    let r = post(many_messages(20_000, "")).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "ok");
    let agent = gw.received_requests().into_iter().rfind(|r| r["method"] == "agent").unwrap();
    let prompt = agent["params"]["message"].as_str().unwrap().to_string();
    assert!(
        prompt.contains("User: message 0019999\n\n[Current message - respond to this]\nUser: last"),
        "{}",
        &prompt[..200]
    );
    // Refused: the same status and body as the small version.
    for (tail, cut) in [(r#","temperature":5"#, 0), (r#","stream":"yes""#, 0), ("", 1)] {
        let small = many_messages(1, tail);
        let large = many_messages(20_000, tail);
        let (small, large) = (&small[..small.len() - cut], &large[..large.len() - cut]);
        let a = post(small.to_string()).await.unwrap();
        let b = post(large.to_string()).await.unwrap();
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (400, 400), "{tail}");
        let (a, b) = (a.text().await.unwrap(), b.text().await.unwrap());
        if cut == 0 {
            assert_eq!(a, b, "{tail}");
        } else {
            // V8's message, at the body's own position.
            let want = "Expected ',' or '}' after property value in JSON at position";
            assert!(a.contains(want) && b.contains(want), "{a} / {b}");
        }
    }
}

/// While several maximum-size bodies are being parsed, small requests on
/// other connections are still answered promptly (on main they waited for
/// each whole parse on the proxy thread: seconds in a debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_requests_are_answered_while_big_bodies_parse() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let client = client();
    assert_eq!(post_chat(&bridge, &chat_body(false, "warm")).await.status(), 200);
    // ~19.5 MiB each (the limit is 20 MiB), refused after the whole parse.
    let big = std::sync::Arc::new(many_messages(19_500 * 1024 / 44, r#","temperature":5"#));
    assert!(big.len() < 20 * 1024 * 1024, "{}", big.len());
    let bigs: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, big) = (client.clone(), bridge.chat_url(), big.clone());
            tokio::spawn(async move {
                let r = client.post(url).bearer_auth(TOKEN).body(big.to_string()).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap(), Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut latencies = Vec::new();
    while bigs.iter().any(|t| !t.is_finished()) && latencies.len() < 50 {
        let t = Instant::now();
        assert_eq!(post_chat(&bridge, &chat_body(false, "small")).await.status(), 200);
        latencies.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in bigs {
        let (status, body, _) = t.await.unwrap();
        assert_eq!(status, 400);
        assert!(body.contains("`temperature` must be between 0 and 2."), "{body}");
    }
    let worst = latencies.iter().max().copied().unwrap_or_default();
    eprintln!("small requests while 4 big bodies parsed: {} answered, worst {worst:?}", latencies.len());
    assert!(latencies.len() >= 3, "the big bodies were done before small requests could overlap them");
    assert!(worst < Duration::from_millis(1000), "a small request waited {worst:?} behind big bodies: {latencies:?}");
}
