//! The OpenAI routes besides chat, through the real binary against the demo
//! gateway: models from `agents.list`, responses (JSON and events, sessions
//! continued by `previous_response_id`), the model override and images as
//! they reach the gateway, and the switches that own or forward each route.

use crate::common::*;
use serde_json::{json, Value};

async fn post(bridge: &Bridge, path: &str, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(bridge.url(path)).bearer_auth(TOKEN).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

fn agent_requests(gw: &DemoGateway) -> Vec<Value> {
    gw.received_requests().into_iter().filter(|r| r["method"] == "agent").collect()
}

/// `event: <type>` / `data: <json>` pairs, then whether `[DONE]` ended it.
fn events(body: &str) -> (Vec<(String, Value)>, bool) {
    let mut out = Vec::new();
    let mut done = false;
    for e in body.split("\n\n").filter(|e| !e.is_empty()) {
        if e == "data: [DONE]" {
            done = true;
            continue;
        }
        let (head, data) = e.split_once('\n').unwrap_or_else(|| panic!("not an event: {e:?}"));
        let kind = head.strip_prefix("event: ").unwrap_or_else(|| panic!("no event line: {e:?}"));
        let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], kind, "type field equals the event name");
        out.push((kind.to_string(), data));
    }
    (out, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_list_and_detail() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let list: Value =
        client().get(bridge.url("/v1/models")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(list["object"], "list");
    assert_eq!(&ids[..2], ["openclaw", "openclaw/default"]);
    assert!(ids.contains(&"openclaw/main"), "{ids:?}");
    assert!(gw.received_methods().get("agents.list").is_some_and(|n| *n >= 1), "read from the gateway");
    let one = client().get(bridge.url("/v1/models/openclaw%2Fmain")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(one.status(), 200);
    let one: Value = one.json().await.unwrap();
    assert_eq!(one, json!({"id":"openclaw/main","object":"model","created":0,"owned_by":"openclaw","permission":[]}));
    let missing = client().get(bridge.url("/v1/models/openclaw:main")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let bad = client().get(bridge.url("/v1/models/%ZZ")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let post = client().post(bridge.url("/v1/models")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!((post.status().as_u16(), post.headers()["allow"].to_str().unwrap()), (405, "GET"));
    let anon = client().get(bridge.url("/v1/models")).send().await.unwrap();
    assert_eq!(anon.status(), 401, "models need the bearer too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_json_and_events() {
    let gw = gateway().await;
    gw.set(|b| b.reply = Some(vec!["Hel".into(), "lo".into()]));
    let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_RESPONSES", "on").start().await;
    let body = json!({"model":"openclaw","input":"hi","instructions":"be brief"});
    let resp = post(&bridge, "/v1/responses", &body, &[]).await;
    assert_eq!(resp.status(), 200);
    let r: Value = resp.json().await.unwrap();
    assert_eq!((r["object"].as_str(), r["status"].as_str()), (Some("response"), Some("completed")));
    assert!(r["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(r["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(r["output"][0]["phase"], "final_answer");
    let sent = agent_requests(&gw);
    let p = &sent[0]["params"];
    assert_eq!((p["message"].as_str(), p["extraSystemPrompt"].as_str()), (Some("hi"), Some("be brief")));
    assert_eq!(p["idempotencyKey"], r["id"], "the run id is the response id");
    assert!(p["sessionKey"].as_str().unwrap().starts_with("agent:main:openresponses:"));

    let stream = json!({"model":"openclaw","input":"again","stream":true,"previous_response_id":r["id"]});
    let resp = post(&bridge, "/v1/responses", &stream, &[]).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream; charset=utf-8");
    let (evs, done) = events(&resp.text().await.unwrap());
    assert!(done, "ends with [DONE]");
    let kinds: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        &kinds[..4],
        ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    );
    assert_eq!(
        &kinds[kinds.len() - 4..],
        ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    );
    let text: String = evs
        .iter()
        .filter(|(k, _)| k == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello");
    let sent = agent_requests(&gw);
    assert_eq!(
        sent[1]["params"]["sessionKey"], sent[0]["params"]["sessionKey"],
        "previous_response_id continues the session"
    );

    let unknown = json!({"model":"openclaw","input":"x","previous_response_id":"resp_nope"});
    post(&bridge, "/v1/responses", &unknown, &[]).await;
    assert_ne!(
        agent_requests(&gw)[2]["params"]["sessionKey"],
        sent[0]["params"]["sessionKey"],
        "unknown id: new session"
    );

    let bad = post(&bridge, "/v1/responses", &json!({"model":"openclaw","input":"x","foo":1}), &[]).await;
    assert_eq!(bad.status(), 400);
    let e: Value = bad.json().await.unwrap();
    assert_eq!(e["error"]["message"], ": Unrecognized key: \"foo\"");
    let metrics = bridge.metrics_when(|m| m.contains("api=\"responses\"")).await;
    assert!(metrics.contains("api=\"responses\""), "metrics carry the api label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_and_images_reach_the_gateway() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let body = json!({"model":"openclaw","messages":[{"role":"user","content":[
        {"type":"text","text":"look"},{"type":"image_url","image_url":{"url":format!("data:image/png;base64,{png}")}}]}]});
    let resp = post(&bridge, "/v1/chat/completions", &body, &[("x-openclaw-model", "fake/other")]).await;
    assert_eq!(resp.status(), 200);
    let p = &agent_requests(&gw)[0]["params"];
    assert_eq!((p["provider"].as_str(), p["model"].as_str()), (Some("fake"), Some("other")));
    assert_eq!(p["attachments"], json!([{"type":"image","mimeType":"image/png","content":png}]));
    assert_eq!(p["message"], "look");
    let bad = post(&bridge, "/v1/chat/completions", &chat_body(false, "x"), &[("x-openclaw-model", "/x")]).await;
    assert_eq!(bad.status(), 400);
    let e: Value = bad.json().await.unwrap();
    assert_eq!(e["error"]["message"], "Invalid `x-openclaw-model`.");
}

/// Each route is owned only when switched on; models follow either switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_own_or_forward() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).env("CLAWBRIDGE_RESPONSES", "off").start().await;
    let fwd = post(&bridge, "/v1/responses", &json!({"model":"openclaw","input":"x"}), &[]).await;
    assert!(agent_requests(&gw).is_empty(), "forwarded, not run: {}", fwd.status());
    let models = client().get(bridge.url("/v1/models")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(models.status(), 200, "chat is on, so models are served");
    drop(bridge);
    let only_responses = BridgeOpts::new(gw.addr())
        .env("CLAWBRIDGE_CHAT_COMPLETIONS", "off")
        .env("CLAWBRIDGE_RESPONSES", "on")
        .start()
        .await;
    let resp = post(&only_responses, "/v1/responses", &json!({"model":"openclaw","input":"x"}), &[]).await;
    assert_eq!(resp.status(), 200);
    let models = client().get(only_responses.url("/v1/models")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(models.status(), 200, "responses on: models served");
}

/// With several agents configured a request that names none has no owner:
/// the built-in's 400 (measured on 2026.9.6), while a named agent runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_agents_need_an_explicit_owner() {
    let gw = gateway().await;
    let cfg = format!(
        "{{ gateway: {{ auth: {{ mode: 'token', token: '{TOKEN}' }}, http: {{ endpoints: {{ chatCompletions: {{ enabled: true }} }} }} }}, agents: {{ list: [{{ id: 'main', default: true }}, {{ id: 'ops' }}] }} }}"
    );
    let bridge = BridgeOpts::new(gw.addr()).gateway_config(&cfg).env("CLAWBRIDGE_RESPONSES", "on").start().await;
    for (path, body) in [
        ("/v1/chat/completions", chat_body(false, "hi")),
        ("/v1/responses", json!({"model":"openclaw/default","input":"hi"})),
    ] {
        let resp = post(&bridge, path, &body, &[]).await;
        assert_eq!(resp.status(), 400, "{path}");
        let e: Value = resp.json().await.unwrap();
        assert!(e["error"]["message"].as_str().unwrap().starts_with("Multiple agents are configured"), "{e}");
    }
    assert!(agent_requests(&gw).is_empty(), "nothing ran");
    let mut named = chat_body(false, "hi");
    named["model"] = json!("openclaw/main");
    assert_eq!(post(&bridge, "/v1/chat/completions", &named, &[]).await.status(), 200);
}

/// Client tools cannot reach the agent over the native protocol: with the
/// gateway's own endpoint on, the request is handed to it (the demo gateway
/// has none, so its 404 proves the hand-off); with it off, a clear 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_go_to_the_builtin_when_it_is_on() {
    let gw = gateway().await;
    let mut body = chat_body(false, "hi");
    body["tools"] = json!([{"type":"function","function":{"name":"get_weather"}}]);
    let on = BridgeOpts::new(gw.addr()).start().await;
    let resp = post(&on, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(resp.status(), 404, "the gateway's own answer");
    assert_eq!(resp.text().await.unwrap(), "Not Found");
    assert!(agent_requests(&gw).is_empty(), "not run over the native protocol");
    drop(on);
    let off = format!("{{ gateway: {{ auth: {{ mode: 'token', token: '{TOKEN}' }} }} }}");
    let bridge = BridgeOpts::new(gw.addr()).gateway_config(&off).env("CLAWBRIDGE_CHAT_COMPLETIONS", "on").start().await;
    let resp = post(&bridge, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert!(e["error"]["message"].as_str().unwrap().starts_with("`tools` are not supported through clawbridge"), "{e}");
}

/// The operator's body limit holds on every owned route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_limit_holds_for_responses() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr())
        .env("CLAWBRIDGE_RESPONSES", "on")
        .env("CLAWBRIDGE_MAX_BODY_BYTES", "1024")
        .start()
        .await;
    let body = json!({"model":"openclaw","input":"x".repeat(2048)});
    let resp = post(&bridge, "/v1/responses", &body, &[]).await;
    assert_eq!(resp.status(), 413);
    assert!(agent_requests(&gw).is_empty());
}
