//! The driver against a scripted link: events are pushed into the run's
//! channel by hand, and the client is a buffer that can hang up. Pingora's
//! coarse timers (`fast_sleep`) run on their own clock thread and do not
//! follow tokio's paused clock, so deadlines here are real and short.

use super::*;
use crate::chat::render::ChatSse;
use crate::gateway::{run_events, AssistantData, Gateway, GatewaySettings};

struct Client {
    written: Vec<u8>,
    ended: bool,
    hang_up: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Downstream for Client {
    async fn gone(&mut self) {
        match self.hang_up.as_mut() {
            Some(rx) => {
                let _ = rx.await;
                self.hang_up = None;
            }
            None => std::future::pending().await,
        }
    }

    async fn write(&mut self, bytes: Bytes, end: bool) -> Result<(), ()> {
        self.written.extend_from_slice(&bytes);
        self.ended |= end;
        Ok(())
    }
}

fn client() -> Client {
    Client { written: Vec::new(), ended: false, hang_up: None }
}

fn link() -> Gateway {
    let settings = GatewaySettings {
        upstream: "127.0.0.1:9".into(),
        handshake_timeout: Duration::from_secs(1),
        max_frame_bytes: 1 << 20,
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(1),
        run_buffer_bytes: 1 << 20,
        tls: None,
        device: None,
        info: Default::default(),
    };
    let creds = crate::gateway::Credentials {
        kind: crate::gateway::frames::SecretKind::None,
        secret: crate::config::Secret::new(String::new()),
    };
    let (_tx, rx) = tokio::sync::watch::channel(creds);
    let hooks = crate::gateway::LinkHooks { credentials: rx, reread: Default::default() };
    crate::gateway::channel(settings, hooks).0
}

fn scripted() -> (run_events::RunSender, Turn) {
    let (tx, events) = run_events::channel(1 << 20);
    let turn = Turn {
        id: "chatcmpl_t".into(),
        agent: "main".into(),
        session_key: "agent:main:openai:t".into(),
        created: 1,
        events,
        gateway: link(),
        finished: false,
    };
    (tx, turn)
}

fn delta(text: &str) -> RunEvent {
    RunEvent::Assistant(Box::new(AssistantData { delta: Some(text.into()), ..Default::default() }))
}

fn lifecycle(phase: &str) -> RunEvent {
    RunEvent::Lifecycle(Box::new(LifecycleData { phase: phase.into(), ..Default::default() }))
}

fn bounds(run_timeout: Duration, keepalive: Duration) -> Bounds {
    Bounds { run_timeout, keepalive }
}

fn chat(include_usage: bool) -> ChatSse {
    ChatSse::new("chatcmpl_t", 1, "openclaw", include_usage, "main".into())
}

fn text(c: &Client) -> String {
    String::from_utf8(c.written.clone()).unwrap()
}

#[tokio::test]
async fn events_become_chunks_and_a_clean_end_finishes_the_turn() {
    let (tx, mut turn) = scripted();
    let mut c = client();
    let feed = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        for e in [delta("Hel"), delta("lo"), lifecycle("end")] {
            tx.send(e).unwrap();
        }
    };
    let mut r = chat(false);
    let run = stream(
        &mut c,
        &mut turn,
        &mut r,
        bounds(Duration::from_secs(5), Duration::ZERO),
        std::future::pending(),
        std::time::Instant::now(),
    );
    let (outcome, ()) = tokio::join!(run, feed);
    assert_eq!(outcome.unwrap(), "ok");
    assert!(turn.finished, "ended on lifecycle end: nothing to abort");
    let out = text(&c);
    assert!(out.contains(r#""delta":{"content":"Hel"}"#) && out.contains(r#""delta":{"content":"lo"}"#), "{out}");
    assert!(out.contains(r#""finish_reason":"stop""#) && out.ends_with("data: [DONE]\n\n") && c.ended, "{out}");
}

#[tokio::test]
async fn a_quiet_run_gets_keepalives_then_its_deadline() {
    let (_tx, mut turn) = scripted();
    let mut c = client();
    let b = bounds(Duration::from_millis(400), Duration::from_millis(100));
    let outcome =
        stream(&mut c, &mut turn, &mut chat(false), b, std::future::pending(), std::time::Instant::now()).await;
    assert_eq!(outcome.unwrap(), "run_timeout");
    let out = text(&c);
    assert!(out.matches(": ping").count() >= 2, "{out}");
    assert!(
        out.ends_with(
            "data: {\"error\":{\"message\":\"upstream provider timeout\",\"type\":\"api_error\"}}\n\ndata: [DONE]\n\n"
        ),
        "{out}"
    );
    assert!(!turn.finished, "the run may still be going: the drop aborts it");
}

#[tokio::test]
async fn a_client_that_hangs_up_leaves_the_turn_to_be_aborted() {
    let (tx, mut turn) = scripted();
    let (hang_up, rx) = tokio::sync::oneshot::channel();
    let mut c = Client { hang_up: Some(rx), ..client() };
    tx.send(delta("partial")).unwrap();
    let feed = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        hang_up.send(()).unwrap();
    };
    let mut r = chat(false);
    let run = stream(
        &mut c,
        &mut turn,
        &mut r,
        bounds(Duration::from_secs(5), Duration::ZERO),
        std::future::pending(),
        std::time::Instant::now(),
    );
    let (outcome, ()) = tokio::join!(run, feed);
    assert_eq!(outcome.unwrap_err(), ApiError::ClientGone);
    assert!(!turn.finished);
    assert!(text(&c).contains("partial"));
}

#[tokio::test]
async fn drain_and_link_loss_end_the_stream_in_band() {
    let (_tx, mut turn) = scripted();
    let mut c = client();
    let drain = tokio::time::sleep(Duration::from_millis(50));
    let b = bounds(Duration::from_secs(5), Duration::ZERO);
    assert_eq!(
        stream(&mut c, &mut turn, &mut chat(false), b, drain, std::time::Instant::now()).await.unwrap(),
        "drained"
    );
    assert!(text(&c).contains("Server is shutting down"));

    let (tx, mut turn) = scripted();
    let mut c = client();
    tx.send(RunEvent::Cut(Box::new(Cut::LinkLost("upstream gateway connection lost".into())))).unwrap();
    assert_eq!(
        stream(&mut c, &mut turn, &mut chat(false), b, std::future::pending(), std::time::Instant::now())
            .await
            .unwrap(),
        "gateway_lost"
    );
    assert!(text(&c).contains("upstream gateway connection lost") && c.ended);
}

#[tokio::test]
async fn collect_waits_for_the_final_res() {
    let (tx, mut turn) = scripted();
    let mut c = client();
    tx.send(delta("x")).unwrap();
    tx.send(RunEvent::Finished(Box::new(Finish {
        ok: true,
        status: "ok".into(),
        text: Some("x".into()),
        ..Default::default()
    })))
    .unwrap();
    let b = bounds(Duration::from_secs(5), Duration::ZERO);
    let done = collect(&mut c, &mut turn, b, std::future::pending(), std::time::Instant::now()).await.unwrap();
    assert_eq!(done.finish.text.as_deref(), Some("x"));
    assert!(turn.finished && c.written.is_empty(), "collect writes nothing itself");
    let (_tx, mut turn) = scripted();
    let b = bounds(Duration::from_millis(100), Duration::ZERO);
    assert_eq!(
        collect(&mut c, &mut turn, b, std::future::pending(), std::time::Instant::now()).await.unwrap_err(),
        ApiError::RunTimeout
    );
}
