//! Test client helpers: a minimal native-protocol WebSocket client and a raw HTTP/1.1 request helper.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const TOKEN: &str = "test-token";

pub fn connect_params(token: &str) -> Value {
    json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"gateway-client","version":"0.1.0","platform":"linux","mode":"backend"},"role":"operator","scopes":["operator.read","operator.write"],"auth":{"token":token}})
}

pub async fn open(addr: std::net::SocketAddr, headers: &[(&'static str, &str)]) -> Ws {
    let mut req = format!("ws://{addr}/").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, HeaderValue::from_str(v).unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws
}

/// Next text frame as JSON (panics after 5 s or on close).
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("stream ended")
            .expect("ws error");
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).expect("json frame"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Next non-tick frame.
pub async fn recv_no_tick(ws: &mut Ws) -> Value {
    loop {
        let v = recv(ws).await;
        if v["event"] != "tick" {
            return v;
        }
    }
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Open + challenge + connect; returns the socket and the hello-ok frame.
pub async fn handshake_with(
    addr: std::net::SocketAddr,
    params: Value,
    headers: &[(&'static str, &str)],
) -> (Ws, Value) {
    let mut ws = open(addr, headers).await;
    let ch = recv(&mut ws).await;
    assert_eq!(ch["event"], "connect.challenge");
    send(&mut ws, json!({"type":"req","id":"connect-1","method":"connect","params":params})).await;
    let hello = recv(&mut ws).await;
    (ws, hello)
}

pub async fn handshake(addr: std::net::SocketAddr) -> Ws {
    let (ws, hello) = handshake_with(addr, connect_params(TOKEN), &[]).await;
    assert_eq!(hello["ok"], true, "{hello}");
    ws
}

pub async fn agent(ws: &mut Ws, id: &str, params: Value) {
    send(ws, json!({"type":"req","id":id,"method":"agent","params":params})).await;
}

/// Collect frames until the final `res` for `id` (the one that is not `accepted`/`in_flight`).
pub async fn collect_run(ws: &mut Ws, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let v = recv_no_tick(ws).await;
        let done = v["type"] == "res" && v["id"] == id && v["payload"]["status"] != "accepted";
        out.push(v);
        if done {
            return out;
        }
    }
}

/// A compact label per frame: `res:accepted`, `agent:lifecycle:start`, `agent:assistant`, `chat:delta`, ...
pub fn label(v: &Value) -> String {
    match v["type"].as_str() {
        Some("res") => {
            format!("res:{}", v["payload"]["status"].as_str().unwrap_or(if v["ok"] == true { "ok" } else { "error" }))
        }
        _ => {
            let p = &v["payload"];
            match v["event"].as_str().unwrap_or("") {
                "agent" => match p["stream"].as_str().unwrap_or("") {
                    "lifecycle" => format!(
                        "agent:lifecycle:{}{}",
                        p["data"]["phase"].as_str().unwrap_or(""),
                        if p["data"]["phase"] == "model" && p["data"]["provider"].is_null() { "-reset" } else { "" }
                    ),
                    s => format!("agent:{s}"),
                },
                "chat" => format!("chat:{}", p["state"].as_str().unwrap_or("")),
                e => e.to_string(),
            }
        }
    }
}

/// Raw HTTP/1.1 request (Connection: close); returns (status, headers, body).
pub async fn http(addr: std::net::SocketAddr, raw_head: &str, body: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw_head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}
