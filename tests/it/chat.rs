//! The chat route through the real binary against the demo gateway:
//! stream and non-stream shapes, what reaches the gateway, every error
//! status, and keep-alive comments.

use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};

/// A streamed completion: role chunk first, content in order, the finish
/// chunk, the usage chunk when asked, then `[DONE]`; one id throughout,
/// equal to the run id sent to the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_has_the_gateway_shape() {
    let gw = gateway().await;
    gw.set(|b| b.reply = Some(vec!["Hel".into(), "lo".into(), "!".into()]));
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let mut body = chat_body(true, "hi");
    body["model"] = json!("openclaw/main");
    body["stream_options"] = json!({"include_usage": true});
    let resp = post_chat(&bridge, &body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream; charset=utf-8");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let events = parse_sse(&resp.text().await.unwrap());
    let Sse::Json(first) = &events[0] else { panic!("first event {:?}", events[0]) };
    assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant"}));
    assert_eq!(first["model"], "openclaw/main", "model echoed as sent");
    let id = first["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("chatcmpl_"), "{id}");
    assert_eq!(content_of(&events), "Hello!");
    let n = events.len();
    assert_eq!(events[n - 1], Sse::Done);
    let Sse::Json(usage) = &events[n - 2] else { panic!() };
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let Sse::Json(fin) = &events[n - 3] else { panic!() };
    assert_eq!(fin["choices"][0], json!({"index": 0, "delta": {}, "finish_reason": "stop"}));
    for e in &events[..n - 1] {
        let Sse::Json(v) = e else { panic!("unexpected {e:?}") };
        assert_eq!(v["id"], id.as_str());
    }
    let agent = gw
        .received_requests()
        .into_iter()
        .find(|r| r["method"] == "agent")
        .expect("an agent request reached the gateway");
    let p = &agent["params"];
    assert_eq!(p["idempotencyKey"], id.as_str(), "the run id is the completion id");
    assert_eq!(p["message"], "hi");
    assert_eq!(p["agentId"], "main");
    assert_eq!(p["deliver"], false);
    assert!(p["sessionKey"].as_str().unwrap().starts_with("agent:main:openai:"));
}

/// A non-streamed completion is one JSON body with the joined text and usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_stream_returns_one_completion() {
    let gw = gateway().await;
    gw.set(|b| b.reply = Some(vec!["Hello".into(), ", world!".into()]));
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let resp = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json; charset=utf-8");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "openclaw");
    assert_eq!(v["choices"][0]["message"], json!({"role": "assistant", "content": "Hello, world!"}));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

/// With one proxy thread (the default) the gateway link shares it; with
/// several it runs on its own runtime. Both serve concurrent streams whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_serves_streams_with_one_or_several_proxy_threads() {
    let gw = gateway().await;
    gw.set(|b| b.reply = Some(vec!["Hel".into(), "lo".into()]));
    for threads in ["1", "3"] {
        let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_THREADS", threads).start().await;
        let replies = futures_util::future::join_all((0..12).map(|i| {
            let bridge = &bridge;
            async move { post_chat(bridge, &chat_body(i % 2 == 0, "hi")).await }
        }))
        .await;
        for (i, resp) in replies.into_iter().enumerate() {
            assert_eq!(resp.status(), 200, "threads={threads} request {i}");
            let text = resp.text().await.unwrap();
            if i % 2 == 0 {
                let events = parse_sse(&text);
                assert_eq!(content_of(&events), "Hello", "threads={threads}: {text}");
                assert_eq!(events.last(), Some(&Sse::Done), "threads={threads}");
            } else {
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["choices"][0]["message"]["content"], "Hello", "threads={threads}");
            }
        }
    }
}

/// A chat request is served off Pingora's request task and the connection
/// handed back afterwards: one keep-alive connection carries streams, whole
/// completions, errors and passthrough requests in turn, then closes when
/// the client asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_every_kind_of_request_in_turn() {
    let gw = gateway().await;
    gw.set(|b| b.reply = Some(vec!["Hel".into(), "lo".into()]));
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let mut conn = raw::RawConn::connect(bridge.addr).await.unwrap();
    let chat = |stream: bool, token: &str| raw::chat_request(token, &chat_body(stream, "hi"), "");
    let get = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
    let steps: [(&str, Vec<u8>, u16); 6] = [
        ("stream", chat(true, TOKEN), 200),
        ("passthrough", get.clone(), 200),
        ("json", chat(false, TOKEN), 200),
        ("wrong token", chat(true, "nope"), 401),
        ("stream again", chat(true, TOKEN), 200),
        ("passthrough again", get, 200),
    ];
    for (what, bytes, status) in steps {
        let r =
            conn.send_and_read(bytes, false, Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.status, status, "{what}: {:?}", r.text());
        assert!(!r.closed, "{what}: the connection must stay open");
        assert_eq!(r.header("connection"), Some("keep-alive"), "{what}");
        let date = r.header("date").unwrap_or_default();
        assert!(date.ends_with(" GMT") && date.len() == 29, "{what}: Pingora's date, not a placeholder: {date:?}");
        match what {
            "stream" | "stream again" => {
                let events = parse_sse(&r.text());
                assert_eq!(content_of(&events), "Hello", "{what}");
                assert_eq!(events.last(), Some(&Sse::Done), "{what}");
            }
            "json" => {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(v["choices"][0]["message"]["content"], "Hello");
            }
            _ => {}
        }
    }
    let last = raw::chat_request(TOKEN, &chat_body(false, "hi"), "Connection: close\r\n");
    let r = conn.send_and_read(last, false, Duration::from_secs(10)).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.text());
    assert!(conn.closed_within(Duration::from_secs(5)).await, "closed after `Connection: close`");
    let logs = bridge.logs();
    let chat_lines = logs.lines().filter(|l| l.contains("route=\"chat\"")).count();
    assert_eq!(chat_lines, 5, "one access line per chat request:\n{logs}");
}

/// Every assistant event form the gateway uses ends in the same text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_assistant_event_form_streams_the_same_text() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    for form in [AssistantForm::Full, AssistantForm::DeltaOnly, AssistantForm::TextOnly, AssistantForm::ReplaceThenText]
    {
        gw.set(|b| {
            b.reply = Some(vec!["one ".into(), "two ".into(), "three".into()]);
            b.assistant_form = form;
        });
        let resp = post_chat(&bridge, &chat_body(true, "hi")).await;
        let events = parse_sse(&resp.text().await.unwrap());
        assert_eq!(events.last(), Some(&Sse::Done), "{form:?}");
        let errors: Vec<&Sse> =
            events.iter().filter(|e| matches!(e, Sse::Json(v) if v.get("error").is_some())).collect();
        if form == AssistantForm::ReplaceThenText {
            // A revision of text the client already has cannot be streamed
            // append-only: the built-in ends such a stream with an error too.
            assert!(content_of(&events).starts_with("one"), "{form:?}: {events:?}");
        } else {
            assert!(errors.is_empty(), "{form:?}: {errors:?}");
            assert_eq!(content_of(&events), "one two three", "{form:?}");
        }
    }
}

/// `user` gives a stable session, no `user` a fresh one each call, and the
/// session header routes to exactly that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_routing() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let mut with_user = chat_body(false, "first");
    with_user["user"] = json!("Alice");
    post_chat(&bridge, &with_user).await;
    with_user["messages"][0]["content"] = json!("second");
    post_chat(&bridge, &with_user).await;
    assert_eq!(gw.session_messages("agent:main:openai-user:alice"), ["first", "second"]);

    post_chat(&bridge, &chat_body(false, "anon")).await;
    post_chat(&bridge, &chat_body(false, "anon")).await;
    let anon: Vec<String> = gw.sessions().into_iter().filter(|(_, m)| m == &["anon"]).map(|(k, _)| k).collect();
    assert_eq!(anon.len(), 2, "two fresh sessions: {anon:?}");

    let resp = client()
        .post(bridge.chat_url())
        .bearer_auth(TOKEN)
        .header("x-openclaw-session-key", "my-thread")
        .json(&chat_body(false, "keyed"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.session_messages("agent:main:my-thread"), ["keyed"]);
    let agent = gw.received_requests().into_iter().rfind(|r| r["method"] == "agent").unwrap();
    assert!(agent["params"].get("agentId").is_none(), "explicit keys run without agentId, as in the built-in");
}

async fn expect_error(resp: reqwest::Response, status: u16, message: &str, kind: &str) {
    assert_eq!(resp.status().as_u16(), status, "status");
    assert_eq!(resp.headers()["content-type"], "application/json; charset=utf-8");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({"error": {"message": message, "type": kind}}));
}

/// Every prelude and validation error with the gateway's status and body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_match_the_gateway() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_MAX_BODY_BYTES", "4096").start().await;
    let c = client();

    let r = c.get(bridge.chat_url()).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    assert_eq!(r.text().await.unwrap(), "Method Not Allowed");

    let r = c.post(bridge.chat_url()).bearer_auth("wrong").json(&chat_body(false, "hi")).send().await.unwrap();
    expect_error(r, 401, "Unauthorized", "unauthorized").await;
    let r = c.post(bridge.chat_url()).json(&chat_body(false, "hi")).send().await.unwrap();
    expect_error(r, 401, "Unauthorized", "unauthorized").await;
    let r = c
        .post(bridge.chat_url())
        .header("authorization", format!("bEaReR {TOKEN}"))
        .json(&chat_body(false, "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "scheme is case-insensitive");

    let post = |body: &'static str| c.post(bridge.chat_url()).bearer_auth(TOKEN).body(body).send();
    expect_error(
        post(r#"{"model":"openclaw","messages":["#).await.unwrap(),
        400,
        "Unexpected end of JSON input",
        "invalid_request_error",
    )
    .await;
    expect_error(post("").await.unwrap(), 400, "Missing user message in `messages`.", "invalid_request_error").await;
    expect_error(
        post(r#"{"messages":[{"role":"system","content":"x"}]}"#).await.unwrap(),
        400,
        "Missing user message in `messages`.",
        "invalid_request_error",
    )
    .await;
    expect_error(
        post(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#).await.unwrap(),
        400,
        "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`.",
        "invalid_request_error",
    )
    .await;
    expect_error(
        post(r#"{"temperature":5,"messages":[{"role":"user","content":"hi"}]}"#).await.unwrap(),
        400,
        "`temperature` must be between 0 and 2.",
        "invalid_request_error",
    )
    .await;
    expect_error(
        post(r#"{"model":"openclaw/nosuch","messages":[{"role":"user","content":"hi"}]}"#).await.unwrap(),
        400,
        "Unknown agent 'nosuch'.",
        "invalid_request_error",
    )
    .await;
    let r = c
        .post(bridge.chat_url())
        .bearer_auth(TOKEN)
        .header("x-openclaw-session-key", "subagent:x")
        .json(&chat_body(false, "hi"))
        .send()
        .await
        .unwrap();
    expect_error(
        r,
        400,
        "`x-openclaw-session-key` cannot use reserved internal session namespaces.",
        "invalid_request_error",
    )
    .await;
    let r = c.post(bridge.chat_url()).bearer_auth(TOKEN).body(vec![b' '; 5000]).send().await.unwrap();
    expect_error(r, 413, "Payload too large", "invalid_request_error").await;
    let r = c
        .post(bridge.chat_url())
        .bearer_auth(TOKEN)
        .json(
            &json!({"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"hi"}]}),
        )
        .send()
        .await
        .unwrap();
    // The gateway's file says its own endpoint is on: the request is handed
    // to it (the demo gateway has none, so 404), never run without its tools.
    // With the endpoint off it is a 400 (openai_surface.rs).
    assert_eq!(r.status(), 404, "client tools are handed on, not dropped");
    let r = c
        .post(bridge.chat_url())
        .bearer_auth(TOKEN)
        .header("x-forwarded-for", "1.2.3.4")
        .json(&chat_body(false, "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "proxy headers from an untrusted peer");
    let r = c
        .post(bridge.chat_url())
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body(chat_body(false, "hi").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the gateway parses any content type as JSON");
    assert!(!bridge.logs().contains(TOKEN), "the token never reaches the logs");
}

/// Silent runs get `: ping` comments, so load balancers keep the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_streams_get_keepalive_comments() {
    let gw = gateway().await;
    gw.set(|b| {
        b.reply = Some(vec!["late".into()]);
        b.first_event_delay = Duration::from_millis(2300);
    });
    let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_SSE_KEEPALIVE_SECS", "1").start().await;
    let resp = post_chat(&bridge, &chat_body(true, "hi")).await;
    let events = parse_sse(&resp.text().await.unwrap());
    let pings = events.iter().filter(|e| **e == Sse::Comment("ping".into())).count();
    assert!(pings >= 2, "expected keep-alive comments, got {events:?}");
    assert_eq!(content_of(&events), "late");
    assert_eq!(events.last(), Some(&Sse::Done));
}

/// An upstream LLM failure mid-stream is an error event then `[DONE]`,
/// never a clean end; non-stream gets the mapped status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_are_reported() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    gw.set(|b| b.mode = Mode::Upstream400);
    let events = parse_sse(&post_chat(&bridge, &chat_body(true, "hi")).await.text().await.unwrap());
    assert_eq!(events.last(), Some(&Sse::Done));
    let Sse::Json(err) = &events[events.len() - 2] else { panic!("{events:?}") };
    assert_eq!(err["error"]["type"], "invalid_request_error", "{err}");
    assert!(!events.iter().any(|e| matches!(e, Sse::Json(v) if v["choices"][0]["finish_reason"] == "stop")));
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 400);

    gw.set(|b| b.mode = Mode::Upstream500);
    let events = parse_sse(&post_chat(&bridge, &chat_body(true, "hi")).await.text().await.unwrap());
    let Sse::Json(err) = &events[events.len() - 2] else { panic!("{events:?}") };
    assert_eq!(err["error"], json!({"message": "upstream provider error", "type": "api_error"}));
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["message"], "upstream provider error");
}

/// A stream without a usage chunk ends as soon as the run's lifecycle ends;
/// its tokens are still counted once the final `res` arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_ended_streams_still_count_tokens() {
    let gw = gateway().await;
    gw.set(|b| b.reply = Some(vec!["a ".into(), "b".into()]));
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let events = parse_sse(&post_chat(&bridge, &chat_body(true, "one two three")).await.text().await.unwrap());
    assert_eq!(content_of(&events), "a b");
    let Sse::Json(fin) = &events[events.len() - 2] else { panic!("{events:?}") };
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = bridge.metrics().await;
        if m.contains("clawbridge_chat_tokens_total{agent=\"main\",kind=\"completion\"} 2") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "completion tokens never counted:\n{m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
