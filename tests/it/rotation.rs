//! Secret rotation without a restart: the gateway's file gets a new token
//! (rewritten in place, swapped by rename, or applied on SIGHUP) and within
//! 5 s the new bearer is served, the old one refused, and the link has
//! re-handshaken with the new secret. A stream in flight finishes on its
//! old link when the gateway keeps that link open; when the gateway closes
//! it (4001, as 2026.9.6 does) the stream ends with an error saying why.

use std::time::{Duration, Instant};

use crate::common::*;

const NEW_TOKEN: &str = "next-token"; // as long as TOKEN: an in-place rewrite keeps the length

fn config_with(token: &str) -> String {
    format!(
        "{{ gateway: {{ auth: {{ mode: 'token', token: '{token}' }}, http: {{ endpoints: {{ chatCompletions: {{ enabled: true }} }} }} }} }}"
    )
}

/// Replaces the file by rename, as a Kubernetes volume update or an editor does.
fn swap_config(bridge: &Bridge, text: &str) {
    let path = bridge.gateway_config_path();
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn status_with(bridge: &Bridge, token: &str) -> u16 {
    let r = client().post(bridge.chat_url()).bearer_auth(token).json(&chat_body(false, "hi")).send().await.unwrap();
    r.status().as_u16()
}

/// Waits for the `reloads`-th successful reload (from `/metrics`, so no
/// wrong bearer is sent: loopback mismatches are slowed down), then for
/// `token` to get 200; returns how long both took.
async fn served_within(bridge: &Bridge, token: &str, reloads: f64, deadline: Duration) -> Duration {
    let start = Instant::now();
    let ok = |m: &str| metric(m, "clawbridge_config_reloads_total{result=\"ok\"}");
    while ok(&bridge.metrics().await) < reloads {
        assert!(start.elapsed() < deadline, "no reload within {deadline:?}; logs:\n{}", bridge.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        if status_with(bridge, token).await == 200 {
            return start.elapsed();
        }
        assert!(start.elapsed() < deadline, "{token} not served within {deadline:?}; logs:\n{}", bridge.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stream of 20 slow deltas (4 s), started with the old token, read to the end.
fn slow_stream(gw: &DemoGateway, bridge: &Bridge) -> tokio::task::JoinHandle<(u16, String)> {
    gw.set(|b| {
        b.reply = Some((0..20).map(|i| format!("w{i:02} ")).collect());
        b.delta_delay = Duration::from_millis(200);
    });
    let url = bridge.chat_url();
    tokio::spawn(async move {
        let r = client().post(url).bearer_auth(TOKEN).json(&chat_body(true, "long")).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    })
}

/// Runs started from now on answer at once (a run keeps the knobs it started with).
fn fast_runs(gw: &DemoGateway) {
    gw.set(|b| {
        b.reply = None;
        b.delta_delay = Duration::ZERO;
    });
}

fn expected_reply() -> String {
    (0..20).map(|i| format!("w{i:02} ")).collect()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// 2026.9.6: the gateway applies the new token at once and closes the
/// links that used the old one (4001). The file is swapped by rename.
/// clawbridge re-reads it (woken by the 4001, else by its poll), serves
/// the new bearer, refuses the old one and reconnects with the new secret;
/// the stream that was on the closed link ends with an error naming the
/// cause, never silently or with a truncated success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_served_within_5s_when_the_gateway_closes_old_links() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let stream = slow_stream(&gw, &bridge);
    eventually("stream started", Duration::from_secs(5), || gw.runs_in_flight() == 1).await;
    fast_runs(&gw);
    tokio::time::sleep(Duration::from_millis(300)).await;

    swap_config(&bridge, &config_with(NEW_TOKEN));
    assert_eq!(gw.set_secret(NEW_TOKEN), 1, "the demo closed clawbridge's link");
    let took = served_within(&bridge, NEW_TOKEN, 1.0, Duration::from_secs(5)).await;
    eprintln!("new bearer served {took:?} after the rotation");
    assert_eq!(status_with(&bridge, TOKEN).await, 401, "the old bearer is refused");
    assert!(bridge.ready().await, "ready again");

    let (status, body) = stream.await.unwrap();
    assert_eq!(status, 200);
    let events = parse_sse(&body);
    assert_eq!(events.last(), Some(&Sse::Done), "{body}");
    let error = events.iter().find_map(|e| match e {
        Sse::Json(v) => v["error"]["message"].as_str().map(str::to_string),
        _ => None,
    });
    let error = error.unwrap_or_else(|| panic!("the cut stream says so: {body}"));
    assert!(error.contains("gateway auth changed") && error.contains("4001"), "{error}");
    let m = bridge.metrics().await;
    assert!(metric(&m, "clawbridge_config_reloads_total{result=\"ok\"}") >= 1.0, "{m}");
    let logs = bridge.logs();
    assert!(!logs.contains(NEW_TOKEN) && !logs.contains(TOKEN), "no secret in the logs");
}

/// A gateway that keeps old-secret links open (2026.5.7 until it restarts):
/// clawbridge opens a link with the new secret beside the old one, new runs
/// use it, and the stream in flight finishes whole on the old link, which
/// is closed after. The file is rewritten in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_in_flight_finishes_on_the_old_link_when_the_gateway_keeps_it() {
    let gw = gateway().await;
    gw.set(|b| b.keep_links_on_auth_change = true);
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let stream = slow_stream(&gw, &bridge);
    eventually("stream started", Duration::from_secs(5), || gw.runs_in_flight() == 1).await;
    fast_runs(&gw);

    assert_eq!(gw.set_secret(NEW_TOKEN), 0);
    std::fs::write(bridge.gateway_config_path(), config_with(NEW_TOKEN)).unwrap();
    let took = served_within(&bridge, NEW_TOKEN, 1.0, Duration::from_secs(5)).await;
    eprintln!("new bearer served {took:?} after the rotation");
    assert_eq!(status_with(&bridge, TOKEN).await, 401, "the old bearer is refused");
    assert_eq!(gw.connection_count(), 2, "old link (finishing the stream) and new link; logs:\n{}", bridge.logs());

    let (status, body) = stream.await.unwrap();
    assert_eq!(status, 200);
    let events = parse_sse(&body);
    assert_eq!(content_of(&events), expected_reply(), "{body}");
    assert_eq!(events.last(), Some(&Sse::Done));
    assert!(!body.contains("\"error\""), "{body}");
    eventually("old link closed once its run ended", Duration::from_secs(5), || gw.connection_count() == 1).await;
    assert_eq!(status_with(&bridge, NEW_TOKEN).await, 200, "the new link serves");
    let m = bridge.metrics().await;
    assert_eq!(metric(&m, "clawbridge_gateway_link_rotations_total"), 1.0, "{m}");
    assert_eq!(metric(&m, "clawbridge_gateway_reconnects_total"), 0.0, "never down: {m}");
}

/// SIGHUP re-reads the file even when its mtime, length and inode look
/// unchanged (here restored on purpose, so only the signal can apply it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_file() {
    let gw = gateway().await;
    gw.set(|b| b.keep_links_on_auth_change = true);
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    eventually("watcher started", Duration::from_secs(5), || bridge.logs().contains("watching the gateway config"))
        .await;
    let path = bridge.gateway_config_path();
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    gw.set_secret(NEW_TOKEN);
    std::fs::write(path, config_with(NEW_TOKEN)).unwrap();
    std::fs::File::options().write(true).open(path).unwrap().set_modified(mtime).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status_with(&bridge, NEW_TOKEN).await, 401, "the poll sees no change");

    let hup = std::process::Command::new("kill").args(["-HUP", &bridge.pid().to_string()]).status().unwrap();
    assert!(hup.success());
    let took = served_within(&bridge, NEW_TOKEN, 1.0, Duration::from_secs(5)).await;
    eprintln!("new bearer served {took:?} after SIGHUP");
    assert_eq!(status_with(&bridge, TOKEN).await, 401);
    assert!(bridge.logs().contains("SIGHUP: re-reading the gateway config"));
}

/// A broken file is not applied: the old settings stay, the error is
/// counted and logged (without the secret); the next good file applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_keeps_the_previous_settings() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    swap_config(&bridge, "{ gateway: { auth: { mode: 'token', token: 'half-written");
    let errors = |m: &str| metric(m, "clawbridge_config_reloads_total{result=\"error\"}");
    let start = Instant::now();
    while errors(&bridge.metrics().await) < 1.0 {
        assert!(start.elapsed() < Duration::from_secs(5), "the bad file is noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A file with no secret for its mode is refused too.
    swap_config(
        &bridge,
        "{ gateway: { auth: { mode: 'token' }, http: { endpoints: { chatCompletions: { enabled: true } } } } }",
    );
    let start = Instant::now();
    while errors(&bridge.metrics().await) < 2.0 {
        assert!(start.elapsed() < Duration::from_secs(5), "the secret-less file is refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_with(&bridge, TOKEN).await, 200, "the previous secret still works");
    assert!(bridge.ready().await);
    let logs = bridge.logs();
    assert!(logs.contains("gateway config not reloaded: keeping the previous settings"), "{logs}");
    assert!(!logs.contains("half-written") && !logs.contains(TOKEN), "no secret in the logs:\n{logs}");

    gw.set_secret(NEW_TOKEN);
    swap_config(&bridge, &config_with(NEW_TOKEN));
    served_within(&bridge, NEW_TOKEN, 1.0, Duration::from_secs(5)).await;
}
