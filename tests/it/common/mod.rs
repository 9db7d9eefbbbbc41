//! Test harness: runs the real `clawbridge` binary against the in-repo demo
//! gateway (in-process), on free loopback ports, and reads its responses.
//! Readiness is polled with a deadline, never a fixed sleep.
#![allow(dead_code)]

pub mod raw;
pub mod ws;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use demo_gateway::{AssistantForm, DemoGateway, HandshakeMode, Mode};
use serde_json::Value;

pub const TOKEN: &str = "test-token";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn gateway() -> DemoGateway {
    DemoGateway::builder().token(TOKEN).agents(["main", "ops"]).start().await.expect("demo gateway")
}

/// A running clawbridge process; killed on drop. Its stderr is kept.
pub struct Bridge {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub logs: Arc<Mutex<String>>,
    _gateway_config: tempfile::NamedTempFile,
    _state: tempfile::TempDir,
}

pub struct BridgeOpts {
    pub upstream: SocketAddr,
    pub gateway_config: String,
    pub env: Vec<(String, String)>,
    pub wait_ready: bool,
}

impl BridgeOpts {
    pub fn new(upstream: SocketAddr) -> Self {
        BridgeOpts {
            upstream,
            gateway_config: format!(
                "{{ gateway: {{ auth: {{ mode: 'token', token: '{TOKEN}' }}, http: {{ endpoints: {{ chatCompletions: {{ enabled: true }} }} }} }} }}"
            ),
            env: Vec::new(),
            wait_ready: true,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn gateway_config(mut self, json5: &str) -> Self {
        self.gateway_config = json5.into();
        self
    }

    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    pub async fn start(self) -> Bridge {
        let mut cfg = tempfile::NamedTempFile::new().unwrap();
        cfg.write_all(self.gateway_config.as_bytes()).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        // The device identity's state dir: one per process, removed with it.
        let state = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawbridge"));
        cmd.env_clear()
            .env("CLAWBRIDGE_STATE_DIR", state.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CLAWBRIDGE_LISTEN", addr.to_string())
            .env("CLAWBRIDGE_ADMIN_LISTEN", admin.to_string())
            .env("CLAWBRIDGE_UPSTREAM", self.upstream.to_string())
            .env("OPENCLAW_CONFIG_PATH", cfg.path())
            .env("CLAWBRIDGE_GRACE_PERIOD_SECS", "3")
            .env("CLAWBRIDGE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn clawbridge");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let bridge = Bridge { child, addr, admin, logs, _gateway_config: cfg, _state: state };
        let path = if self.wait_ready { "/readyz" } else { "/healthz" };
        bridge.wait_admin(path, Duration::from_secs(15)).await;
        bridge
    }
}

impl Bridge {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn chat_url(&self) -> String {
        self.url("/v1/chat/completions")
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Polls an admin path until 200, or panics with the logs.
    pub async fn wait_admin(&self, path: &str, deadline: Duration) {
        let start = Instant::now();
        let client = client();
        while start.elapsed() < deadline {
            if let Ok(r) = client.get(self.admin_url(path)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("clawbridge {path} not 200 within {deadline:?}; logs:\n{}", self.logs());
    }

    pub async fn ready(&self) -> bool {
        client().get(self.admin_url("/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    }

    /// stderr so far. clawbridge writes log lines in batches every 20 ms,
    /// so this first waits a few batch intervals for lines already logged.
    pub fn logs(&self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(100));
        self.logs.lock().unwrap().clone()
    }

    /// The gateway config file clawbridge was started with (tests rewrite it).
    pub fn gateway_config_path(&self) -> &std::path::Path {
        self._gateway_config.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit; `None` on timeout.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub async fn metrics(&self) -> String {
        client().get(self.admin_url("/metrics")).send().await.unwrap().text().await.unwrap()
    }

    /// `/metrics` once `settled` holds, or after 2 s (the caller asserts).
    /// Request metrics and in-flight gauges change after the last byte of a
    /// response is written, so a client that has its response can be
    /// a moment ahead of them.
    pub async fn metrics_when(&self, settled: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let m = self.metrics().await;
            if settled(&m) || start.elapsed() > Duration::from_secs(2) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

pub fn chat_body(stream: bool, content: &str) -> Value {
    serde_json::json!({"model": "openclaw", "stream": stream, "messages": [{"role": "user", "content": content}]})
}

pub async fn post_chat(bridge: &Bridge, body: &Value) -> reqwest::Response {
    client().post(bridge.chat_url()).bearer_auth(TOKEN).json(body).send().await.expect("chat request")
}

/// One parsed SSE event: a JSON chunk, `[DONE]`, or a `:` comment.
#[derive(Debug, Clone, PartialEq)]
pub enum Sse {
    Json(Value),
    Done,
    Comment(String),
}

pub fn parse_sse(body: &str) -> Vec<Sse> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            if let Some(c) = e.strip_prefix(':') {
                Sse::Comment(c.trim().to_string())
            } else {
                let data = e.strip_prefix("data: ").unwrap_or_else(|| panic!("not an SSE data line: {e:?}"));
                if data == "[DONE]" {
                    Sse::Done
                } else {
                    Sse::Json(serde_json::from_str(data).unwrap_or_else(|err| panic!("bad JSON {data:?}: {err}")))
                }
            }
        })
        .collect()
}

/// Joined `delta.content` of the chunks.
pub fn content_of(events: &[Sse]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Sse::Json(v) => v["choices"][0]["delta"]["content"].as_str().map(str::to_string),
            _ => None,
        })
        .collect()
}

/// Polls `cond` until true or the deadline passes.
pub async fn eventually(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not true within {deadline:?}");
}
