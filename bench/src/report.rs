//! `report --out DIR`: reads the raw JSON of a run and prints one markdown
//! table per figure plus one `PASS`/`FAIL`/`INFO`/`SKIP` line per target.
//! The targets are the regression guards of `make bench`.

use serde_json::Value;
use std::fmt::Write;

fn load(dir: &str, name: &str) -> Option<Value> {
    let s = std::fs::read_to_string(format!("{dir}/{name}")).ok()?;
    serde_json::from_str(&s)
        .ok()
        .or_else(|| serde_json::from_str(s.lines().last()?).ok())
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

struct Out {
    s: String,
    fails: usize,
}

impl Out {
    fn line(&mut self, l: impl AsRef<str>) {
        self.s.push_str(l.as_ref());
        self.s.push('\n');
    }
    fn check(&mut self, ok: bool, what: &str, detail: String) {
        if !ok {
            self.fails += 1;
        }
        self.line(format!("{} {what}: {detail}", if ok { "PASS" } else { "FAIL" }));
    }
}

fn us(x: f64) -> String {
    if x.abs() >= 10_000.0 {
        format!("{:.1} ms", x / 1000.0)
    } else {
        format!("{x:.0} µs")
    }
}

fn lat_table(o: &mut Out, v: &Value) {
    o.line("| path | n | first content p50 | p99 | [DONE]/final p50 | p99 | completions/s (median of rounds) | errors |");
    o.line("|---|---|---|---|---|---|---|---|");
    for (k, label) in [("native", "native WS `agent` (direct)"), ("chat", "OpenAI SSE via clawbridge")] {
        let s = &v[k];
        o.line(format!(
            "| {label} | {} | {} | {} | {} | {} | {:.0} | {} |",
            s["first"]["n"], us(f(&s["first"]["p50_us"])), us(f(&s["first"]["p99_us"])),
            us(f(&s["done"]["p50_us"])), us(f(&s["done"]["p99_us"])), f(&s["rate_median"]), s["errors"]
        ));
    }
    let a = &v["added"];
    o.line(format!(
        "| **added by clawbridge** | | **{}** | **{}** | **{}** | **{}** | ratio {:.2} | |",
        us(f(&a["first_p50_us"])), us(f(&a["first_p99_us"])), us(f(&a["done_p50_us"])),
        us(f(&a["done_p99_us"])), f(&v["rate_ratio"])
    ));
    o.line("");
}

pub fn run(dir: &str) -> (String, usize) {
    let mut o = Out { s: String::new(), fails: 0 };
    if let Some(m) = load(dir, "machine.json") {
        o.line(format!(
            "Machine: {} x {} ({}), kernel {}, {}; {}; nginx {}; commit {}; load average before: {}{}",
            m["nproc"].as_str().unwrap_or("?"), m["cpu"].as_str().unwrap_or("?"),
            format!("{} GiB RAM", m["mem_kib"].as_str().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0) / 1024 / 1024),
            m["kernel"].as_str().unwrap_or("?"), m["os"].as_str().unwrap_or("?"),
            m["rustc"].as_str().unwrap_or("?"), m["nginx"].as_str().unwrap_or("?"),
            m["commit"].as_str().unwrap_or("?"), m["load_before"].as_str().unwrap_or("?"),
            load(dir, "load-after.json").map(|l| format!(", after: {}", l["load_after"].as_str().unwrap_or("?"))).unwrap_or_default(),
        ));
        o.line(format!("Date: {}", m["date"].as_str().unwrap_or("?")));
        o.line("");
    }

    // ---- figure 1
    if let Some(v) = load(dir, "fig1-c1.json") {
        o.line("### 1. Added latency on the chat route (5-delta turns, fake gateway at 0 delay)");
        o.line("");
        o.line("1 concurrent stream, A/B rounds interleaved:");
        o.line("");
        lat_table(&mut o, &v);
        let a = &v["added"];
        let (fm, dm) = (f(&a["first_p50_us"]), f(&a["done_p50_us"]));
        let (fp, dp) = (f(&a["first_p99_us"]), f(&a["done_p99_us"]));
        o.check(fm <= 100.0 && dm <= 100.0, "fig1 added median <= 100 µs at 1 stream",
            format!("first content {}, [DONE] {}", us(fm), us(dm)));
        o.check(fp <= 1000.0 && dp <= 1000.0, "fig1 added p99 <= 1 ms at 1 stream",
            format!("first content {}, [DONE] {}", us(fp), us(dp)));
        o.line("");
    }
    if let Some(v) = load(dir, "fig1-c256.json") {
        o.line("256 concurrent streams, deltas paced 20 ms apart by the fake, starts staggered (the machine is not saturated):");
        o.line("");
        lat_table(&mut o, &v);
        let a = &v["added"];
        let (fp, dp) = (f(&a["first_p99_us"]), f(&a["done_p99_us"]));
        o.check(fp <= 2000.0 && dp <= 2000.0, "fig1 added p99 <= 2 ms at 256 streams",
            format!("first content {}, [DONE] {}", us(fp), us(dp)));
        o.line("");
    }
    if let Some(v) = load(dir, "fig1-c256-sat.json") {
        o.line("256 concurrent streams, unpaced: closed loop, every side saturates the 2 cores, so latency = 256 / throughput (informational; see figure 2):");
        o.line("");
        lat_table(&mut o, &v);
        o.line(format!(
            "INFO fig1 saturated 256 streams: added p99 first content {}, [DONE] {} (queueing at saturation, not a per-request cost)",
            us(f(&v["added"]["first_p99_us"])), us(f(&v["added"]["done_p99_us"]))
        ));
        o.line("");
    }

    // ---- figure 2
    if let Some(v) = load(dir, "fig2.json") {
        o.line("### 2. Throughput of short streamed completions (5 deltas), 128 connections");
        o.line("");
        o.line("| path | completions/s per round | median | errors |");
        o.line("|---|---|---|---|");
        for (k, label) in [("native", "fake gateway direct (native WS, 1 connection, 128 runs in flight)"), ("chat", "through clawbridge (128 HTTP keep-alive connections)")] {
            let r: Vec<String> = v[k]["rate_per_round"].as_array().map(|a| a.iter().map(|x| format!("{:.0}", f(x))).collect()).unwrap_or_default();
            o.line(format!("| {label} | {} | {:.0} | {} |", r.join(", "), f(&v[k]["rate_median"]), v[k]["errors"]));
        }
        o.line("");
        let rate = f(&v["chat"]["rate_median"]);
        o.check(rate >= 10_000.0 && v["chat"]["errors"].as_u64() == Some(0), "fig2 >= 10,000 completions/s through clawbridge",
            format!("{rate:.0}/s, {} errors; ratio to the fake's own capacity {:.2}", v["chat"]["errors"], f(&v["rate_ratio"])));
        o.line("");
    }

    // ---- figure 3
    if let Some(v) = load(dir, "fig3.json") {
        o.line(format!("### 3. Passthrough: GET {} to the fake gateway (hyper), {} keep-alive connections", v["path"].as_str().unwrap_or("?"), v["conc"]));
        o.line("");
        o.line("| path | latency p50 at 1 conn | p99 | added p50 vs direct | req/s per round | median req/s | errors |");
        o.line("|---|---|---|---|---|---|---|");
        let t = v["targets"].as_array().cloned().unwrap_or_default();
        let get = |n: &str| t.iter().find(|x| x["name"] == n).cloned().unwrap_or(Value::Null);
        let direct = f(&get("direct")["latency_c1"]["p50_us"]);
        for x in &t {
            let r: Vec<String> = x["rps_per_round"].as_array().map(|a| a.iter().map(|y| format!("{:.0}", f(y))).collect()).unwrap_or_default();
            let p50 = f(&x["latency_c1"]["p50_us"]);
            o.line(format!("| {} | {} | {} | {} | {} | {:.0} | {} |", x["name"].as_str().unwrap_or("?"), us(p50), us(f(&x["latency_c1"]["p99_us"])),
                if x["name"] == "direct" { "-".into() } else { us(p50 - direct) }, r.join(", "), f(&x["rps_median"]), x["errors"]));
        }
        o.line("");
        let (cb, ng) = (get("clawbridge"), get("nginx"));
        let (crps, nrps) = (f(&cb["rps_median"]), f(&ng["rps_median"]));
        o.check(crps >= nrps, "fig3 clawbridge req/s >= nginx req/s", format!("{crps:.0} vs {nrps:.0} (ratio {:.2})", crps / nrps));
        let added = f(&cb["latency_c1"]["p50_us"]) - direct;
        o.check(added <= 70.0, "fig3 clawbridge added median <= 70 µs",
            format!("{} (nginx adds {})", us(added), us(f(&ng["latency_c1"]["p50_us"]) - direct)));
        o.line("");
    }

    // ---- figure 4
    if let Some(v) = load(dir, "fig4.json") {
        o.line("### 4. Against the real gateway (fake LLM at 0 delay): warm sequential streamed turns, A/B alternating");
        o.line("");
        if let Some(r) = v["skipped"].as_str() {
            o.line(format!("SKIP fig4 clawbridge / built-in time to first content <= 1.0: skipped ({r})"));
        } else {
            o.line("| endpoint | n | first content p50 | p99 | [DONE] p50 | p99 | errors |");
            o.line("|---|---|---|---|---|---|---|");
            for x in v["targets"].as_array().cloned().unwrap_or_default() {
                o.line(format!("| {} | {} | {} | {} | {} | {} | {} |", x["name"].as_str().unwrap_or("?"), x["first"]["n"],
                    us(f(&x["first"]["p50_us"])), us(f(&x["first"]["p99_us"])), us(f(&x["done"]["p50_us"])), us(f(&x["done"]["p99_us"])), x["errors"]));
            }
            o.line("");
            let ratio = f(&v["first_p50_ratio"]);
            let n = v["targets"].as_array().map(|a| a.iter().map(|x| x["first"]["n"].as_u64().unwrap_or(0)).min().unwrap_or(0)).unwrap_or(0);
            o.check(ratio <= 1.0 && n >= 20, "fig4 clawbridge / built-in time to first content <= 1.0",
                format!("ratio of medians {ratio:.3}, median of pairwise ratios {:.3}, n = {n} each", f(&v["pairwise_ratio_median"])));
        }
        o.line("");
    }

    // ---- figure 5
    if let Some(v) = load(dir, "fig5.json") {
        o.line("### 5. Memory (VmRSS of clawbridge; the fake holds every stream open)");
        o.line("");
        o.line("| open streams | established | errors | clawbridge RSS | fds | bytes/stream vs idle | fake gateway RSS |");
        o.line("|---|---|---|---|---|---|---|");
        let idle = f(&v["idle_rss_kib"]);
        o.line(format!("| 0 (idle, after start) | - | - | {:.1} MiB | - | - | {:.1} MiB |", idle / 1024.0, f(&v["gw_idle_rss_kib"]) / 1024.0));
        let levels = v["levels"].as_array().cloned().unwrap_or_default();
        for l in &levels {
            o.line(format!("| {} | {} | {} | {:.1} MiB | {} | {:.0} B | {:.1} MiB |", l["streams"], l["established"],
                l["open_errors"].as_u64().unwrap_or(0) + l["ended_early"].as_u64().unwrap_or(0),
                f(&l["rss_kib"]) / 1024.0, l["fds"], f(&l["bytes_per_stream_vs_idle"]), f(&l["gw_rss_kib"]) / 1024.0));
        }
        o.line(format!("| after closing all | | | {:.1} MiB | | | |", f(&v["rss_after_close_kib"]) / 1024.0));
        if v.get("rss_released_kib").is_some() {
            o.line(format!(
                "| {:.0} s later | | | {:.1} MiB | | | |",
                f(&v["release_wait_secs"]),
                f(&v["rss_released_kib"]) / 1024.0
            ));
        }
        o.line("");
        if v.get("rss_released_kib").is_some() {
            let peak = levels.last().map(|l| f(&l["rss_kib"])).unwrap_or(0.0);
            o.line(format!(
                "INFO fig5 memory back with the system after the burst: {:.1} MiB {:.0} s after closing (idle {:.1} MiB, peak {:.1} MiB)",
                f(&v["rss_released_kib"]) / 1024.0,
                f(&v["release_wait_secs"]),
                idle / 1024.0,
                peak / 1024.0
            ));
        }
        o.check(idle * 1024.0 <= 20e6, "fig5 idle RSS <= 20 MB", format!("{:.1} MB ({:.1} MiB)", idle * 1024.0 / 1e6, idle / 1024.0));
        let slope = f(&v["bytes_per_stream_slope"]);
        let top = levels.last().cloned().unwrap_or(Value::Null);
        let vs_idle = f(&top["bytes_per_stream_vs_idle"]);
        o.check(slope <= 16384.0 && vs_idle <= 16384.0, "fig5 <= 16 KiB per open stream",
            format!("{:.1} KiB marginal (between the last two levels), {:.1} KiB at {} streams vs idle", slope / 1024.0, vs_idle / 1024.0, top["streams"]));
        let n = top["streams"].as_u64().unwrap_or(0);
        let errs = top["open_errors"].as_u64().unwrap_or(0) + v["ended_early_total"].as_u64().unwrap_or(0);
        o.check(n >= 10_000 && top["established"].as_u64() == Some(n) && errs == 0, "fig5 10,000 concurrent streams with zero errors",
            format!("{} of {n} established, {errs} errors", top["established"]));
        o.line("");
    }

    // ---- figure 6
    if let Some(v) = load(dir, "fig6.json") {
        o.line("### 6. Scaling: clawbridge CPU time per completed stream (utime+stime from /proc, median of 3 rounds)");
        o.line("");
        o.line("| concurrency | completions/s | CPU per stream (stat) | CPU per stream (schedstat) | fake gateway CPU per stream | [DONE] p50 | errors |");
        o.line("|---|---|---|---|---|---|---|");
        let lv = v["levels"].as_array().cloned().unwrap_or_default();
        for l in &lv {
            o.line(format!("| {} | {:.0} | {} | {} | {} | {} | {} |", l["conc"], f(&l["rate"]), us(f(&l["cpu_us_per_stream"])),
                us(f(&l["cpu_us_per_stream_schedstat"])), us(f(&l["gw_cpu_us_per_stream"])), us(f(&l["done_p50_us"])), l["errors"]));
        }
        o.line("");
        let mut xs: Vec<f64> = lv.iter().map(|l| f(&l["cpu_us_per_stream"])).collect();
        let med = crate::stats::median(&mut xs.clone());
        let worst = xs.iter().map(|x| (x / med - 1.0).abs()).fold(0.0, f64::max);
        o.check(worst <= 0.25, "fig6 CPU per stream flat within ±25% (vs the median of the levels)",
            format!("worst deviation {:+.0}%: {}", worst * 100.0,
                lv.iter().map(|l| format!("c={} {:+.0}%", l["conc"], (f(&l["cpu_us_per_stream"]) / med - 1.0) * 100.0)).collect::<Vec<_>>().join(", ")));
        xs.retain(|x| x.is_finite());
        let grows = lv.len() >= 2 && {
            let hi = f(&lv[lv.len() - 1]["cpu_us_per_stream"]);
            let mid = f(&lv[1]["cpu_us_per_stream"]);
            hi <= mid * 1.25
        };
        o.check(grows, "fig6 no growth with concurrent runs (c=1024 <= 1.25 x c=16)",
            format!("c=1024 / c=16 = {:.2}", f(&lv.last().map(|l| l["cpu_us_per_stream"].clone()).unwrap_or(Value::Null)) / f(&lv.get(1).map(|l| l["cpu_us_per_stream"].clone()).unwrap_or(Value::Null))));
        o.line("");
    }
    // ---- figure 7
    if let Some(v) = load(dir, "fig7.json") {
        let mib = |kib: f64| kib / 1024.0;
        let (n, bytes) = (v["big"].as_u64().unwrap_or(0), f(&v["big_bytes"]));
        o.line(format!(
            "### 7. Big bodies: small streamed turns while {n} bodies of {:.1} MiB (short messages) are sent back to back",
            bytes / 1048576.0
        ));
        o.line("");
        o.line("| small turns on one connection | n | [DONE] p50 | p90 | p99 | max | errors |");
        o.line("|---|---|---|---|---|---|---|");
        for (k, e, label) in [("small_alone", "small_alone_errors", "alone"), ("small_loaded", "small_loaded_errors", "with the big bodies in flight")] {
            let s = &v[k];
            o.line(format!("| {label} | {} | {} | {} | {} | {} | {} |", s["n"], us(f(&s["p50_us"])), us(f(&s["p90_us"])),
                us(f(&s["p99_us"])), us(f(&s["max_us"])), v[e]));
        }
        let b = &v["big_latency"];
        o.line("");
        o.line(format!(
            "Big bodies answered: {} (each a 400 after the whole parse and fold; {} other), send-to-answer p50 {}, p99 {}.",
            v["big_done"], v["big_not_400"], us(f(&b["p50_us"])), us(f(&b["p99_us"]))
        ));
        let (idle, hwm) = (f(&v["rss_idle_kib"]), f(&v["hwm_kib"]));
        let in_flight = f(&v["in_flight_bytes"]);
        let ratio = (hwm - idle) * 1024.0 / in_flight;
        o.line(format!(
            "Memory: RSS {:.1} MiB before, peak (VmHWM) {:.1} MiB, {:.1} MiB after; peak growth {:.1} MiB = {ratio:.2} x the {:.0} MiB of bodies in flight.",
            mib(idle), mib(hwm), mib(f(&v["rss_after_kib"])), mib(hwm - idle), in_flight / 1048576.0
        ));
        o.line("");
        let (a50, l50, l99) = (f(&v["small_alone"]["p50_us"]), f(&v["small_loaded"]["p50_us"]), f(&v["small_loaded"]["p99_us"]));
        let errs = v["small_alone_errors"].as_u64().unwrap_or(1) + v["small_loaded_errors"].as_u64().unwrap_or(1) + v["big_not_400"].as_u64().unwrap_or(1);
        o.check(l50 <= a50 + 1000.0 && errs == 0, "fig7 small p50 with big bodies in flight <= alone + 1 ms",
            format!("{} vs {} alone; {errs} errors", us(l50), us(a50)));
        o.check(l99 <= 20_000.0, "fig7 small p99 with big bodies in flight <= 20 ms", us(l99));
        o.check(ratio <= 2.5 && v["big_done"].as_u64().unwrap_or(0) >= n, "fig7 peak RSS growth <= 2.5 x the body bytes in flight",
            format!("{ratio:.2} x ({:.1} MiB for {:.0} MiB)", mib(hwm - idle), in_flight / 1048576.0));
        o.line("");
    }
    // ---- figure 8
    let c1 = load(dir, "fig8-c1.json");
    let c128 = load(dir, "fig8-c128.json");
    if c1.is_some() || c128.is_some() {
        o.line("### 8. Responses vs chat: the same 5-delta turns as `POST /v1/responses` and `POST /v1/chat/completions` through one clawbridge");
        o.line("");
    }
    if let Some(v) = c1 {
        o.line("1 concurrent stream, native / chat / responses rounds interleaved (added = through clawbridge minus native):");
        o.line("");
        o.line("| path | n | first content p50 | p99 | [DONE]/final p50 | p99 | completions/s (median of rounds) | errors |");
        o.line("|---|---|---|---|---|---|---|---|");
        for (k, label) in [
            ("native", "native WS `agent` (direct)"),
            ("chat", "chat SSE via clawbridge"),
            ("responses", "responses SSE via clawbridge"),
        ] {
            let s = &v[k];
            o.line(format!(
                "| {label} | {} | {} | {} | {} | {} | {:.0} | {} |",
                s["first"]["n"],
                us(f(&s["first"]["p50_us"])),
                us(f(&s["first"]["p99_us"])),
                us(f(&s["done"]["p50_us"])),
                us(f(&s["done"]["p99_us"])),
                f(&s["rate_median"]),
                s["errors"]
            ));
        }
        for k in ["chat", "responses"] {
            let a = &v["added_by"][k];
            o.line(format!(
                "| **added, {k}** | | **{}** | **{}** | **{}** | **{}** | ratio {:.2} | |",
                us(f(&a["first_p50_us"])),
                us(f(&a["first_p99_us"])),
                us(f(&a["done_p50_us"])),
                us(f(&a["done_p99_us"])),
                f(&v["rate_ratio_by"][k])
            ));
        }
        o.line("");
        // Within 10% of chat's added median, or 10 µs when 10% of it is
        // less (a tiny added latency would otherwise make the bound noise).
        // One-sided: responses faster than chat passes.
        let (c, r) = (&v["added_by"]["chat"], &v["added_by"]["responses"]);
        let bound = |chat: f64| chat + (0.10 * chat.abs()).max(10.0);
        let (cf, rf, cd, rd) =
            (f(&c["first_p50_us"]), f(&r["first_p50_us"]), f(&c["done_p50_us"]), f(&r["done_p50_us"]));
        let errs = ["native", "chat", "responses"].iter().map(|k| v[*k]["errors"].as_u64().unwrap_or(1)).sum::<u64>();
        // The same difference paired by round (the two sides ran next to each other).
        let per = |k: &str| v[k]["first_p50_per_round"].as_array().cloned().unwrap_or_default();
        let mut paired: Vec<f64> = per("responses").iter().zip(per("chat").iter()).map(|(r, c)| f(r) - f(c)).collect();
        o.line(format!(
            "INFO fig8 responses - chat first-content p50, median of {} paired rounds: {} (pooled: {})",
            paired.len(),
            us(crate::stats::median(&mut paired)),
            us(rf - cf)
        ));
        o.check(
            rf <= bound(cf) && rd <= bound(cd) && errs == 0,
            "fig8 responses added median <= chat's + max(10%, 10 µs) at 1 stream",
            format!(
                "first content {} vs {} (bound {}), [DONE] {} vs {} (bound {}); {errs} errors",
                us(rf),
                us(cf),
                us(bound(cf)),
                us(rd),
                us(cd),
                us(bound(cd))
            ),
        );
        o.line("");
    }
    if let Some(v) = c128 {
        o.line("128 connections, chat / responses rounds interleaved:");
        o.line("");
        o.line("| route | completions/s per round | median | errors |");
        o.line("|---|---|---|---|");
        for k in ["chat", "responses"] {
            let r: Vec<String> = v[k]["rate_per_round"]
                .as_array()
                .map(|a| a.iter().map(|x| format!("{:.0}", f(x))).collect())
                .unwrap_or_default();
            o.line(format!("| {k} | {} | {:.0} | {} |", r.join(", "), f(&v[k]["rate_median"]), v[k]["errors"]));
        }
        o.line("");
        let (c, r) = (f(&v["chat"]["rate_median"]), f(&v["responses"]["rate_median"]));
        let errs = v["chat"]["errors"].as_u64().unwrap_or(1) + v["responses"]["errors"].as_u64().unwrap_or(1);
        o.check(
            r >= 0.9 * c && errs == 0,
            "fig8 responses completions/s >= 0.9 x chat's at 128 connections",
            format!("{r:.0}/s vs {c:.0}/s (ratio {:.3}); {errs} errors", r / c),
        );
        o.line("");
    }
    let mut s = o.s;
    let _ = writeln!(s, "{} target(s) failed", o.fails);
    (s, o.fails)
}
