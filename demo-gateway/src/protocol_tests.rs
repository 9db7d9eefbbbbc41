//! Builder output compared byte-for-byte with frames from the real-gateway captures (provider/model renamed
//! from the capture's `fake`/`fake-model` to the demo's `demo`/`demo-model`).

use super::*;
use crate::json::Obj;

const RUN: &str = "idem-f7bfd0a7007b4a198aa0ac02f8bd7908";
const SID: &str = "dbd1e279-5af7-4208-adc9-2ef5e0636cf3";
const ITEM: &str = "a5f27f04-6965-4bac-933a-d2072c4f246f:1";

fn r() -> RunRef<'static> {
    RunRef { run_id: RUN, session_key: "agent:main:main", session_id: SID, agent_id: "main" }
}

/// A captured frame with the demo provider/model names.
fn cap(s: &str) -> String {
    s.replace("\"fake-model\"", "\"demo-model\"")
        .replace("\"fake\"", "\"demo\"")
        .replace("fake/fake-model", "demo/demo-model")
}

#[test]
fn challenge_matches_capture() {
    assert_eq!(
        challenge("7aea2f95-84cd-4801-b676-d970fbdbbebe", 1795637068646),
        r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"7aea2f95-84cd-4801-b676-d970fbdbbebe","ts":1795637068646,"capabilities":["model-catalog-snapshot"]}}"#
    );
}

#[test]
fn hello_ok_has_required_keys_in_capture_order() {
    let agents = vec!["main".to_string()];
    let scopes = vec!["operator.read".to_string(), "operator.write".to_string()];
    let payload = hello_ok_payload(&HelloOk {
        boot_id: "b",
        conn_id: "c",
        instance_id: "i",
        now_ms: 1,
        uptime_ms: 2,
        agents: &agents,
        auth_method: "token",
        scopes: &scopes,
        tick_interval_ms: 30_000,
        max_payload: MAX_PAYLOAD,
        device_token: None,
    });
    let frame = res_ok("connect-1", &payload);
    assert!(frame.starts_with(r#"{"type":"res","id":"connect-1","ok":true,"payload":{"type":"hello-ok","protocol":4,"server":{"version":"2026.9.6","#));
    let order = ["\"server\":", "\"features\":", "\"snapshot\":", "\"auth\":", "\"policy\":"];
    let pos: Vec<usize> = order.iter().map(|k| frame.find(k).expect(k)).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
    assert!(frame.contains(r#""sessionDefaults":{"defaultAgentId":"main","modelConfigured":true,"ownership":"sole","selectionRequired":false,"mainKey":"main","mainSessionKey":"agent:main:main","scope":"per-sender"}"#));
    assert!(
        frame.contains(r#""auth":{"method":"token","role":"operator","scopes":["operator.read","operator.write"]}"#)
    );
    assert!(frame.ends_with(r#""policy":{"maxPayload":26214400,"maxBufferedBytes":52428800,"tickIntervalMs":30000}}}"#));
    let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
    let methods = v["payload"]["features"]["methods"].as_array().unwrap();
    for m in ["agent", "agent.wait", "chat.abort"] {
        assert!(methods.iter().any(|x| x == m), "{m}");
    }
    assert!(v["payload"]["features"]["events"].as_array().unwrap().iter().any(|e| e == "tick"));
}

#[test]
fn accepted_res_matches_capture() {
    assert_eq!(
        res_ok("agent-f0b7caf0", &accepted_payload(&r(), 1795637068670)),
        r#"{"type":"res","id":"agent-f0b7caf0","ok":true,"payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","sessionKey":"agent:main:main","agentId":"main","status":"accepted","acceptedAt":1795637068670}}"#
    );
}

#[test]
fn run_events_match_capture() {
    let ev = |event: &str, payload: String, seq: u64| finish_event(&event_prefix(event, &payload), seq);
    assert_eq!(
        ev("agent", lifecycle_start(&r(), 1, 1795637068810), 3),
        cap(
            r#"{"type":"event","event":"agent","payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","sessionKey":"agent:main:main","sessionId":"dbd1e279-5af7-4208-adc9-2ef5e0636cf3","agentId":"main","stream":"lifecycle","data":{"phase":"start","startedAt":1795637068810},"seq":1,"ts":1795637068810},"seq":3}"#
        )
    );
    assert_eq!(
        ev("agent", lifecycle_model(&r(), 2, 1795637068849), 5),
        cap(
            r#"{"type":"event","event":"agent","payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","sessionKey":"agent:main:main","sessionId":"dbd1e279-5af7-4208-adc9-2ef5e0636cf3","agentId":"main","stream":"lifecycle","data":{"phase":"model","provider":"fake","model":"fake-model"},"seq":2,"ts":1795637068849},"seq":5}"#
        )
    );
    assert_eq!(
        ev("agent", assistant(&r(), 3, 1795637068851, ITEM, AssistantData::Full { text: "Hello", delta: "Hello" }), 6),
        r#"{"type":"event","event":"agent","payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","stream":"assistant","data":{"text":"Hello","delta":"Hello","itemId":"a5f27f04-6965-4bac-933a-d2072c4f246f:1"},"sessionKey":"agent:main:main","agentId":"main","seq":3,"ts":1795637068851},"seq":6}"#
    );
    assert_eq!(
        ev("chat", chat_delta(&r(), 3, 1795637068851, "Hello", false, "Hello"), 7),
        r#"{"type":"event","event":"chat","payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","sessionKey":"agent:main:main","agentId":"main","seq":3,"state":"delta","deltaText":"Hello","message":{"role":"assistant","content":[{"type":"text","text":"Hello"}],"timestamp":1795637068851}},"seq":7}"#
    );
    assert_eq!(
        ev("agent", usage(&r(), 6, 1795637068853, 3), 9),
        r#"{"type":"event","event":"agent","payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","sessionKey":"agent:main:main","stream":"usage","data":{"outputTokens":3},"agentId":"main","seq":6,"ts":1795637068853},"seq":9}"#
    );
    assert_eq!(
        ev("agent", lifecycle_finishing(&r(), 7, 1795637068859), 10),
        r#"{"type":"event","event":"agent","payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","sessionKey":"agent:main:main","sessionId":"dbd1e279-5af7-4208-adc9-2ef5e0636cf3","agentId":"main","stream":"lifecycle","data":{"phase":"finishing","stopReason":"stop","aborted":false,"livenessState":"working","endedAt":1795637068859},"seq":7,"ts":1795637068859},"seq":10}"#
    );
    assert_eq!(
        ev("agent", lifecycle_model_reset(&r(), 8, 1795637068900), 12),
        r#"{"type":"event","event":"agent","payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","agentId":"main","sessionId":"dbd1e279-5af7-4208-adc9-2ef5e0636cf3","sessionKey":"agent:main:main","stream":"lifecycle","data":{"phase":"model","provider":null,"model":null},"seq":8,"ts":1795637068900},"seq":12}"#
    );
    assert_eq!(
        ev("agent", lifecycle_end(&r(), 9, 1795637068713, 1795637068907, "Hello, world!"), 14),
        cap(
            r#"{"type":"event","event":"agent","payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","stream":"lifecycle","data":{"phase":"end","startedAt":1795637068713,"endedAt":1795637068907,"aborted":false,"stopReason":"stop","livenessState":"working","executionSettled":true,"terminalReceipt":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","sessionId":"dbd1e279-5af7-4208-adc9-2ef5e0636cf3","turnId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","requested":{"provider":"fake","model":"fake-model"},"effective":{"provider":"fake","model":"fake-model","responseModel":"fake-model"},"successfulToolNames":[],"rerouted":false,"terminalDisposition":"visible"},"terminalReply":{"disposition":"visible","text":"Hello, world!"}},"sessionKey":"agent:main:main","sessionId":"dbd1e279-5af7-4208-adc9-2ef5e0636cf3","agentId":"main","seq":9,"ts":1795637068907},"seq":14}"#
        )
    );
    assert_eq!(
        ev("chat", chat_final(&r(), 9, 1795637068912, "Hello, world!"), 16),
        r#"{"type":"event","event":"chat","payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","sessionKey":"agent:main:main","agentId":"main","seq":9,"state":"final","stopReason":"stop","message":{"role":"assistant","content":[{"type":"text","text":"Hello, world!"}],"timestamp":1795637068912}},"seq":16}"#
    );
}

#[test]
fn assistant_forms() {
    let a = |d| assistant(&r(), 1, 2, "it:1", d);
    assert!(a(AssistantData::DeltaOnly { delta: "x" }).contains(r#""data":{"delta":"x","itemId":"it:1"}"#));
    assert!(a(AssistantData::TextOnly { text: "xy" }).contains(r#""data":{"text":"xy","itemId":"it:1"}"#));
    // ws-agent-upstream-500.jsonl
    assert!(a(AssistantData::Replace).contains(r#""data":{"itemId":"it:1","text":"","delta":"","replace":true}"#));
}

#[test]
fn final_res_keeps_capture_key_order() {
    let payload = final_ok_payload(&r(), "Hello, world!", 147, Usage { input: 10, output: 3 });
    assert_eq!(
        res_ok("agent-f0b7caf0", &payload),
        r#"{"type":"res","id":"agent-f0b7caf0","ok":true,"payload":{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","status":"ok","summary":"completed","result":{"payloads":[{"text":"Hello, world!","mediaUrl":null}],"meta":{"durationMs":147,"agentMeta":{"sessionId":"dbd1e279-5af7-4208-adc9-2ef5e0636cf3","provider":"demo","model":"demo-model","usage":{"input":10,"output":3,"cacheRead":0,"cacheWrite":0,"total":13}},"aborted":false,"stopReason":"stop"}}}}"#
    );
}

#[test]
fn upstream_400_frames_match_capture() {
    let r4 = RunRef {
        run_id: "idem-88548cef31784927ac621402251b827d",
        session_key: "agent:main:upstream-400",
        session_id: "1a6d30a9-d5b2-494d-a82e-47b7739f3e81",
        agent_id: "main",
    };
    let ev = |event: &str, payload: String, seq: u64| finish_event(&event_prefix(event, &payload), seq);
    assert_eq!(
        ev("agent", lifecycle_finishing_error(&r4, 3, 1795636813418, &FAILURE_400), 7),
        cap(
            r#"{"type":"event","event":"agent","payload":{"runId":"idem-88548cef31784927ac621402251b827d","sessionKey":"agent:main:upstream-400","sessionId":"1a6d30a9-d5b2-494d-a82e-47b7739f3e81","agentId":"main","stream":"lifecycle","data":{"phase":"finishing","error":"LLM request failed: provider rejected the request schema or tool payload.","errorObservation":{"provider":"fake","model":"fake-model","failoverReason":"format","providerRuntimeFailureKind":"schema"},"aborted":false,"livenessState":"blocked","endedAt":1795636813418},"seq":3,"ts":1795636813418},"seq":7}"#
        )
    );
    assert_eq!(
        ev("agent", lifecycle_error(&r4, 5, 1795636813292, 1795636813468, &FAILURE_400), 10),
        cap(
            r#"{"type":"event","event":"agent","payload":{"runId":"idem-88548cef31784927ac621402251b827d","stream":"lifecycle","data":{"phase":"error","startedAt":1795636813292,"endedAt":1795636813468,"error":"LLM request failed: provider rejected the request schema or tool payload.","errorObservation":{"provider":"fake","model":"fake-model","failoverReason":"format","providerRuntimeFailureKind":"schema"},"executionSettled":true},"sessionKey":"agent:main:upstream-400","sessionId":"1a6d30a9-d5b2-494d-a82e-47b7739f3e81","agentId":"main","seq":5,"ts":1795636813468},"seq":10}"#
        )
    );
    assert_eq!(
        ev("chat", chat_error(&r4, 5, &FAILURE_400), 11),
        cap(
            r#"{"type":"event","event":"chat","payload":{"runId":"idem-88548cef31784927ac621402251b827d","sessionKey":"agent:main:upstream-400","agentId":"main","seq":5,"state":"error","errorMessage":"LLM request failed: provider rejected the request schema or tool payload.","errorDetail":{"provider":"fake","model":"fake-model","failoverReason":"format","providerRuntimeFailureKind":"schema"}},"seq":11}"#
        )
    );
    let (payload, err) = final_error_parts(r4.run_id, MSG_UPSTREAM_400);
    assert_eq!(
        res_err_with_payload("agent-dee19cf8", &payload, &err),
        r#"{"type":"res","id":"agent-dee19cf8","ok":false,"payload":{"runId":"idem-88548cef31784927ac621402251b827d","status":"error","summary":"LLM request failed: provider rejected the request schema or tool payload."},"error":{"code":"UNAVAILABLE","message":"LLM request failed: provider rejected the request schema or tool payload."}}"#
    );
}

#[test]
fn upstream_500_retry_notice_matches_capture() {
    let r5 = RunRef {
        run_id: "idem-b229008b01bf4aacbd042b9b024b288e",
        session_key: "agent:main:upstream-fail",
        session_id: "s",
        agent_id: "main",
    };
    let ev = finish_event(&event_prefix("agent", &run_status_retrying(&r5, 4, 1795636719485, 1, 8, 1313)), 7);
    assert_eq!(
        ev,
        r#"{"type":"event","event":"agent","payload":{"runId":"idem-b229008b01bf4aacbd042b9b024b288e","sessionKey":"agent:main:upstream-fail","stream":"run_status","data":{"phase":"retrying","message":"Provider temporarily unavailable. Retrying in 2s (1/8).","retryAttempt":1,"maxRetries":8,"delayMs":1313,"attempt":2,"maxAttempts":9,"reason":"server_error"},"agentId":"main","seq":4,"ts":1795636719485},"seq":7}"#
    );
    assert!(MSG_UPSTREAM_500.starts_with("⚠️ demo/demo-model request failed (provider internal error, HTTP 500)."));
}

#[test]
fn error_responses_match_capture() {
    assert_eq!(
        res_err("connect-986bdd3f", &err_auth_mismatch(false)),
        r#"{"type":"res","id":"connect-986bdd3f","ok":false,"error":{"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (provide gateway auth token)","details":{"code":"AUTH_TOKEN_MISMATCH","authReason":"token_mismatch","canRetryWithDeviceToken":false,"recommendedNextStep":"update_auth_credentials"}}}"#
    );
    assert_eq!(
        res_err("agent-ebcb88c0", &err_invalid_request("invalid agent params: unknown agent id \"nosuchagent\"")),
        r#"{"type":"res","id":"agent-ebcb88c0","ok":false,"error":{"code":"INVALID_REQUEST","message":"invalid agent params: unknown agent id \"nosuchagent\""}}"#
    );
    assert_eq!(
        res_err("agent-981669c2", &err_missing_scope("operator.write")),
        r#"{"type":"res","id":"agent-981669c2","ok":false,"error":{"code":"FORBIDDEN","message":"missing scope: operator.write","details":{"code":"MISSING_SCOPE","missingScope":"operator.write","requiredScopes":["operator.write"]}}}"#
    );
    assert_eq!(
        res_err("x1", &err_invalid_request(MSG_FIRST_NOT_CONNECT)),
        r#"{"type":"res","id":"x1","ok":false,"error":{"code":"INVALID_REQUEST","message":"invalid handshake: first request must be connect"}}"#
    );
}

#[test]
fn abort_shapes() {
    assert_eq!(abort_result(&["r1".to_string()]), r#"{"ok":true,"aborted":true,"runIds":["r1"]}"#);
    assert_eq!(abort_result(&[]), r#"{"ok":true,"aborted":false,"runIds":[]}"#);
    let p = final_aborted_payload(&r(), "", 5, Usage { input: 1, output: 0 }, "rpc");
    assert!(p.starts_with(r#"{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","status":"timeout","summary":"aborted","stopReason":"rpc","result":{"payloads":[],"meta":{"durationMs":5,"#));
    assert!(p.ends_with(r#""aborted":true,"stopReason":"rpc"}}}"#));
    // Shape of ws-listener-during-http-client-disconnect.jsonl, with the abort's reason.
    let ev = finish_event(&event_prefix("agent", &lifecycle_aborted(&r(), 6, 1, 2, "aborted", "rpc")), 7);
    assert!(ev.contains(r#""data":{"phase":"error","startedAt":1,"endedAt":2,"error":"aborted","aborted":true,"stopReason":"rpc","executionSettled":true},"sessionKey":"agent:main:main""#));
    assert_eq!(
        chat_aborted(&r(), 6, 9, "rpc", "Hello"),
        r#"{"runId":"idem-f7bfd0a7007b4a198aa0ac02f8bd7908","sessionKey":"agent:main:main","agentId":"main","seq":6,"state":"aborted","stopReason":"rpc","message":{"role":"assistant","content":[{"type":"text","text":"Hello"}],"timestamp":9}}"#
    );
    assert_eq!(Obj::new().str("a", "b").finish(), r#"{"a":"b"}"#);
}
