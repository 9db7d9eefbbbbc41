//! One agent run as a task: scripts the captured event sequences (normal, upstream 400/500, hang, abort/timeout),
//! broadcasts each event once-serialised to every `operator.read` connection and sends the final `res`.

use crate::behaviour::{word_count, AssistantForm, Behaviour, Mode};
use crate::protocol::{self as p, AssistantData, RunRef, Usage};
use crate::registry::{now_ms, Finished, Out, Shared, Subscriber, SLOW_CONSUMER_TIMEOUT};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

/// Chat deltas are throttled by the real gateway (~150 ms); this uses virtual time (sum of delta delays).
const CHAT_THROTTLE: Duration = Duration::from_millis(150);

/// Everything a run task needs.
pub struct RunSpec {
    pub req_id: String,
    pub run_id: String,
    pub session_key: String,
    pub session_id: String,
    pub agent_id: String,
    pub message: String,
    pub timeout: Option<Duration>,
    pub requester: mpsc::Sender<Out>,
}

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Abort,
    Timeout,
}

/// Broadcasts shared event frames to the current subscriber snapshot (refreshed when it changes).
struct Broadcaster {
    shared: Arc<Shared>,
    gen: u64,
    subs: Arc<Vec<Subscriber>>,
}

impl Broadcaster {
    fn new(shared: Arc<Shared>) -> Self {
        let (gen, subs) = shared.subscribers();
        Broadcaster { shared, gen, subs }
    }

    async fn send_prefix(&mut self, prefix: Arc<str>) {
        if self.shared.silent() {
            return;
        }
        if self.shared.subscribers_generation() != self.gen {
            let (gen, subs) = self.shared.subscribers();
            self.gen = gen;
            self.subs = subs;
        }
        let subs = self.subs.clone();
        for s in subs.iter() {
            match s.tx.try_send(Out::Event(prefix.clone())) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(m)) => {
                    if tokio::time::timeout(SLOW_CONSUMER_TIMEOUT, s.tx.send(m)).await.is_err() {
                        tracing::warn!(conn = s.conn_id, "dropping slow consumer");
                        self.shared.kill_conn(s.conn_id);
                    }
                }
            }
        }
    }

    async fn event(&mut self, event: &str, payload: &str) {
        if self.shared.silent() {
            return;
        }
        let prefix: Arc<str> = p::event_prefix(event, payload).into();
        self.send_prefix(prefix).await;
    }

    async fn agent(&mut self, payload: String) {
        self.event("agent", &payload).await;
    }

    async fn chat(&mut self, payload: String) {
        self.event("chat", &payload).await;
    }

    /// Raw (possibly malformed) frames go out as-is, without a frame `seq`.
    async fn raw(&mut self, frame: String) {
        let (_, subs) = self.shared.subscribers();
        for s in subs.iter() {
            let _ = s.tx.send(Out::Frame(frame.clone())).await;
        }
    }
}

/// The run's progress, used to build events and the final result.
struct Script {
    b: Arc<Behaviour>,
    spec: RunSpec,
    seq: u64,
    started_at: u64,
    t0: Instant,
    text: String,
    outputs: u64,
    started: bool,
    abort: oneshot::Receiver<()>,
    deadline: Option<tokio::time::Instant>,
    bc: Broadcaster,
    task_id: String,
    /// What the `chat` stream has shown so far, and whether its next delta must carry `replace:true`.
    pending_chat: (String, bool),
}

impl Script {
    fn r(&self) -> RunRef<'_> {
        RunRef {
            run_id: &self.spec.run_id,
            session_key: &self.spec.session_key,
            session_id: &self.spec.session_id,
            agent_id: &self.spec.agent_id,
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn check(&mut self) -> Result<(), Stop> {
        match self.abort.try_recv() {
            Ok(()) => return Err(Stop::Abort),
            Err(oneshot::error::TryRecvError::Closed) | Err(oneshot::error::TryRecvError::Empty) => {}
        }
        match self.deadline {
            Some(d) if tokio::time::Instant::now() >= d => Err(Stop::Timeout),
            _ => Ok(()),
        }
    }

    /// Sleep `d` (forever when `None`), unless the run is aborted or times out first.
    async fn pause(&mut self, d: Option<Duration>) -> Result<(), Stop> {
        if d == Some(Duration::ZERO) {
            return self.check();
        }
        let sleep = async {
            match d {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let deadline = async {
            match self.deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => Ok(()),
            _ = deadline => Err(Stop::Timeout),
            r = &mut self.abort => match r {
                Ok(()) => Err(Stop::Abort),
                Err(_) => std::future::pending().await,
            },
        }
    }

    async fn task_event(&mut self, status: &str, state: &str, ended: bool) {
        if !self.b.task_events {
            return;
        }
        let now = now_ms();
        let payload = p::task_upserted(
            &self.r(),
            &self.task_id,
            &self.spec.message.chars().take(80).collect::<String>(),
            status,
            state,
            self.started_at,
            now,
            ended.then_some(now),
        );
        self.bc.event("task", &payload).await;
    }

    async fn start(&mut self) {
        self.started = true;
        let s = self.next_seq();
        let e = p::lifecycle_start(&self.r(), s, now_ms());
        self.bc.agent(e).await;
        let s = self.next_seq();
        let e = p::lifecycle_model(&self.r(), s, now_ms());
        self.bc.agent(e).await;
    }

    async fn garbage(&mut self, oversize: usize) {
        self.bc.raw("{\"type\":\"event\",\"event\":\"agent\",\"payload\":{\"runId\":".to_string()).await;
        let ghost = RunRef {
            run_id: "demo-unknown-run",
            session_key: "agent:main:demo-unknown",
            session_id: "00000000-0000-4000-8000-000000000000",
            agent_id: "main",
        };
        let e = p::assistant(&ghost, 1, now_ms(), "ghost:1", AssistantData::Full { text: "ghost", delta: "ghost" });
        self.bc.agent(e).await;
        if oversize > 0 {
            let pad = "x".repeat(oversize.saturating_sub(80));
            let payload = crate::json::Obj::new().str("pad", &pad).finish();
            self.bc.event("demo.oversized", &payload).await;
        }
    }

    /// One `assistant` event of this run with about `n` bytes of filler (`oversized_run_event`).
    async fn oversized_event(&mut self, n: usize) {
        // `text` and `delta` both carry it.
        let filler = "x".repeat(n.saturating_sub(400) / 2);
        let s = self.next_seq();
        let e =
            p::assistant(&self.r(), s, now_ms(), "oversized:1", AssistantData::Full { text: &filler, delta: &filler });
        self.bc.agent(e).await;
    }

    /// Stream the reply deltas; returns when all were sent.
    async fn stream_reply(&mut self) -> Result<(), Stop> {
        let deltas = self.b.reply_deltas(&self.spec.message);
        let item = format!("{}:1", uuid::Uuid::new_v4());
        let form = self.b.assistant_form;
        let delay = self.b.delta_delay;
        let mut chat_sent = String::new();
        let mut chat_replace = false;
        let mut since_chat = Duration::ZERO;
        let mut first_chat = true;
        let mut item_id = item;
        let mut plan: Vec<Option<&str>> = deltas.iter().map(|d| Some(d.as_str())).collect();
        if form == AssistantForm::ReplaceThenText && !deltas.is_empty() {
            plan.insert(0, Some(deltas[0].as_str()));
            plan.insert(1, None);
        }
        for (i, step) in plan.into_iter().enumerate() {
            if i > 0 {
                self.pause(Some(delay)).await?;
                since_chat += delay;
            } else {
                self.check()?;
            }
            let s = self.next_seq();
            let ts = now_ms();
            let ev = match step {
                None => {
                    item_id = format!("{}:1", uuid::Uuid::new_v4());
                    self.text.clear();
                    chat_replace = true;
                    p::assistant(&self.r(), s, ts, &item_id, AssistantData::Replace)
                }
                Some(delta) => {
                    self.text.push_str(delta);
                    self.outputs += 1;
                    let d = match form {
                        AssistantForm::DeltaOnly => AssistantData::DeltaOnly { delta },
                        AssistantForm::TextOnly => AssistantData::TextOnly { text: &self.text },
                        _ => AssistantData::Full { text: &self.text, delta },
                    };
                    p::assistant(&self.r(), s, ts, &item_id, d)
                }
            };
            self.bc.agent(ev).await;
            if step.is_some() && (first_chat || since_chat >= CHAT_THROTTLE) {
                let ev = self.chat_delta(s, &mut chat_sent, &mut chat_replace);
                self.bc.chat(ev).await;
                first_chat = false;
                since_chat = Duration::ZERO;
            }
        }
        self.pending_chat = (chat_sent, chat_replace);
        Ok(())
    }

    fn chat_delta(&self, seq: u64, chat_sent: &mut String, replace: &mut bool) -> String {
        let delta = if *replace || !self.text.starts_with(chat_sent.as_str()) {
            self.text.as_str()
        } else {
            &self.text[chat_sent.len()..]
        };
        let ev = p::chat_delta(&self.r(), seq, now_ms(), delta, *replace, &self.text);
        *replace = false;
        chat_sent.clone_from(&self.text);
        ev
    }
}

/// Run the scripted sequence for one accepted `agent` request.
pub async fn run(shared: Arc<Shared>, spec: RunSpec, abort: oneshot::Receiver<()>) {
    let b = shared.behaviour();
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let input = word_count(&spec.message);
    let mut sc = Script {
        bc: Broadcaster::new(shared.clone()),
        b: b.clone(),
        seq: 0,
        started_at: now_ms(),
        t0: Instant::now(),
        text: String::new(),
        outputs: 0,
        started: false,
        abort,
        deadline,
        task_id: uuid::Uuid::new_v4().to_string(),
        pending_chat: (String::new(), false),
        spec,
    };
    let outcome = drive(&mut sc, b.mode).await;
    let (payload, error, wait_status) = match outcome {
        Ok(Ended::Completed) => {
            let usage = Usage { input, output: sc.outputs };
            let payload = p::final_ok_payload(&sc.r(), &sc.text, sc.t0.elapsed().as_millis() as u64, usage);
            (payload, None, "ok")
        }
        Ok(Ended::Failed(f)) => {
            let (payload, err) = p::final_error_parts(&sc.spec.run_id, f.message);
            (payload, Some(err), "error")
        }
        Err(stop) => {
            let reason = if stop == Stop::Abort { "rpc" } else { "timeout" };
            let error = if stop == Stop::Abort { "aborted" } else { "timeout" };
            if sc.started {
                let s = sc.next_seq();
                let e = p::lifecycle_model_reset(&sc.r(), s, now_ms());
                sc.bc.agent(e).await;
            }
            let s = sc.next_seq();
            let e = p::lifecycle_aborted(&sc.r(), s, sc.started_at, now_ms(), error, reason);
            sc.bc.agent(e).await;
            let e = p::chat_aborted(&sc.r(), s, now_ms(), reason, &sc.text);
            sc.bc.chat(e).await;
            let usage = Usage { input, output: sc.outputs };
            let payload =
                p::final_aborted_payload(&sc.r(), &sc.text, sc.t0.elapsed().as_millis() as u64, usage, reason);
            (payload, None, "timeout")
        }
    };
    let frame = match &error {
        Some(err) => p::res_err_with_payload(&sc.spec.req_id, &payload, err),
        None => p::res_ok(&sc.spec.req_id, &payload),
    };
    shared
        .finish_run(&sc.spec.run_id, Finished { payload, error, wait_status, ended_at: now_ms(), at: Instant::now() });
    let _ = sc.spec.requester.send(Out::Frame(frame)).await;
}

enum Ended {
    Completed,
    Failed(p::Failure<'static>),
}

async fn drive(sc: &mut Script, mode: Mode) -> Result<Ended, Stop> {
    if let Some(n) = sc.b.send_garbage_before_events {
        sc.garbage(n).await;
    }
    let first = sc.b.first_event_delay;
    sc.pause(Some(first)).await?;
    if mode == Mode::Hang {
        sc.pause(None).await?;
    }
    sc.task_event("running", "unknown", false).await;
    sc.task_event("running", "running", false).await;
    match mode {
        Mode::Normal | Mode::Hang => normal(sc).await,
        Mode::Upstream400 => {
            fail_attempt(sc, &p::FAILURE_400).await;
            fail_final(sc, p::FAILURE_400).await
        }
        Mode::Upstream500 => {
            let retries = u64::from(sc.b.upstream500_retries);
            let delay = sc.b.upstream500_retry_delay;
            for attempt in 1..=retries {
                fail_attempt(sc, &p::FAILURE_500).await;
                let s = sc.next_seq();
                let e = p::run_status_retrying(&sc.r(), s, now_ms(), attempt, retries, delay.as_millis() as u64);
                sc.bc.agent(e).await;
                sc.pause(Some(delay)).await?;
                let s = sc.next_seq();
                let item = format!("{}:1", uuid::Uuid::new_v4());
                let e = p::assistant(&sc.r(), s, now_ms(), &item, AssistantData::Replace);
                sc.bc.agent(e).await;
            }
            fail_attempt(sc, &p::FAILURE_500).await;
            fail_final(sc, p::FAILURE_500).await
        }
    }
}

async fn normal(sc: &mut Script) -> Result<Ended, Stop> {
    sc.start().await;
    if let Some(n) = sc.b.oversized_run_event {
        sc.oversized_event(n).await;
    }
    sc.stream_reply().await?;
    let s = sc.next_seq();
    let e = p::usage(&sc.r(), s, now_ms(), sc.outputs);
    sc.bc.agent(e).await;
    let s = sc.next_seq();
    let e = p::lifecycle_finishing(&sc.r(), s, now_ms());
    sc.bc.agent(e).await;
    let s = sc.next_seq();
    let e = p::lifecycle_model_reset(&sc.r(), s, now_ms());
    sc.bc.agent(e).await;
    let s = sc.next_seq();
    let e = p::lifecycle_end(&sc.r(), s, sc.started_at, now_ms(), &sc.text);
    sc.bc.agent(e).await;
    let (mut chat_sent, mut replace) = std::mem::take(&mut sc.pending_chat);
    if chat_sent != sc.text || replace {
        let e = sc.chat_delta(s, &mut chat_sent, &mut replace);
        sc.bc.chat(e).await;
    }
    let e = p::chat_final(&sc.r(), s, now_ms(), &sc.text);
    sc.bc.chat(e).await;
    sc.task_event("running", "finished", false).await;
    sc.task_event("completed", "finished", true).await;
    Ok(Ended::Completed)
}

/// start, model, finishing-with-error (one failed upstream attempt).
async fn fail_attempt(sc: &mut Script, f: &p::Failure<'_>) {
    sc.start().await;
    let s = sc.next_seq();
    let e = p::lifecycle_finishing_error(&sc.r(), s, now_ms(), f);
    sc.bc.agent(e).await;
}

/// model reset, lifecycle error, chat error.
async fn fail_final(sc: &mut Script, f: p::Failure<'static>) -> Result<Ended, Stop> {
    let s = sc.next_seq();
    let e = p::lifecycle_model_reset(&sc.r(), s, now_ms());
    sc.bc.agent(e).await;
    let s = sc.next_seq();
    let e = p::lifecycle_error(&sc.r(), s, sc.started_at, now_ms(), &f);
    sc.bc.agent(e).await;
    let e = p::chat_error(&sc.r(), s, &f);
    sc.bc.chat(e).await;
    Ok(Ended::Failed(f))
}
