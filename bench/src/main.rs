//! clawbridge-bench: the load client of `make bench` (see bench/run.sh and
//! BENCHMARKS.md). Every subcommand prints one JSON object on stdout.
//!
//!   ab      --native ADDR --chat ADDR --token T --conc C (--count N | --secs S) --rounds R
//!           [--api chat|responses|chat,responses]
//!           A/B of the same turns: native `agent` over WS vs OpenAI SSE through clawbridge,
//!           interleaved rounds; time to first content and to the end; completions/s.
//!           `--api` picks the clawbridge route(s) (`--chat` is clawbridge's address either way):
//!           chat (default), responses (`/v1/responses`), or both, each a side of its own.
//!   cpu     --chat ADDR --token T --pid P [--gw-pid G] --levels 1,16,256,1024 --secs S --rounds R
//!           [--api chat|responses]
//!           CPU time (utime+stime) of P per completed stream at each concurrency.
//!   get     --target name=ADDR ... --path /healthz --conc C --secs S --rounds R --lat-count N
//!           small keep-alive GETs: req/s at C connections and latency at 1, interleaved.
//!   hold    --chat ADDR --token T --pid P --levels 1000,10000 [--gw-pid G]
//!           opens that many concurrent streams (the fake keeps them open), RSS per level.
//!   ttft    --target name=ADDR/PATH ... --token T --n N --warmup W
//!           sequential streamed turns alternating between targets (real gateway figure).
//!   big     --chat ADDR --token T --pid P --big 8 --big-bytes B --secs S --rounds R
//!           small streamed turns on one connection, alone and while B-byte bodies of many short
//!           messages are sent back to back on 8 other connections; latency of both, peak RSS.
//!           `--valid 1`: user messages, so each big body becomes a run (informational).

mod http;
mod native;
mod procfs;
mod report;
mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use http::{Conn, CONTENT_MARK, DELTA_EVENT_MARK, DONE_MARK, ROLE_MARK};
use native::{Native, Stop};
use stats::{dones, firsts, p50_us, p99_us, summary, Sample};

struct Args {
    map: HashMap<String, Vec<String>>,
}

impl Args {
    fn parse(v: &[String]) -> Args {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        let mut i = 0;
        while i < v.len() {
            let k = v[i].trim_start_matches("--").to_string();
            let val = v.get(i + 1).cloned().unwrap_or_default();
            map.entry(k).or_default().push(val);
            i += 2;
        }
        Args { map }
    }
    fn opt(&self, k: &str) -> Option<&str> {
        self.map.get(k).and_then(|v| v.last()).map(|s| s.as_str())
    }
    fn str(&self, k: &str, d: &str) -> String {
        self.opt(k).unwrap_or(d).to_string()
    }
    fn num<T: std::str::FromStr>(&self, k: &str, d: T) -> T {
        self.opt(k).and_then(|v| v.parse().ok()).unwrap_or(d)
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.map.get(k).cloned().unwrap_or_default()
    }
    fn list(&self, k: &str, d: &str) -> Vec<usize> {
        self.str(k, d).split(',').filter_map(|x| x.trim().parse().ok()).collect()
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let cmd = argv.get(1).cloned().unwrap_or_default();
    let args = Args::parse(&argv[2.min(argv.len())..]);
    let threads: usize = args.num("threads", 1);
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    let out = rt.block_on(async {
        match cmd.as_str() {
            "ab" => ab(&args).await,
            "cpu" => cpu(&args).await,
            "get" => get(&args).await,
            "hold" => hold(&args).await,
            "ttft" => ttft(&args).await,
            "big" => big(&args).await,
            "report" => {
                let (text, _) = report::run(&args.str("out", "bench/out"));
                print!("{text}");
                std::process::exit(0);
            }
            _ => {
                eprintln!("usage: clawbridge-bench ab|cpu|get|hold|ttft --help in src/main.rs");
                std::process::exit(2);
            }
        }
    });
    println!("{}", serde_json::to_string(&out).unwrap());
}

// ---------------------------------------------------------------- chat driver

/// Which clawbridge route a pool drives, and how its first content and end are spotted.
#[derive(Clone, Copy, PartialEq)]
enum Api {
    Chat,
    Responses,
}

impl Api {
    fn parse(s: &str) -> Api {
        match s {
            "chat" => Api::Chat,
            "responses" => Api::Responses,
            other => {
                eprintln!("--api: chat or responses, got {other:?}");
                std::process::exit(2);
            }
        }
    }
    fn name(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Responses => "responses",
        }
    }
    /// One streamed turn with `message` as the user's text.
    fn request(self, token: &str, message: &str) -> Vec<u8> {
        match self {
            Api::Chat => http::chat_request("127.0.0.1", "/v1/chat/completions", token, message, true),
            Api::Responses => http::responses_request("127.0.0.1", token, message, true),
        }
    }
    /// (first content, end) markers.
    fn marks(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Api::Chat => (CONTENT_MARK, DONE_MARK),
            Api::Responses => (DELTA_EVENT_MARK, DONE_MARK),
        }
    }
}

/// C keep-alive connections, each running streamed turns back to back.
struct ChatPool {
    conns: Vec<Conn>,
    req: Arc<Vec<u8>>,
    marks: (&'static [u8], &'static [u8]),
}

impl ChatPool {
    fn new(addr: &str, conc: usize, req: Vec<u8>) -> Self {
        ChatPool {
            conns: (0..conc).map(|_| Conn::new(addr)).collect(),
            req: Arc::new(req),
            marks: (CONTENT_MARK, DONE_MARK),
        }
    }

    fn for_api(addr: &str, conc: usize, api: Api, token: &str, message: &str) -> Self {
        ChatPool { marks: api.marks(), ..ChatPool::new(addr, conc, api.request(token, message)) }
    }

    async fn drive(&mut self, stop: Stop) -> (Vec<Sample>, usize) {
        self.drive_staggered(stop, Duration::ZERO).await
    }

    /// `stagger` spreads the connections' first requests evenly over that long.
    async fn drive_staggered(&mut self, stop: Stop, stagger: Duration) -> (Vec<Sample>, usize) {
        let started = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let step = stagger / self.conns.len().max(1) as u32;
        for (i, mut conn) in self.conns.drain(..).enumerate() {
            let delay = step * i as u32;
            let req = self.req.clone();
            let marks = self.marks;
            let started = started.clone();
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut errors = 0usize;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                loop {
                    let go = match stop {
                        Stop::Count(n) => started.fetch_add(1, Ordering::Relaxed) < n,
                        Stop::Deadline(d) => Instant::now() < d,
                    };
                    if !go {
                        break;
                    }
                    let mut t0 = Instant::now();
                    match conn.exchange(&req, marks, &mut t0).await {
                        Ok(t) if t.status == 200 && t.first.is_some() => samples.push(Sample {
                            first_ns: (t.first.unwrap() - t0).as_nanos() as u64,
                            done_ns: (t.done.unwrap() - t0).as_nanos() as u64,
                        }),
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                (conn, samples, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (conn, s, e) = t.await.expect("task");
            self.conns.push(conn);
            all.extend(s);
            errors += e;
        }
        (all, errors)
    }
}

fn stop_of(args: &Args) -> impl Fn() -> Stop + '_ {
    move || match args.opt("secs") {
        Some(s) => Stop::Deadline(Instant::now() + Duration::from_secs_f64(s.parse().unwrap_or(1.0))),
        None => Stop::Count(args.num("count", 1000)),
    }
}

// ---------------------------------------------------------------- ab

async fn ab(args: &Args) -> Value {
    let token = args.str("token", "bench-token");
    let conc: usize = args.num("conc", 1);
    let rounds: usize = args.num("rounds", 5);
    let warmup: usize = args.num("warmup", 200);
    let message = args.str("message", "hi");
    let stagger = Duration::from_millis(args.num("stagger-ms", 0));
    let apis: Vec<Api> = args.str("api", "chat").split(',').map(|a| Api::parse(a.trim())).collect();
    let stop = stop_of(args);
    let mut native = match args.opt("native") {
        Some(a) => Some(Native::connect(a, &token).await.unwrap_or_else(|e| panic!("native: {e}"))),
        None => None,
    };
    // One pool per clawbridge route, all on the same clawbridge.
    let mut pools: Vec<(Api, ChatPool)> = match args.opt("chat") {
        Some(a) => apis.iter().map(|&api| (api, ChatPool::for_api(a, conc, api, &token, &message))).collect(),
        None => Vec::new(),
    };
    // Warm-up: connections, pools, allocator, caches.
    if let Some(n) = native.as_mut() {
        n.drive(conc, Stop::Count(warmup.max(conc)), &message, stagger).await;
    }
    for (_, p) in pools.iter_mut() {
        p.drive_staggered(Stop::Count(warmup.max(conc)), stagger).await;
    }
    // Side 0 is native, side i + 1 is pools[i].
    // (At least two, so `chat` is empty rather than missing without a pool.)
    let sides = pools.len() + 1;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); sides.max(2)];
    let mut errors = vec![0usize; sides.max(2)];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); sides.max(2)];
    // Each round's first-content p50 per side, for paired comparisons.
    let mut round_p50: Vec<Vec<f64>> = vec![Vec::new(); sides.max(2)];
    for r in 0..rounds {
        // Alternate the order (forwards, backwards), so drift hits every side equally.
        let order: Vec<usize> = if r % 2 == 0 { (0..sides).collect() } else { (0..sides).rev().collect() };
        for side in order {
            let t = Instant::now();
            let got = match side {
                0 => match native.as_mut() {
                    Some(n) => Some(n.drive(conc, stop(), &message, stagger).await),
                    None => None,
                },
                i => Some(pools[i - 1].1.drive_staggered(stop(), stagger).await),
            };
            if let Some((s, e)) = got {
                rates[side].push(s.len() as f64 / t.elapsed().as_secs_f64());
                round_p50[side].push(p50_us(&firsts(&s)));
                samples[side].extend(s);
                errors[side] += e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let side = |i: usize| {
        let s = &samples[i];
        json!({
            "first": summary(&firsts(s)),
            "done": summary(&dones(s)),
            "errors": errors[i],
            "rate_per_round": rates[i].clone(),
            "rate_median": stats::median(&mut rates[i].clone()),
            "first_p50_per_round": round_p50[i].clone(),
        })
    };
    // `native` and `chat` (the first route's figures, whichever route it is)
    // keep figures 1 and 2 as they were; every route also under its own name.
    let mut out = json!({ "conc": conc, "rounds": rounds, "native": side(0), "chat": side(1) });
    let ns = &samples[0];
    let (mut added_by, mut ratio_by) = (json!({}), json!({}));
    for (i, (api, _)) in pools.iter().enumerate() {
        out[api.name()] = side(i + 1);
        let cs = &samples[i + 1];
        if ns.is_empty() || cs.is_empty() {
            continue;
        }
        let (nf, cf, nd, cd) = (firsts(ns), firsts(cs), dones(ns), dones(cs));
        added_by[api.name()] = json!({
            "first_p50_us": p50_us(&cf) - p50_us(&nf),
            "first_p99_us": p99_us(&cf) - p99_us(&nf),
            "done_p50_us": p50_us(&cd) - p50_us(&nd),
            "done_p99_us": p99_us(&cd) - p99_us(&nd),
        });
        ratio_by[api.name()] = json!(stats::median(&mut rates[i + 1].clone()) / stats::median(&mut rates[0].clone()));
        if i == 0 {
            out["added"] = added_by[api.name()].clone();
            out["rate_ratio"] = ratio_by[api.name()].clone();
        }
    }
    if apis.len() > 1 || apis[0] != Api::Chat {
        out["apis"] = json!(apis.iter().map(|a| a.name()).collect::<Vec<_>>());
        out["added_by"] = added_by;
        out["rate_ratio_by"] = ratio_by;
    }
    out
}

// ---------------------------------------------------------------- cpu

async fn cpu(args: &Args) -> Value {
    let token = args.str("token", "bench-token");
    let addr = args.str("chat", "127.0.0.1:8080");
    let pid: u32 = args.num("pid", 0);
    let gw_pid: u32 = args.num("gw-pid", 0);
    let clk: f64 = args.num("clk-tck", 100.0);
    let levels = args.list("levels", "1,16,256,1024");
    let secs: f64 = args.num("secs", 3.0);
    let rounds: usize = args.num("rounds", 3);
    let api = Api::parse(&args.str("api", "chat"));
    let mut pools: Vec<ChatPool> = levels.iter().map(|&c| ChatPool::for_api(&addr, c, api, &token, "hi")).collect();
    for p in pools.iter_mut() {
        let c = p.conns.len();
        p.drive(Stop::Count((c * 4).max(500))).await;
    }
    let mut per: Vec<Vec<Value>> = vec![Vec::new(); levels.len()];
    for _ in 0..rounds {
        for (i, p) in pools.iter_mut().enumerate() {
            let (t0, n0, g0) = (procfs::cpu_ticks(pid), procfs::cpu_ns(pid), procfs::cpu_ticks(gw_pid));
            let start = Instant::now();
            let (s, e) = p.drive(Stop::Deadline(Instant::now() + Duration::from_secs_f64(secs))).await;
            let wall = start.elapsed().as_secs_f64();
            let (t1, n1, g1) = (procfs::cpu_ticks(pid), procfs::cpu_ns(pid), procfs::cpu_ticks(gw_pid));
            let n = s.len().max(1) as f64;
            per[i].push(json!({
                "streams": s.len(), "errors": e, "wall_s": wall,
                "rate": s.len() as f64 / wall,
                "cpu_us_per_stream": (t1 - t0) as f64 / clk * 1e6 / n,
                "cpu_us_per_stream_schedstat": (n1 - n0) as f64 / 1e3 / n,
                "gw_cpu_us_per_stream": (g1 - g0) as f64 / clk * 1e6 / n,
                "done_p50_us": p50_us(&dones(&s)),
            }));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let med = |v: &[Value], k: &str| {
        let mut x: Vec<f64> = v.iter().filter_map(|r| r[k].as_f64()).collect();
        stats::median(&mut x)
    };
    let rows: Vec<Value> = levels
        .iter()
        .zip(per.iter())
        .map(|(c, v)| {
            json!({
                "conc": c,
                "cpu_us_per_stream": med(v, "cpu_us_per_stream"),
                "cpu_us_per_stream_schedstat": med(v, "cpu_us_per_stream_schedstat"),
                "gw_cpu_us_per_stream": med(v, "gw_cpu_us_per_stream"),
                "rate": med(v, "rate"),
                "done_p50_us": med(v, "done_p50_us"),
                "errors": v.iter().map(|r| r["errors"].as_u64().unwrap_or(0)).sum::<u64>(),
                "rounds": v,
            })
        })
        .collect();
    json!({ "levels": rows })
}

// ---------------------------------------------------------------- get

async fn get(args: &Args) -> Value {
    let path = args.str("path", "/healthz");
    let conc: usize = args.num("conc", 64);
    let secs: f64 = args.num("secs", 2.0);
    let rounds: usize = args.num("rounds", 3);
    let lat_count: usize = args.num("lat-count", 2000);
    let targets: Vec<(String, String)> = args
        .all("target")
        .iter()
        .map(|t| {
            let (n, a) = t.split_once('=').expect("--target name=addr");
            (n.to_string(), a.to_string())
        })
        .collect();
    let req = Arc::new(http::get_request("127.0.0.1", &path));
    let mut pools: Vec<Vec<Conn>> = targets.iter().map(|(_, a)| (0..conc).map(|_| Conn::new(a)).collect()).collect();
    let mut single: Vec<Conn> = targets.iter().map(|(_, a)| Conn::new(a)).collect();
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); targets.len()];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let mut errs = vec![0usize; targets.len()];
    // warm-up
    for (i, c) in single.iter_mut().enumerate() {
        for _ in 0..200 {
            let mut t0 = Instant::now();
            if c.exchange(&req, (b"", b""), &mut t0).await.is_err() {
                errs[i] += 1;
            }
        }
    }
    for r in 0..rounds {
        let order: Vec<usize> = if r % 2 == 0 {
            (0..targets.len()).collect()
        } else {
            (0..targets.len()).rev().collect()
        };
        // latency at concurrency 1, interleaved in small batches
        let batch = (lat_count / rounds / 10).max(1);
        for _ in 0..10 {
            for &i in &order {
                for _ in 0..batch {
                    let mut t0 = Instant::now();
                    match single[i].exchange(&req, (b"", b""), &mut t0).await {
                        Ok(t) if t.status == 200 => lat[i].push((t.end.unwrap() - t0).as_nanos() as u64),
                        _ => errs[i] += 1,
                    }
                }
            }
        }
        // throughput at `conc`
        for &i in &order {
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let start = Instant::now();
            let done = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for mut c in pools[i].drain(..) {
                let req = req.clone();
                let done = done.clone();
                tasks.push(tokio::spawn(async move {
                    let mut e = 0;
                    while Instant::now() < deadline {
                        let mut t0 = Instant::now();
                        match c.exchange(&req, (b"", b""), &mut t0).await {
                            Ok(t) if t.status == 200 => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => e += 1,
                        }
                    }
                    (c, e)
                }));
            }
            for t in tasks {
                let (c, e) = t.await.unwrap();
                pools[i].push(c);
                errs[i] += e;
            }
            rates[i].push(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let rows: Vec<Value> = targets
        .iter()
        .enumerate()
        .map(|(i, (n, a))| {
            json!({
                "name": n, "addr": a,
                "latency_c1": summary(&lat[i]),
                "rps_per_round": rates[i].clone(),
                "rps_median": stats::median(&mut rates[i].clone()),
                "errors": errs[i],
            })
        })
        .collect();
    json!({ "path": path, "conc": conc, "targets": rows })
}

// ---------------------------------------------------------------- hold

async fn hold(args: &Args) -> Value {
    let token = args.str("token", "bench-token");
    let addr = args.str("chat", "127.0.0.1:8080");
    let pid: u32 = args.num("pid", 0);
    let gw_pid: u32 = args.num("gw-pid", 0);
    let levels = args.list("levels", "1000,10000");
    let settle: f64 = args.num("settle", 2.0);
    let connect_conc: usize = args.num("connect-conc", 200);
    let req = Arc::new(http::chat_request("127.0.0.1", "/v1/chat/completions", &token, "hold", true));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let open_errors = Arc::new(AtomicUsize::new(0));
    let early_end = Arc::new(AtomicUsize::new(0));
    let established = Arc::new(AtomicUsize::new(0));
    let sem = Arc::new(tokio::sync::Semaphore::new(connect_conc));
    let mut tasks = Vec::new();
    let idle_kib = procfs::rss_kib(pid);
    let gw_idle_kib = procfs::rss_kib(gw_pid);
    let mut rows = Vec::new();
    let mut opened = 0usize;
    for &level in &levels {
        let t = Instant::now();
        while opened < level {
            opened += 1;
            let permit = sem.clone().acquire_owned().await.unwrap();
            let (req, addr, stop) = (req.clone(), addr.clone(), stop_rx.clone());
            let (oe, ee, est) = (open_errors.clone(), early_end.clone(), established.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = Conn::new(&addr);
                match c.open_stream(&req, ROLE_MARK).await {
                    Ok(200) => {
                        est.fetch_add(1, Ordering::Relaxed);
                        drop(permit);
                        if c.hold(stop).await.is_err() {
                            ee.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        oe.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        // wait until every stream of this level is open (or failed)
        let deadline = Instant::now() + Duration::from_secs(120);
        while established.load(Ordering::Relaxed) + open_errors.load(Ordering::Relaxed) < level
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let open_secs = t.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs_f64(settle)).await;
        let rss = procfs::rss_kib(pid);
        rows.push(json!({
            "streams": level,
            "established": established.load(Ordering::Relaxed),
            "open_errors": open_errors.load(Ordering::Relaxed),
            "ended_early": early_end.load(Ordering::Relaxed),
            "open_secs": open_secs,
            "rss_kib": rss,
            "fds": procfs::fd_count(pid),
            "gw_rss_kib": procfs::rss_kib(gw_pid),
            "bytes_per_stream_vs_idle": (rss.saturating_sub(idle_kib) as f64 * 1024.0) / level as f64,
        }));
    }
    // hold a little longer: no stream may end on its own
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let ended_early = early_end.load(Ordering::Relaxed);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let after = procfs::rss_kib(pid);
    // How long until the memory of the burst is back with the system: until
    // 90% of what the streams took is released, or `release-secs`.
    let release_secs: f64 = args.num("release-secs", 15.0);
    let peak = rows.last().and_then(|r| r["rss_kib"].as_u64()).unwrap_or(after);
    let target = idle_kib + peak.saturating_sub(idle_kib) / 10;
    let waited = Instant::now();
    let mut released = after;
    while released > target && waited.elapsed().as_secs_f64() < release_secs {
        tokio::time::sleep(Duration::from_millis(500)).await;
        released = procfs::rss_kib(pid);
    }
    let slope = if rows.len() >= 2 {
        let (a, b) = (&rows[rows.len() - 2], &rows[rows.len() - 1]);
        let drss = b["rss_kib"].as_f64().unwrap() - a["rss_kib"].as_f64().unwrap();
        let dn = b["streams"].as_f64().unwrap() - a["streams"].as_f64().unwrap();
        drss * 1024.0 / dn
    } else {
        f64::NAN
    };
    json!({
        "idle_rss_kib": idle_kib,
        "gw_idle_rss_kib": gw_idle_kib,
        "levels": rows,
        "bytes_per_stream_slope": slope,
        "ended_early_total": ended_early,
        "rss_after_close_kib": after,
        "rss_released_kib": released,
        "release_wait_secs": waited.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------- big

/// A body of short system messages, `bytes` long give or take one message.
/// No user message: the proxy parses and folds all of it (20 MiB of
/// `extraSystemPrompt`), then answers 400 `Missing user message`, so the
/// figure measures the body's parse and nothing downstream of it. With
/// `valid`, user messages instead: each body becomes a run with a ~20 MiB
/// prompt (informational; the frame is encoded and sent on the proxy thread).
fn big_body(bytes: usize, valid: bool) -> Vec<u8> {
    let role = if valid { "user" } else { "system" };
    let one = |i: usize| format!(r#"{{"role":"{role}","content":"rule {i:07}: be brief"}},"#);
    let n = bytes.saturating_sub(64) / one(0).len();
    let mut s = String::with_capacity(bytes);
    s.push_str(r#"{"model":"openclaw","messages":["#);
    for i in 0..n {
        s.push_str(&one(i));
    }
    s.push_str(&format!(r#"{{"role":"{role}","content":"end"}}]}}"#));
    s.into_bytes()
}

async fn big(args: &Args) -> Value {
    let token = args.str("token", "bench-token");
    let addr = args.str("chat", "127.0.0.1:8080");
    let pid: u32 = args.num("pid", 0);
    let n_big: usize = args.num("big", 8);
    let big_bytes: usize = args.num("big-bytes", 20 * 1024 * 1024 - 1024);
    let secs: f64 = args.num("secs", 4.0);
    let rounds: usize = args.num("rounds", 3);
    let small_req = http::chat_request("127.0.0.1", "/v1/chat/completions", &token, "hi", true);
    let valid = args.num("valid", 0) == 1;
    let want_status = if valid { 200 } else { 400 };
    let big_req = Arc::new(http::post_request(
        "127.0.0.1",
        "/v1/chat/completions",
        &token,
        &big_body(big_bytes, valid),
    ));
    let mut small = Conn::new(&addr);
    let smalls = |conn: &mut Conn| {
        let req = small_req.clone();
        let conn = std::mem::replace(conn, Conn::new(&addr));
        async move {
            let mut conn = conn;
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            while Instant::now() < deadline {
                let mut t0 = Instant::now();
                match conn.exchange(&req, (CONTENT_MARK, DONE_MARK), &mut t0).await {
                    Ok(t) if t.status == 200 => lat.push((t.done.unwrap() - t0).as_nanos() as u64),
                    _ => errors += 1,
                }
                // An interactive client, not a closed loop at full speed.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (conn, lat, errors)
        }
    };
    // Warm-up.
    let mut t0 = Instant::now();
    for _ in 0..200 {
        let _ = small.exchange(&small_req, (CONTENT_MARK, DONE_MARK), &mut t0).await;
    }
    let rss_idle = procfs::rss_kib(pid);
    let hwm_idle = procfs::hwm_kib(pid);
    let (mut alone, mut loaded, mut big_lat) = (Vec::new(), Vec::new(), Vec::new());
    let (mut alone_err, mut loaded_err, mut big_err, mut big_statuses) = (0, 0, 0, Vec::new());
    let mut hwm_rounds = Vec::new();
    // The big senders get a runtime (thread) of their own, so the small
    // client's timings are not its own queueing behind 20 MiB writes.
    let big_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    for _ in 0..rounds {
        let (c, lat, e) = smalls(&mut small).await;
        small = c;
        alone.extend(lat);
        alone_err += e;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Big bodies back to back on their own connections, until the small
        // client's window ends.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks: Vec<_> = (0..n_big)
            .map(|_| {
                let (req, addr, stop) = (big_req.clone(), addr.clone(), stop.clone());
                big_rt.spawn(async move {
                    let mut c = Conn::new(&addr);
                    let (mut lat, mut statuses) = (Vec::new(), Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        let mut t0 = Instant::now();
                        match c.exchange(&req, (b"", b""), &mut t0).await {
                            Ok(t) => {
                                lat.push((t.end.unwrap() - t0).as_nanos() as u64);
                                statuses.push(t.status);
                            }
                            Err(_) => statuses.push(0),
                        }
                    }
                    (lat, statuses)
                })
            })
            .collect();
        // Let the first bodies arrive, so the window starts with parses in flight.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (c, lat, e) = smalls(&mut small).await;
        small = c;
        loaded.extend(lat);
        loaded_err += e;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let (lat, statuses) = t.await.expect("big task");
            big_lat.extend(lat);
            big_err += statuses.iter().filter(|s| **s != want_status).count();
            big_statuses.extend(statuses);
        }
        hwm_rounds.push(procfs::hwm_kib(pid));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    big_rt.shutdown_background();
    let hwm = procfs::hwm_kib(pid);
    json!({
        "big": n_big,
        "big_bytes": big_bytes,
        "in_flight_bytes": n_big * big_bytes,
        "small_alone": summary(&alone),
        "small_alone_errors": alone_err,
        "small_loaded": summary(&loaded),
        "small_loaded_errors": loaded_err,
        "big_latency": summary(&big_lat),
        "big_done": big_statuses.len(),
        "big_not_400": big_err,
        "valid": valid,
        "rss_idle_kib": rss_idle,
        "hwm_idle_kib": hwm_idle,
        "hwm_kib": hwm,
        "hwm_per_round_kib": hwm_rounds,
        "rss_after_kib": procfs::rss_kib(pid),
    })
}

// ---------------------------------------------------------------- ttft

async fn ttft(args: &Args) -> Value {
    let token = args.str("token", "test-token");
    let n: usize = args.num("n", 25);
    let warmup: usize = args.num("warmup", 3);
    let message = args.str("message", "hi");
    let targets: Vec<(String, String, String)> = args
        .all("target")
        .iter()
        .map(|t| {
            let (name, rest) = t.split_once('=').expect("--target name=addr/path");
            let (addr, path) = rest.split_at(rest.find('/').expect("path"));
            (name.to_string(), addr.to_string(), path.to_string())
        })
        .collect();
    let reqs: Vec<Vec<u8>> = targets
        .iter()
        .map(|(_, _, p)| http::chat_request("127.0.0.1", p, &token, &message, true))
        .collect();
    let mut conns: Vec<Conn> = targets.iter().map(|(_, a, _)| Conn::new(a)).collect();
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); targets.len()];
    let mut errs = vec![0usize; targets.len()];
    let mut pairs: Vec<f64> = Vec::new();
    for r in 0..(warmup + n) {
        let order: Vec<usize> = if r % 2 == 0 {
            (0..targets.len()).collect()
        } else {
            (0..targets.len()).rev().collect()
        };
        let mut this = vec![0u64; targets.len()];
        for &i in &order {
            let mut t0 = Instant::now();
            match conns[i].exchange(&reqs[i], (CONTENT_MARK, DONE_MARK), &mut t0).await {
                Ok(t) if t.status == 200 && t.first.is_some() => {
                    let s = Sample {
                        first_ns: (t.first.unwrap() - t0).as_nanos() as u64,
                        done_ns: (t.done.unwrap() - t0).as_nanos() as u64,
                    };
                    this[i] = s.first_ns;
                    if r >= warmup {
                        samples[i].push(s);
                    }
                }
                other => {
                    if r >= warmup {
                        errs[i] += 1;
                    }
                    eprintln!("ttft {}: {:?}", targets[i].0, other.map(|t| t.status));
                }
            }
        }
        if r >= warmup && targets.len() == 2 && this[0] > 0 && this[1] > 0 {
            pairs.push(this[0] as f64 / this[1] as f64);
        }
    }
    let rows: Vec<Value> = targets
        .iter()
        .enumerate()
        .map(|(i, (name, a, p))| {
            json!({
                "name": name, "url": format!("http://{a}{p}"),
                "first": summary(&firsts(&samples[i])),
                "done": summary(&dones(&samples[i])),
                "errors": errs[i],
            })
        })
        .collect();
    let ratio = if samples.len() == 2 {
        p50_us(&firsts(&samples[0])) / p50_us(&firsts(&samples[1]))
    } else {
        f64::NAN
    };
    json!({
        "targets": rows,
        "first_p50_ratio": ratio,
        "pairwise_ratio_median": stats::median(&mut pairs),
    })
}
