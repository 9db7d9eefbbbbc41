//! Native-protocol behaviour of the demo gateway, checked with a real WebSocket client against the capture shapes.

mod common;

use common::*;
use demo_gateway::{AssistantForm, DemoGateway, HandshakeMode, Mode};
use futures_util::StreamExt;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn gateway() -> DemoGateway {
    DemoGateway::builder().token(TOKEN).start().await.unwrap()
}

#[tokio::test]
async fn backend_handshake_keeps_scopes() {
    let gw = gateway().await;
    let (_ws, hello) = handshake_with(gw.addr(), connect_params(TOKEN), &[]).await;
    assert_eq!(hello["type"], "res");
    assert_eq!(hello["id"], "connect-1");
    let p = &hello["payload"];
    assert_eq!(p["type"], "hello-ok");
    assert_eq!(p["protocol"], 4);
    assert_eq!(p["auth"], json!({"method":"token","role":"operator","scopes":["operator.read","operator.write"]}));
    assert_eq!(p["policy"]["tickIntervalMs"], 30000);
    assert_eq!(p["snapshot"]["sessionDefaults"]["mainSessionKey"], "agent:main:main");
    assert_eq!(gw.connection_count(), 1);
}

#[tokio::test]
async fn password_field_carries_the_token() {
    let gw = gateway().await;
    let mut params = connect_params(TOKEN);
    params["auth"] = json!({"password": TOKEN});
    let (_ws, hello) = handshake_with(gw.addr(), params, &[]).await;
    assert_eq!(hello["payload"]["auth"]["scopes"], json!(["operator.read", "operator.write"]));
}

#[tokio::test]
async fn origin_header_clears_scopes_and_agent_is_forbidden() {
    let gw = gateway().await;
    let (mut ws, hello) = handshake_with(gw.addr(), connect_params(TOKEN), &[("origin", "http://evil.example")]).await;
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]));
    agent(&mut ws, "a1", json!({"message":"hi","idempotencyKey":"k1"})).await;
    let res = recv_no_tick(&mut ws).await;
    assert_eq!(
        res,
        json!({"type":"res","id":"a1","ok":false,"error":{"code":"FORBIDDEN","message":"missing scope: operator.write","details":{"code":"MISSING_SCOPE","missingScope":"operator.write","requiredScopes":["operator.write"]}}})
    );
    let (_ws2, hello) = handshake_with(gw.addr(), connect_params(TOKEN), &[("x-forwarded-for", "10.0.0.1")]).await;
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]));
}

#[tokio::test]
async fn wrong_token_gets_captured_error_and_close_1008() {
    let gw = gateway().await;
    let (mut ws, res) = handshake_with(gw.addr(), connect_params("wrong-token"), &[]).await;
    assert_eq!(
        res,
        json!({"type":"res","id":"connect-1","ok":false,"error":{"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (provide gateway auth token)","details":{"code":"AUTH_TOKEN_MISMATCH","authReason":"token_mismatch","canRetryWithDeviceToken":false,"recommendedNextStep":"update_auth_credentials"}}})
    );
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(cf)))) => {
            assert_eq!(u16::from(cf.code), 1008);
            assert_eq!(cf.reason.as_str(), "unauthorized: gateway token mismatch (provide gateway auth token)");
        }
        other => panic!("expected close, got {other:?}"),
    }
}

#[tokio::test]
async fn first_frame_rules() {
    let gw = gateway().await;
    let mut ws = open(gw.addr(), &[]).await;
    recv(&mut ws).await;
    send(&mut ws, json!({"type":"req","id":"x1","method":"health","params":{}})).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"type":"res","id":"x1","ok":false,"error":{"code":"INVALID_REQUEST","message":"invalid handshake: first request must be connect"}})
    );
    match ws.next().await {
        Some(Ok(Message::Close(Some(cf)))) => assert_eq!(u16::from(cf.code), 1008),
        other => panic!("expected close, got {other:?}"),
    }
    let mut ws = open(gw.addr(), &[]).await;
    recv(&mut ws).await;
    futures_util::SinkExt::send(&mut ws, Message::Text("hello".into())).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(cf)))) => assert_eq!(u16::from(cf.code), 1000),
        other => panic!("expected close 1000, got {other:?}"),
    }
    let mut p = connect_params(TOKEN);
    p["minProtocol"] = json!(5);
    p["maxProtocol"] = json!(5);
    let (mut ws, res) = handshake_with(gw.addr(), p, &[]).await;
    assert_eq!(res["error"]["details"]["code"], "PROTOCOL_MISMATCH");
    match ws.next().await {
        Some(Ok(Message::Close(Some(cf)))) => assert_eq!(u16::from(cf.code), 1002),
        other => panic!("expected close 1002, got {other:?}"),
    }
}

#[tokio::test]
async fn agent_turn_follows_capture_order() {
    let gw = DemoGateway::builder().token(TOKEN).reply(["Hello", ", world!"]).start().await.unwrap();
    let mut ws = handshake(gw.addr()).await;
    agent(&mut ws, "agent-1", json!({"message":"Say hello","idempotencyKey":"idem-1","agentId":"main"})).await;
    let frames = collect_run(&mut ws, "agent-1").await;
    let labels: Vec<String> = frames.iter().map(label).collect();
    assert_eq!(
        labels,
        [
            "res:accepted",
            "agent:lifecycle:start",
            "agent:lifecycle:model",
            "agent:assistant",
            "chat:delta",
            "agent:assistant",
            "agent:usage",
            "agent:lifecycle:finishing",
            "agent:lifecycle:model-reset",
            "agent:lifecycle:end",
            "chat:delta",
            "chat:final",
            "res:ok",
        ]
    );
    assert_eq!(
        frames[0]["payload"],
        json!({"runId":"idem-1","sessionKey":"agent:main:main","agentId":"main","status":"accepted","acceptedAt":frames[0]["payload"]["acceptedAt"]})
    );
    // Frame seq counts per connection; payload seq per run (chat shares the agent seq).
    let frame_seqs: Vec<u64> = frames[1..12].iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert_eq!(frame_seqs, (1..=11).collect::<Vec<_>>());
    let payload_seqs: Vec<u64> = frames[1..12].iter().map(|f| f["payload"]["seq"].as_u64().unwrap()).collect();
    assert_eq!(payload_seqs, [1, 2, 3, 3, 4, 5, 6, 7, 8, 8, 8]);
    assert_eq!(frames[3]["payload"]["data"]["text"], "Hello");
    assert_eq!(
        frames[5]["payload"]["data"],
        json!({"text":"Hello, world!","delta":", world!","itemId":frames[3]["payload"]["data"]["itemId"]})
    );
    assert_eq!(frames[10]["payload"]["deltaText"], ", world!");
    let fin = &frames[12];
    assert_eq!(fin["ok"], true);
    assert_eq!(fin["payload"]["status"], "ok");
    assert_eq!(fin["payload"]["summary"], "completed");
    assert_eq!(fin["payload"]["result"]["payloads"], json!([{"text":"Hello, world!","mediaUrl":null}]));
    assert_eq!(
        fin["payload"]["result"]["meta"]["agentMeta"]["usage"],
        json!({"input":2,"output":2,"cacheRead":0,"cacheWrite":0,"total":4})
    );
    assert_eq!(fin["payload"]["result"]["meta"]["stopReason"], "stop");
    assert_eq!(gw.session_messages("agent:main:main"), ["Say hello"]);
    assert_eq!(gw.runs_in_flight(), 0);
    let reqs = gw.received_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1]["method"], "agent");
}

#[tokio::test]
async fn default_reply_echoes_the_prompt_word_by_word() {
    let gw = gateway().await;
    let mut ws = handshake(gw.addr()).await;
    agent(&mut ws, "a", json!({"message":"hi there","idempotencyKey":"e1","sessionKey":"My-Thread"})).await;
    let frames = collect_run(&mut ws, "a").await;
    assert_eq!(frames[0]["payload"]["sessionKey"], "agent:main:my-thread");
    let deltas: Vec<&str> = frames
        .iter()
        .filter(|f| f["payload"]["stream"] == "assistant")
        .map(|f| f["payload"]["data"]["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["You ", "said: ", "hi ", "there"]);
    let fin = frames.last().unwrap();
    assert_eq!(fin["payload"]["result"]["payloads"][0]["text"], "You said: hi there");
    assert_eq!(fin["payload"]["result"]["meta"]["agentMeta"]["usage"]["input"], 2);
    assert_eq!(fin["payload"]["result"]["meta"]["agentMeta"]["usage"]["output"], 4);
    assert_eq!(gw.sessions().get("agent:main:my-thread").unwrap(), &vec!["hi there".to_string()]);
}

#[tokio::test]
async fn events_are_broadcast_to_every_reader() {
    let gw = DemoGateway::builder().token(TOKEN).reply(["a", "b"]).start().await.unwrap();
    let mut a = handshake(gw.addr()).await;
    let mut b = handshake(gw.addr()).await;
    agent(&mut a, "r1", json!({"message":"x","idempotencyKey":"shared-run"})).await;
    let fa = collect_run(&mut a, "r1").await;
    let mut fb = Vec::new();
    while fb.len() < fa.len() - 2 {
        fb.push(recv_no_tick(&mut b).await);
    }
    let la: Vec<String> = fa[1..fa.len() - 1].iter().map(label).collect();
    let lb: Vec<String> = fb.iter().map(label).collect();
    assert_eq!(la, lb);
    assert!(fb.iter().all(|f| f["payload"]["runId"] == "shared-run" && f["type"] == "event"));
}

#[tokio::test]
async fn chat_abort_ends_a_hanging_run() {
    let gw = gateway().await;
    gw.set(|b| b.mode = Mode::Hang);
    let mut ws = handshake(gw.addr()).await;
    agent(&mut ws, "h1", json!({"message":"wait","idempotencyKey":"hang-1","sessionKey":"s1"})).await;
    assert_eq!(recv_no_tick(&mut ws).await["payload"]["status"], "accepted");
    assert!(tokio::time::timeout(Duration::from_millis(100), recv_no_tick(&mut ws)).await.is_err());
    assert_eq!(gw.runs_in_flight(), 1);
    send(
        &mut ws,
        json!({"type":"req","id":"ab1","method":"chat.abort","params":{"sessionKey":"agent:main:s1","runId":"hang-1"}}),
    )
    .await;
    let frames = collect_run(&mut ws, "h1").await;
    let labels: Vec<String> = frames.iter().map(label).collect();
    assert_eq!(labels, ["res:ok", "agent:lifecycle:error", "chat:aborted", "res:timeout"]);
    assert_eq!(
        frames[0],
        json!({"type":"res","id":"ab1","ok":true,"payload":{"ok":true,"aborted":true,"runIds":["hang-1"]}})
    );
    assert_eq!(frames[1]["payload"]["data"]["aborted"], true);
    assert_eq!(frames[1]["payload"]["data"]["error"], "aborted");
    assert_eq!(frames[2]["payload"]["stopReason"], "rpc");
    let fin = &frames[3];
    assert_eq!(fin["ok"], true);
    assert_eq!(fin["payload"]["status"], "timeout");
    assert_eq!(fin["payload"]["summary"], "aborted");
    assert_eq!(fin["payload"]["stopReason"], "rpc");
    assert_eq!(gw.aborts(), [("agent:main:s1".to_string(), "hang-1".to_string())]);
    assert_eq!(gw.runs_in_flight(), 0);
    send(
        &mut ws,
        json!({"type":"req","id":"ab2","method":"chat.abort","params":{"sessionKey":"agent:main:s1","runId":"nope"}}),
    )
    .await;
    assert_eq!(recv_no_tick(&mut ws).await["payload"], json!({"ok":true,"aborted":false,"runIds":[]}));
}

#[tokio::test]
async fn idempotency_in_flight_and_replay() {
    let gw = gateway().await;
    gw.set(|b| b.delta_delay = Duration::from_millis(30));
    let mut ws = handshake(gw.addr()).await;
    let params = json!({"message":"one two","idempotencyKey":"idem-retry-demo"});
    agent(&mut ws, "a1", params.clone()).await;
    agent(&mut ws, "a2", params.clone()).await;
    let mut in_flight = None;
    let mut first_final = None;
    while in_flight.is_none() || first_final.is_none() {
        let v = recv_no_tick(&mut ws).await;
        if v["id"] == "a2" {
            in_flight = Some(v);
        } else if v["id"] == "a1" && v["payload"]["status"] == "ok" {
            first_final = Some(v);
        }
    }
    assert_eq!(in_flight.unwrap()["payload"], json!({"runId":"idem-retry-demo","status":"in_flight"}));
    agent(&mut ws, "a3", params).await;
    let replay = recv_no_tick(&mut ws).await;
    assert_eq!(replay["id"], "a3");
    assert_eq!(replay["payload"], first_final.unwrap()["payload"]);
}

#[tokio::test]
async fn agent_validation_errors() {
    let gw = DemoGateway::builder().token(TOKEN).agents(["main", "ops"]).start().await.unwrap();
    let mut ws = handshake(gw.addr()).await;
    let cases = [
        (
            json!({"message":"m","idempotencyKey":"k","agentId":"nosuchagent"}),
            "invalid agent params: unknown agent id \"nosuchagent\"",
        ),
        (
            json!({"message":"m","idempotencyKey":"k","bogus":true}),
            "invalid agent params: at root: unexpected property 'bogus'",
        ),
        (
            json!({"message":"m","idempotencyKey":""}),
            "invalid agent params: at /idempotencyKey: must not have fewer than 1 characters",
        ),
    ];
    for (i, (params, msg)) in cases.into_iter().enumerate() {
        let id = format!("v{i}");
        agent(&mut ws, &id, params).await;
        let res = recv_no_tick(&mut ws).await;
        assert_eq!(res, json!({"type":"res","id":id,"ok":false,"error":{"code":"INVALID_REQUEST","message":msg}}));
    }
    send(&mut ws, json!({"type":"req","id":"u1","method":"nope.method","params":{}})).await;
    assert_eq!(recv_no_tick(&mut ws).await["error"]["message"], "unknown method: nope.method");
    agent(&mut ws, "ops1", json!({"message":"m","idempotencyKey":"o1","agentId":"ops"})).await;
    assert_eq!(recv_no_tick(&mut ws).await["payload"]["sessionKey"], "agent:ops:main");
}

#[tokio::test]
async fn upstream_failures_have_captured_shapes() {
    let gw = gateway().await;
    let mut ws = handshake(gw.addr()).await;
    gw.set(|b| b.mode = Mode::Upstream400);
    agent(&mut ws, "f4", json!({"message":"x","idempotencyKey":"u400"})).await;
    let frames = collect_run(&mut ws, "f4").await;
    let labels: Vec<String> = frames.iter().map(label).collect();
    assert_eq!(
        labels,
        [
            "res:accepted",
            "agent:lifecycle:start",
            "agent:lifecycle:model",
            "agent:lifecycle:finishing",
            "agent:lifecycle:model-reset",
            "agent:lifecycle:error",
            "chat:error",
            "res:error"
        ]
    );
    let fin = frames.last().unwrap();
    let msg = "LLM request failed: provider rejected the request schema or tool payload.";
    assert_eq!(fin["ok"], false);
    assert_eq!(fin["payload"], json!({"runId":"u400","status":"error","summary":msg}));
    assert_eq!(fin["error"], json!({"code":"UNAVAILABLE","message":msg}));
    assert_eq!(frames[3]["payload"]["data"]["errorObservation"]["failoverReason"], "format");

    gw.set(|b| {
        b.mode = Mode::Upstream500;
        b.upstream500_retries = 2;
        b.upstream500_retry_delay = Duration::from_millis(5);
    });
    agent(&mut ws, "f5", json!({"message":"x","idempotencyKey":"u500"})).await;
    let frames = collect_run(&mut ws, "f5").await;
    let labels: Vec<String> = frames.iter().map(label).collect();
    let attempt = ["agent:lifecycle:start", "agent:lifecycle:model", "agent:lifecycle:finishing"];
    let mut want = vec!["res:accepted"];
    for _ in 0..2 {
        want.extend(attempt);
        want.extend(["agent:run_status", "agent:assistant"]);
    }
    want.extend(attempt);
    want.extend(["agent:lifecycle:model-reset", "agent:lifecycle:error", "chat:error", "res:error"]);
    assert_eq!(labels, want);
    let replace = frames.iter().find(|f| label(f) == "agent:assistant").unwrap();
    assert_eq!(replace["payload"]["data"]["replace"], true);
    assert_eq!(frames.last().unwrap()["error"]["code"], "UNAVAILABLE");
}

#[tokio::test]
async fn assistant_forms_and_replace() {
    let gw = DemoGateway::builder().token(TOKEN).reply(["A", "B"]).start().await.unwrap();
    let mut ws = handshake(gw.addr()).await;
    let data_of = |frames: &[serde_json::Value]| -> Vec<serde_json::Value> {
        frames
            .iter()
            .filter(|f| f["payload"]["stream"] == "assistant")
            .map(|f| {
                let mut d = f["payload"]["data"].clone();
                d.as_object_mut().unwrap().remove("itemId");
                d
            })
            .collect()
    };
    gw.set(|b| b.assistant_form = AssistantForm::DeltaOnly);
    agent(&mut ws, "d", json!({"message":"x","idempotencyKey":"f-d"})).await;
    assert_eq!(data_of(&collect_run(&mut ws, "d").await), [json!({"delta":"A"}), json!({"delta":"B"})]);
    gw.set(|b| b.assistant_form = AssistantForm::TextOnly);
    agent(&mut ws, "t", json!({"message":"x","idempotencyKey":"f-t"})).await;
    assert_eq!(data_of(&collect_run(&mut ws, "t").await), [json!({"text":"A"}), json!({"text":"AB"})]);
    gw.set(|b| b.assistant_form = AssistantForm::ReplaceThenText);
    agent(&mut ws, "r", json!({"message":"x","idempotencyKey":"f-r"})).await;
    let frames = collect_run(&mut ws, "r").await;
    assert_eq!(
        data_of(&frames),
        [
            json!({"text":"A","delta":"A"}),
            json!({"text":"","delta":"","replace":true}),
            json!({"text":"A","delta":"A"}),
            json!({"text":"AB","delta":"B"})
        ]
    );
    assert_eq!(frames.last().unwrap()["payload"]["result"]["payloads"][0]["text"], "AB");
}

#[tokio::test]
async fn ticks_garbage_and_silence() {
    let gw = DemoGateway::builder()
        .token(TOKEN)
        .tick_interval(Duration::from_millis(40))
        .reply(["z"])
        .start()
        .await
        .unwrap();
    let (mut ws, hello) = handshake_with(gw.addr(), connect_params(TOKEN), &[]).await;
    assert_eq!(hello["payload"]["policy"]["tickIntervalMs"], 40);
    let t = recv(&mut ws).await;
    assert_eq!(t["event"], "tick");
    assert_eq!(t["seq"], 1);
    assert!(t["payload"]["ts"].as_u64().unwrap() > 0);

    gw.set(|b| b.send_garbage_before_events = Some(2048));
    agent(&mut ws, "g", json!({"message":"x","idempotencyKey":"garbage"})).await;
    let mut raw = Vec::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        if let Message::Text(t) = m {
            let done = t.as_str().contains("\"status\":\"ok\"");
            raw.push(t.as_str().to_string());
            if done {
                break;
            }
        }
    }
    assert!(raw.iter().any(|t| serde_json::from_str::<serde_json::Value>(t).is_err()), "malformed frame");
    assert!(raw.iter().any(|t| t.contains("demo-unknown-run")));
    assert!(raw.iter().any(|t| t.len() >= 2000 && t.contains("demo.oversized")));

    gw.set(|b| {
        b.send_garbage_before_events = None;
        b.silent = true;
    });
    agent(&mut ws, "s", json!({"message":"x","idempotencyKey":"silent"})).await;
    let a = recv_no_tick(&mut ws).await;
    assert_eq!(a["payload"]["status"], "accepted");
    let fin = recv(&mut ws).await;
    assert_eq!(fin["payload"]["status"], "ok", "no events or ticks in silent mode: {fin}");
}

#[tokio::test]
async fn handshake_modes() {
    let gw = gateway().await;
    gw.set(|b| b.handshake = HandshakeMode::ClearScopes);
    let (_ws, hello) = handshake_with(gw.addr(), connect_params(TOKEN), &[]).await;
    assert_eq!(hello["payload"]["auth"]["scopes"], json!([]));
    gw.set(|b| b.handshake = HandshakeMode::RejectToken);
    let (_ws, res) = handshake_with(gw.addr(), connect_params(TOKEN), &[]).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    gw.set(|b| b.handshake = HandshakeMode::NeverAnswer);
    let mut ws = open(gw.addr(), &[]).await;
    recv(&mut ws).await;
    send(&mut ws, json!({"type":"req","id":"c","method":"connect","params":connect_params(TOKEN)})).await;
    assert!(tokio::time::timeout(Duration::from_millis(150), ws.next()).await.is_err());
}

#[tokio::test]
async fn drop_all_connections_and_shutdown_rebind() {
    let gw = gateway().await;
    let addr = gw.addr();
    let mut ws = handshake(addr).await;
    assert_eq!(gw.connection_count(), 1);
    gw.drop_all_connections();
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
        None | Some(Err(_)) => {}
        Some(Ok(Message::Close(_))) => panic!("expected an abrupt drop, got a close frame"),
        Some(Ok(m)) => panic!("unexpected {m:?}"),
    }
    assert_eq!(gw.connection_count(), 0);
    let _ws2 = handshake(addr).await;
    gw.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let gw2 = DemoGateway::builder().token(TOKEN).bind(addr.to_string()).start().await.unwrap();
    assert_eq!(gw2.addr(), addr);
    let _ws3 = handshake(addr).await;
}

#[tokio::test]
async fn agent_wait_reports_finished_runs() {
    let gw = gateway().await;
    let mut ws = handshake(gw.addr()).await;
    agent(&mut ws, "w", json!({"message":"x","idempotencyKey":"wait-1"})).await;
    collect_run(&mut ws, "w").await;
    send(&mut ws, json!({"type":"req","id":"aw","method":"agent.wait","params":{"runId":"wait-1","timeoutMs":1000}}))
        .await;
    let res = recv_no_tick(&mut ws).await;
    assert_eq!(res["payload"]["runId"], "wait-1");
    assert_eq!(res["payload"]["status"], "ok");
}

#[tokio::test]
async fn abort_mid_stream_and_timeout_param() {
    let gw = DemoGateway::builder()
        .token(TOKEN)
        .reply(["one ", "two ", "three"])
        .delta_delay(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let mut ws = handshake(gw.addr()).await;
    agent(&mut ws, "m", json!({"message":"x","idempotencyKey":"mid-1","sessionKey":"mid"})).await;
    loop {
        let v = recv_no_tick(&mut ws).await;
        if v["payload"]["stream"] == "assistant" {
            break;
        }
    }
    send(&mut ws, json!({"type":"req","id":"ab","method":"chat.abort","params":{"sessionKey":"mid"}})).await;
    let frames = collect_run(&mut ws, "m").await;
    let labels: Vec<String> = frames.iter().map(label).collect();
    assert_eq!(
        labels,
        ["chat:delta", "res:ok", "agent:lifecycle:model-reset", "agent:lifecycle:error", "chat:aborted", "res:timeout"]
    );
    assert_eq!(frames[1]["payload"]["runIds"], json!(["mid-1"]));
    assert_eq!(frames[4]["payload"]["message"]["content"][0]["text"], "one ");
    assert_eq!(frames[5]["payload"]["result"]["payloads"][0]["text"], "one ");

    gw.set(|b| b.mode = Mode::Hang);
    agent(&mut ws, "t", json!({"message":"x","idempotencyKey":"to-1","timeout":1})).await;
    let frames = collect_run(&mut ws, "t").await;
    let fin = frames.last().unwrap();
    assert_eq!(fin["payload"]["status"], "timeout");
    assert_eq!(fin["payload"]["stopReason"], "timeout");
    assert!(gw.aborts().iter().all(|(_, r)| r != "to-1"));
}
