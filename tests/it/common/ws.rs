//! A native WebSocket client through clawbridge's passthrough: `connect`
//! with the shared token, then one `agent` turn.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::TOKEN;

/// What one native turn through clawbridge returned.
pub struct WsTurn {
    /// The `hello-ok` payload the gateway answered `connect` with.
    pub hello: Value,
    /// The run's assistant deltas, joined.
    pub text: String,
}

/// Connects through `addr`, runs one `agent` turn with `message` under
/// `run_id` (its idempotency key), and waits for its final `res`.
pub async fn ws_turn(addr: SocketAddr, message: &str, run_id: &str) -> WsTurn {
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await.unwrap();
    assert_eq!(resp.status(), 101);
    let connect = json!({"type":"req","id":"c1","method":"connect","params":{
        "minProtocol":4,"maxProtocol":4,
        "client":{"id":"gateway-client","version":"0.0.1","platform":"linux","mode":"backend"},
        "role":"operator","scopes":["operator.read","operator.write"],"auth":{"token":TOKEN}}});
    ws.send(Message::Text(connect.to_string().into())).await.unwrap();
    let agent = json!({"type":"req","id":"a1","method":"agent","params":{"message":message,"agentId":"main","idempotencyKey":run_id}});
    let (mut hello, mut text) = (Value::Null, String::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.expect("frames in time").unwrap().unwrap();
        let Message::Text(t) = msg else { continue };
        let f: Value = serde_json::from_str(&t).unwrap();
        if f["id"] == "c1" {
            assert_eq!(f["ok"], true, "{f}");
            hello = f["payload"].clone();
            ws.send(Message::Text(agent.to_string().into())).await.unwrap();
        }
        if f["event"] == "agent" && f["payload"]["stream"] == "assistant" && f["payload"]["runId"] == run_id {
            text.push_str(f["payload"]["data"]["delta"].as_str().unwrap_or(""));
        }
        if f["id"] == "a1" && f["payload"]["status"] == "ok" {
            return WsTurn { hello, text };
        }
    }
}
