//! Shared gateway state: connections and their outgoing queues, the broadcast subscriber snapshot, in-flight runs,
//! the idempotency cache, per-session memory and the request log that tests inspect.

use crate::behaviour::Behaviour;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::AbortHandle;

/// Capacity of each connection's outgoing queue (frames).
pub const OUT_QUEUE: usize = 4096;
/// A subscriber whose queue stays full this long is dropped (the real gateway drops slow consumers too).
pub const SLOW_CONSUMER_TIMEOUT: Duration = Duration::from_secs(5);
/// Idempotency cache: entries live 5 min, at most 1000 (`DEDUPE_TTL_MS`, `DEDUPE_MAX`).
pub const DEDUPE_TTL: Duration = Duration::from_secs(300);
pub const DEDUPE_MAX: usize = 1000;
/// Caps of the test-facing logs (so long benchmarks do not grow memory without bound).
pub const REQUEST_LOG_LIMIT: usize = 10_000;
pub const SESSION_LIMIT: usize = 10_000;
pub const SESSION_MESSAGES_LIMIT: usize = 1_000;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One item in a connection's outgoing queue.
#[derive(Debug)]
pub enum Out {
    /// A complete frame (responses, the challenge).
    Frame(String),
    /// A shared event frame prefix ending in `"seq":`; the writer appends its per-connection counter and `}`.
    Event(Arc<str>),
    /// Handshake done: start sending `tick` events every `Duration`.
    StartTicks(Duration),
    /// Send a close frame and stop writing.
    Close(u16, String),
}

/// Gateway-level configuration fixed at start.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Shared secret; `None` = auth mode "none" (anything is accepted).
    pub secret: Option<String>,
    /// Secret configured with `.password(..)` (changes `auth.method` and the mismatch message).
    pub password_mode: bool,
    pub agents: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Subscriber {
    pub conn_id: u64,
    pub tx: mpsc::Sender<Out>,
}

struct ConnEntry {
    tx: mpsc::Sender<Out>,
    tasks: Vec<AbortHandle>,
    /// Authenticated with the shared token or password (closed when it changes).
    shared_auth: bool,
}

pub struct RunEntry {
    pub session_key: String,
    pub abort: Option<oneshot::Sender<()>>,
    pub done: Arc<Notify>,
    pub task: Option<AbortHandle>,
}

/// Cached final response of a finished run (idempotency replay and `agent.wait`).
#[derive(Debug, Clone)]
pub struct Finished {
    pub payload: String,
    pub error: Option<String>,
    /// `agent.wait` status: "ok" | "error" | "timeout".
    pub wait_status: &'static str,
    pub ended_at: u64,
    pub at: Instant,
}

#[derive(Default)]
struct Dedupe {
    map: HashMap<String, Finished>,
    order: VecDeque<String>,
}

#[derive(Default)]
struct Log {
    requests: VecDeque<serde_json::Value>,
    methods: BTreeMap<String, u64>,
    aborts: Vec<(String, String)>,
}

pub struct SessionEntry {
    pub session_id: String,
    pub messages: Vec<String>,
}

#[derive(Default)]
struct Sessions {
    map: HashMap<String, SessionEntry>,
    order: VecDeque<String>,
}

pub struct Shared {
    pub cfg: GatewayConfig,
    /// The shared secret now (`cfg.secret` at start; see [`Shared::set_secret`]).
    secret: RwLock<Option<String>>,
    behaviour: RwLock<Arc<Behaviour>>,
    silent: AtomicBool,
    pub boot_id: String,
    pub instance_id: String,
    pub started: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, ConnEntry>>,
    subs: RwLock<Arc<Vec<Subscriber>>>,
    subs_gen: AtomicU64,
    runs: Mutex<HashMap<String, RunEntry>>,
    dedupe: Mutex<Dedupe>,
    log: Mutex<Log>,
    sessions: Mutex<Sessions>,
    /// Device pairing (`Behaviour::require_pairing`).
    pub devices: crate::pairing::DeviceBook,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(cfg: GatewayConfig, behaviour: Behaviour) -> Self {
        Shared {
            secret: RwLock::new(cfg.secret.clone()),
            cfg,
            silent: AtomicBool::new(behaviour.silent),
            behaviour: RwLock::new(Arc::new(behaviour)),
            boot_id: uuid::Uuid::new_v4().to_string(),
            instance_id: uuid::Uuid::new_v4().to_string(),
            started: Instant::now(),
            next_id: AtomicU64::new(1),
            conns: Mutex::new(HashMap::new()),
            subs: RwLock::new(Arc::new(Vec::new())),
            subs_gen: AtomicU64::new(0),
            devices: Default::default(),
            runs: Mutex::new(HashMap::new()),
            dedupe: Mutex::new(Dedupe::default()),
            log: Mutex::new(Log::default()),
            sessions: Mutex::new(Sessions::default()),
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    // ---- behaviour

    pub fn behaviour(&self) -> Arc<Behaviour> {
        self.behaviour.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn update_behaviour(&self, f: impl FnOnce(&mut Behaviour)) -> Behaviour {
        let mut g = self.behaviour.write().unwrap_or_else(|e| e.into_inner());
        let mut b = (**g).clone();
        f(&mut b);
        self.silent.store(b.silent, Ordering::Relaxed);
        *g = Arc::new(b.clone());
        b
    }

    pub fn silent(&self) -> bool {
        self.silent.load(Ordering::Relaxed)
    }

    // ---- connections

    pub fn add_conn(&self, id: u64, tx: mpsc::Sender<Out>) {
        lock(&self.conns).insert(id, ConnEntry { tx, tasks: Vec::new(), shared_auth: false });
    }

    pub fn secret(&self) -> Option<String> {
        self.secret.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn mark_shared_auth(&self, id: u64) {
        if let Some(e) = lock(&self.conns).get_mut(&id) {
            e.shared_auth = true;
        }
    }

    /// Changes the shared secret, as a config reload does in 2026.9.6: new handshakes need the new one, and
    /// (unless `keep_links_on_auth_change`) every connection that authenticated with the old one is closed with
    /// 4001 "gateway auth changed". Runs those connections started go on and are broadcast to the others.
    /// Returns how many connections were closed.
    pub fn set_secret(&self, secret: Option<String>) -> usize {
        *self.secret.write().unwrap_or_else(|e| e.into_inner()) = secret;
        if self.behaviour().keep_links_on_auth_change {
            return 0;
        }
        let stale: Vec<(u64, mpsc::Sender<Out>)> =
            lock(&self.conns).iter().filter(|(_, e)| e.shared_auth).map(|(id, e)| (*id, e.tx.clone())).collect();
        for (id, tx) in &stale {
            self.unsubscribe(*id);
            let _ = tx.try_send(Out::Close(4001, "gateway auth changed".into()));
        }
        stale.len()
    }

    /// Revokes a device: its connections are closed with 4001 "device removed".
    pub fn revoke_device(&self, device_id: &str) -> usize {
        let ids = self.devices.revoke(device_id);
        let conns = lock(&self.conns);
        for id in &ids {
            if let Some(e) = conns.get(id) {
                let _ = e.tx.try_send(Out::Close(4001, "device removed".into()));
            }
        }
        ids.len()
    }

    /// Attach task handles to a connection; aborts them at once if the connection is already gone.
    pub fn attach_conn_tasks(&self, id: u64, tasks: Vec<AbortHandle>) {
        let mut conns = lock(&self.conns);
        match conns.get_mut(&id) {
            Some(e) => e.tasks.extend(tasks),
            None => tasks.iter().for_each(AbortHandle::abort),
        }
    }

    pub fn remove_conn(&self, id: u64) {
        self.devices.unbind(id);
        let entry = lock(&self.conns).remove(&id);
        self.unsubscribe(id);
        if let Some(e) = entry {
            e.tasks.iter().for_each(AbortHandle::abort);
        }
    }

    pub fn connection_count(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Abort every WS connection task: the sockets are dropped without a close frame.
    pub fn drop_all_connections(&self) {
        let entries: Vec<ConnEntry> = lock(&self.conns).drain().map(|(_, e)| e).collect();
        *self.subs.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Vec::new());
        self.subs_gen.fetch_add(1, Ordering::Release);
        for e in entries {
            e.tasks.iter().for_each(AbortHandle::abort);
            drop(e.tx);
        }
    }

    pub fn kill_conn(&self, id: u64) {
        self.remove_conn(id);
    }

    pub fn subscribe(&self, id: u64) {
        let tx = match lock(&self.conns).get(&id) {
            Some(e) => e.tx.clone(),
            None => return,
        };
        let mut g = self.subs.write().unwrap_or_else(|e| e.into_inner());
        let mut v = (**g).clone();
        v.push(Subscriber { conn_id: id, tx });
        *g = Arc::new(v);
        self.subs_gen.fetch_add(1, Ordering::Release);
    }

    fn unsubscribe(&self, id: u64) {
        let mut g = self.subs.write().unwrap_or_else(|e| e.into_inner());
        if g.iter().any(|s| s.conn_id == id) {
            let v: Vec<Subscriber> = g.iter().filter(|s| s.conn_id != id).cloned().collect();
            *g = Arc::new(v);
            self.subs_gen.fetch_add(1, Ordering::Release);
        }
    }

    /// Current subscriber snapshot and its generation.
    pub fn subscribers(&self) -> (u64, Arc<Vec<Subscriber>>) {
        let g = self.subs.read().unwrap_or_else(|e| e.into_inner());
        (self.subs_gen.load(Ordering::Acquire), g.clone())
    }

    pub fn subscribers_generation(&self) -> u64 {
        self.subs_gen.load(Ordering::Acquire)
    }

    // ---- runs and idempotency

    /// Register a run unless its key is in flight or finished. `Err(Ok(()))` = in flight, `Err(Err(f))` = finished.
    #[allow(clippy::result_large_err)]
    pub fn begin_run(
        &self,
        run_id: &str,
        session_key: &str,
    ) -> Result<(oneshot::Receiver<()>, Arc<Notify>), Result<(), Finished>> {
        let mut runs = lock(&self.runs);
        if runs.contains_key(run_id) {
            return Err(Ok(()));
        }
        if let Some(f) = self.finished(run_id) {
            return Err(Err(f));
        }
        let (tx, rx) = oneshot::channel();
        let done = Arc::new(Notify::new());
        runs.insert(
            run_id.to_string(),
            RunEntry { session_key: session_key.to_string(), abort: Some(tx), done: done.clone(), task: None },
        );
        Ok((rx, done))
    }

    pub fn attach_run_task(&self, run_id: &str, task: AbortHandle) {
        if let Some(r) = lock(&self.runs).get_mut(run_id) {
            r.task = Some(task);
        }
    }

    /// Cache the final response, then forget the in-flight run and wake `agent.wait`ers.
    pub fn finish_run(&self, run_id: &str, f: Finished) {
        {
            let mut d = lock(&self.dedupe);
            let now = Instant::now();
            while let Some(front) = d.order.front() {
                let expired = d.map.get(front).is_none_or(|e| now.duration_since(e.at) > DEDUPE_TTL);
                if expired || d.map.len() >= DEDUPE_MAX {
                    let k = d.order.pop_front().expect("front exists");
                    d.map.remove(&k);
                } else {
                    break;
                }
            }
            if d.map.insert(run_id.to_string(), f).is_none() {
                d.order.push_back(run_id.to_string());
            }
        }
        if let Some(r) = lock(&self.runs).remove(run_id) {
            r.done.notify_waiters();
        }
    }

    pub fn finished(&self, run_id: &str) -> Option<Finished> {
        let d = lock(&self.dedupe);
        d.map.get(run_id).filter(|f| f.at.elapsed() <= DEDUPE_TTL).cloned()
    }

    pub fn run_done_notify(&self, run_id: &str) -> Option<Arc<Notify>> {
        lock(&self.runs).get(run_id).map(|r| r.done.clone())
    }

    pub fn runs_in_flight(&self) -> usize {
        lock(&self.runs).len()
    }

    /// Abort runs of `session_key` (all of them, or only `run_id`). Returns the aborted run ids.
    pub fn abort_runs(&self, session_key: &str, run_id: Option<&str>) -> Vec<String> {
        let mut runs = lock(&self.runs);
        let mut out = Vec::new();
        for (id, r) in runs.iter_mut() {
            let matches = match run_id {
                Some(want) => id == want && (session_key.is_empty() || r.session_key == session_key),
                None => r.session_key == session_key,
            };
            if matches {
                if let Some(tx) = r.abort.take() {
                    let _ = tx.send(());
                    out.push(id.clone());
                }
            }
        }
        out.sort();
        out
    }

    pub fn abort_all_run_tasks(&self) {
        let mut runs = lock(&self.runs);
        for (_, r) in runs.drain() {
            if let Some(t) = r.task {
                t.abort();
            }
        }
    }

    // ---- logs and sessions

    pub fn record_request(&self, frame: &serde_json::Value, method: &str) {
        let mut l = lock(&self.log);
        if l.requests.len() >= REQUEST_LOG_LIMIT {
            l.requests.pop_front();
        }
        l.requests.push_back(frame.clone());
        *l.methods.entry(method.to_string()).or_insert(0) += 1;
    }

    pub fn record_abort(&self, session_key: &str, run_id: &str) {
        lock(&self.log).aborts.push((session_key.to_string(), run_id.to_string()));
    }

    pub fn received_requests(&self) -> Vec<serde_json::Value> {
        lock(&self.log).requests.iter().cloned().collect()
    }

    pub fn received_methods(&self) -> BTreeMap<String, u64> {
        lock(&self.log).methods.clone()
    }

    pub fn aborts(&self) -> Vec<(String, String)> {
        lock(&self.log).aborts.clone()
    }

    /// Append a user message to a session; returns the session's stable `sessionId`.
    pub fn record_session_message(&self, session_key: &str, message: &str) -> String {
        let mut s = lock(&self.sessions);
        if !s.map.contains_key(session_key) {
            if s.map.len() >= SESSION_LIMIT {
                if let Some(old) = s.order.pop_front() {
                    s.map.remove(&old);
                }
            }
            s.order.push_back(session_key.to_string());
            s.map.insert(
                session_key.to_string(),
                SessionEntry { session_id: uuid::Uuid::new_v4().to_string(), messages: Vec::new() },
            );
        }
        let e = s.map.get_mut(session_key).expect("just inserted");
        if e.messages.len() >= SESSION_MESSAGES_LIMIT {
            e.messages.remove(0);
        }
        e.messages.push(message.to_string());
        e.session_id.clone()
    }

    pub fn sessions(&self) -> BTreeMap<String, Vec<String>> {
        lock(&self.sessions).map.iter().map(|(k, v)| (k.clone(), v.messages.clone())).collect()
    }

    /// Shutdown helper: abort everything that is tracked.
    pub fn abort_everything(&self) {
        self.drop_all_connections();
        self.abort_all_run_tasks();
    }
}
