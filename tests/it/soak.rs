//! Soak: thousands of streams through the demo gateway for a few minutes,
//! with random client disconnects and one gateway restart in the middle.
//! Reports errors (zero expected outside the restart window), RSS at start
//! and end, and the run tables at the end (empty).
//!
//! Ignored by default (minutes long); run it with `scripts/soak.sh`
//! (`SOAK_SECS`, default 150; `SOAK_CLIENTS`, default 32).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::raw::RawConn;
use crate::common::*;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// xorshift64*: enough randomness for choosing actions, no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[derive(Default)]
struct Tally {
    streams_ok: AtomicU64,
    plain_ok: AtomicU64,
    disconnects: AtomicU64,
    errors_in_window: AtomicU64,
    errors_outside: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: runs for minutes; use scripts/soak.sh"]
async fn soak_with_disconnects_and_a_gateway_restart() {
    let secs = env_u64("SOAK_SECS", 150);
    let clients = env_u64("SOAK_CLIENTS", 32) as usize;
    let reply: Vec<String> = (0..20).map(|i| format!("w{i} ")).collect();
    let expected: String = reply.concat();
    let configure = |b: &mut demo_gateway::Behaviour| {
        b.reply = Some(reply.clone());
        b.delta_delay = Duration::from_millis(5);
    };
    let gw = DemoGateway::builder().token(TOKEN).configure(configure).start().await.unwrap();
    let addr = gw.addr();
    let bridge = BridgeOpts::new(addr).env("CLAWBRIDGE_LOG", "warn").start().await;
    let bridge = Arc::new(bridge);
    // Warm up before the first RSS reading.
    for _ in 0..20 {
        assert_eq!(post_chat(&bridge, &chat_body(true, "warm")).await.status(), 200);
    }
    let rss_start = rss_kib(bridge.pid());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    // The restart window: from the kill until 2 s after readiness returns.
    let window: Arc<Mutex<(Option<Instant>, Option<Instant>)>> = Arc::new(Mutex::new((None, None)));
    let in_window = {
        let window = window.clone();
        move |t: Instant| {
            let w = window.lock().unwrap();
            match *w {
                (Some(a), None) => t >= a,
                (Some(a), Some(b)) => t >= a && t <= b,
                _ => false,
            }
        }
    };
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..clients {
        let (bridge, tally, stop, expected) = (bridge.clone(), tally.clone(), stop.clone(), expected.clone());
        let in_window = in_window.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((w as u64 + 1) * 0x1000_0001));
            let http = client();
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let roll = rng.next() % 100;
                let ok = if roll < 10 {
                    // Disconnect after the first content chunk (or at once).
                    let Ok(mut c) = RawConn::connect(bridge.addr).await else {
                        continue;
                    };
                    let body = chat_body(true, "bye").to_string();
                    let req = format!(
                        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = c.write_now(req.as_bytes()).await;
                    if roll < 5 {
                        tokio::time::sleep(Duration::from_millis(rng.next() % 20)).await;
                    }
                    drop(c);
                    tally.disconnects.fetch_add(1, Ordering::Relaxed);
                    true
                } else if roll < 25 {
                    match http.post(bridge.chat_url()).bearer_auth(TOKEN).json(&chat_body(false, "p")).send().await {
                        Ok(r) if r.status() == 200 => {
                            let ok = r.text().await.is_ok_and(|t| t.contains(&expected));
                            if ok {
                                tally.plain_ok.fetch_add(1, Ordering::Relaxed);
                            }
                            ok
                        }
                        _ => false,
                    }
                } else {
                    match http.post(bridge.chat_url()).bearer_auth(TOKEN).json(&chat_body(true, "s")).send().await {
                        Ok(r) if r.status() == 200 => match r.text().await {
                            Ok(t) => {
                                let ok = t.ends_with("data: [DONE]\n\n")
                                    && !t.contains("\"error\"")
                                    && content_of(&parse_sse(&t)) == expected;
                                if ok {
                                    tally.streams_ok.fetch_add(1, Ordering::Relaxed);
                                }
                                ok
                            }
                            Err(_) => false,
                        },
                        _ => false,
                    }
                };
                if !ok {
                    if in_window(began) || in_window(Instant::now()) {
                        tally.errors_in_window.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tally.errors_outside.fetch_add(1, Ordering::Relaxed);
                    }
                    // Do not spin on a down gateway.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    // The restart, in the middle.
    tokio::time::sleep(Duration::from_secs(secs / 2)).await;
    window.lock().unwrap().0 = Some(Instant::now());
    gw.shutdown().await;
    drop(gw);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let gw = DemoGateway::builder().token(TOKEN).configure(configure).bind(addr.to_string()).start().await.unwrap();
    bridge.wait_admin("/readyz", Duration::from_secs(10)).await;
    window.lock().unwrap().1 = Some(Instant::now() + Duration::from_secs(2));
    let rss_mid = rss_kib(bridge.pid());

    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    // Let the aborts of the last disconnects land.
    eventually("gateway run table empty", Duration::from_secs(5), || gw.runs_in_flight() == 0).await;
    let m = bridge.metrics().await;
    let gauge = |name: &str| -> i64 {
        m.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(-1)
    };
    let rss_end = rss_kib(bridge.pid());
    let t = &tally;
    let report = format!(
        "soak: {:?}, {clients} clients: streams ok {}, non-stream ok {}, disconnects {}, errors in restart window {}, errors outside {}; \
         RSS start {rss_start} KiB, after restart {rss_mid} KiB, end {rss_end} KiB; \
         end: gateway runs {}, inflight_runs {}, inflight_streams {}, aborts sent {}",
        started.elapsed(),
        t.streams_ok.load(Ordering::Relaxed),
        t.plain_ok.load(Ordering::Relaxed),
        t.disconnects.load(Ordering::Relaxed),
        t.errors_in_window.load(Ordering::Relaxed),
        t.errors_outside.load(Ordering::Relaxed),
        gw.runs_in_flight(),
        gauge("clawbridge_chat_inflight_runs"),
        gauge("clawbridge_chat_inflight_streams"),
        gauge("clawbridge_gateway_aborts_sent_total"),
    );
    eprintln!("{report}");
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        let _ = std::fs::write(path, format!("{report}\n"));
    }
    assert_eq!(t.errors_outside.load(Ordering::Relaxed), 0, "{report}");
    assert_eq!(gw.runs_in_flight(), 0, "{report}");
    assert_eq!(gauge("clawbridge_chat_inflight_runs"), 0, "{report}");
    assert_eq!(gauge("clawbridge_chat_inflight_streams"), 0, "{report}");
    assert!(t.streams_ok.load(Ordering::Relaxed) >= 1000, "{report}");
    assert!(rss_end < rss_start + 64 * 1024, "{report}");
}
