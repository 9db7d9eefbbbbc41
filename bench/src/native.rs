//! The native side: one gateway WebSocket, handshaken like clawbridge
//! (backend `gateway-client`, operator read+write), driving `c` concurrent
//! `agent` turns multiplexed on it, demultiplexed by run id, exactly the
//! frames clawbridge sends per turn. Times each turn from sending the `agent`
//! request to its first assistant delta and to its final `res`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::stats::Sample;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Native {
    ws: Ws,
    next: u64,
    prefix: String,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow, default)]
    id: Option<&'a str>,
    #[serde(borrow, default)]
    event: Option<&'a str>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AgentEvent<'a> {
    #[serde(rename = "runId", borrow)]
    run_id: &'a str,
    #[serde(borrow)]
    stream: &'a str,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    delta: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ResPayload<'a> {
    #[serde(borrow, default)]
    status: Option<&'a str>,
}

struct InFlight {
    t0: Instant,
    first: Option<Instant>,
}

/// How long a driver runs.
#[derive(Clone, Copy)]
pub enum Stop {
    Count(usize),
    Deadline(Instant),
}

impl Native {
    pub async fn connect(addr: &str, token: &str) -> Result<Native, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).ok();
        let (mut ws, _) = tokio_tungstenite::client_async(
            format!("ws://{addr}/"),
            MaybeTlsStream::Plain(tcp),
        )
        .await
        .map_err(|e| format!("ws upgrade: {e}"))?;
        let connect = serde_json::json!({
            "type": "req", "id": "bench-connect", "method": "connect",
            "params": {
                "minProtocol": 3, "maxProtocol": 4,
                "client": {"id": "gateway-client", "version": "0.1.0", "platform": "linux",
                           "mode": "backend", "displayName": "clawbridge-bench",
                           "instanceId": format!("bench-{}", std::process::id())},
                "role": "operator", "scopes": ["operator.read", "operator.write"], "caps": [],
                "auth": {"token": token}, "userAgent": "clawbridge-bench/0.1.0"
            }
        });
        ws.send(Message::Text(connect.to_string().into()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let m = ws
                .next()
                .await
                .ok_or("closed during handshake")?
                .map_err(|e| e.to_string())?;
            let Message::Text(t) = m else { continue };
            let f: Frame = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
            if f.kind == "res" && f.id == Some("bench-connect") {
                if f.ok != Some(true) {
                    return Err(format!("connect refused: {t}"));
                }
                break;
            }
        }
        Ok(Native {
            ws,
            next: 0,
            prefix: format!("chatcmpl_bench{:08x}", std::process::id()),
        })
    }

    fn frame(&mut self, message: &str) -> (String, String) {
        self.next += 1;
        // Same shape and size as clawbridge's frame (ids are 44 chars there).
        let id = format!("{}-{:021}", self.prefix, self.next);
        let frame = serde_json::json!({
            "type": "req", "id": id, "method": "agent",
            "params": {
                "message": message, "agentId": "main",
                "sessionKey": format!("agent:main:openai:bench-{:031}", self.next),
                "deliver": false, "channel": "webchat", "idempotencyKey": id,
            }
        })
        .to_string();
        (id, frame)
    }

    /// Runs `conc` turns at a time until `stop`; returns (samples, errors).
    /// `stagger` spreads the first `conc` starts evenly over that long, so
    /// paced streams do not run in lockstep.
    pub async fn drive(
        &mut self,
        conc: usize,
        stop: Stop,
        message: &str,
        stagger: Duration,
    ) -> (Vec<Sample>, usize) {
        let mut flight: HashMap<String, InFlight> = HashMap::with_capacity(conc * 2);
        let mut samples = Vec::new();
        let mut errors = 0usize;
        let mut started = 0usize;
        let more = |started: usize| match stop {
            Stop::Count(n) => started < n,
            Stop::Deadline(d) => Instant::now() < d,
        };
        let t_begin = Instant::now();
        let step = stagger / conc.max(1) as u32;
        let mut initial = 0usize;
        loop {
            // Initial starts due now (all at once without a stagger).
            let mut fed = false;
            while initial < conc && t_begin + step * initial as u32 <= Instant::now() && more(started) {
                let (id, f) = self.frame(message);
                flight.insert(id, InFlight { t0: Instant::now(), first: None });
                started += 1;
                initial += 1;
                fed = true;
                if self.ws.feed(Message::Text(f.into())).await.is_err() {
                    return (samples, errors + 1);
                }
            }
            if fed && self.ws.flush().await.is_err() {
                return (samples, errors + 1);
            }
            if !more(started) {
                initial = conc;
            }
            if flight.is_empty() && initial >= conc {
                break;
            }
            let next_start = (initial < conc).then(|| t_begin + step * initial as u32);
            let msg = tokio::select! {
                m = tokio::time::timeout(Duration::from_secs(30), self.ws.next()) => m,
                _ = async { match next_start { Some(t) => tokio::time::sleep_until(t.into()).await, None => std::future::pending().await } } => continue,
            };
            let m = match msg {
                Ok(Some(Ok(m))) => m,
                _ => return (samples, errors + flight.len()),
            };
            let now = Instant::now();
            let Message::Text(t) = m else { continue };
            let Ok(f) = serde_json::from_str::<Frame>(t.as_str()) else {
                continue;
            };
            match (f.kind, f.event) {
                ("event", Some("agent")) => {
                    let Some(p) = f.payload else { continue };
                    let Ok(ev) = serde_json::from_str::<AgentEvent>(p.get()) else {
                        continue;
                    };
                    if ev.stream != "assistant" {
                        continue;
                    }
                    let Some(run) = flight.get_mut(ev.run_id) else {
                        continue;
                    };
                    if run.first.is_none() {
                        let has = ev
                            .data
                            .and_then(|d| serde_json::from_str::<Delta>(d.get()).ok())
                            .and_then(|d| d.delta)
                            .is_some_and(|d| !d.is_empty());
                        if has {
                            run.first = Some(now);
                        }
                    }
                }
                ("res", _) => {
                    let Some(id) = f.id else { continue };
                    let status = f
                        .payload
                        .and_then(|p| serde_json::from_str::<ResPayload>(p.get()).ok())
                        .and_then(|p| p.status);
                    if f.ok == Some(true) && matches!(status, Some("accepted") | Some("in_flight")) {
                        continue;
                    }
                    let Some(run) = flight.remove(id) else { continue };
                    if f.ok == Some(true) && status == Some("ok") {
                        samples.push(Sample {
                            first_ns: run.first.map(|x| (x - run.t0).as_nanos() as u64).unwrap_or(0),
                            done_ns: (now - run.t0).as_nanos() as u64,
                        });
                    } else {
                        errors += 1;
                    }
                    if more(started) {
                        let (id, f) = self.frame(message);
                        flight.insert(id, InFlight { t0: Instant::now(), first: None });
                        started += 1;
                        if self.ws.send(Message::Text(f.into())).await.is_err() {
                            return (samples, errors + flight.len());
                        }
                    }
                }
                _ => {}
            }
        }
        (samples, errors)
    }
}
