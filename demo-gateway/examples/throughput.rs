//! Rough throughput check: short 5-delta runs pipelined over ONE WebSocket connection to an in-process gateway.
//! `cargo run --release -p clawbridge-demo-gateway --example throughput -- [runs] [window]`

use demo_gateway::DemoGateway;
use futures_util::{SinkExt, StreamExt};
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let window: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(256);
    let gw = DemoGateway::builder().token("t").reply(["a ", "b ", "c ", "d ", "e"]).start().await.unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(gw.ws_url()).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    rx.next().await.unwrap().unwrap();
    let connect = r#"{"type":"req","id":"c","method":"connect","params":{"minProtocol":4,"maxProtocol":4,"client":{"id":"gateway-client","version":"0","platform":"linux","mode":"backend"},"scopes":["operator.read","operator.write"],"auth":{"token":"t"}}}"#;
    tx.send(Message::Text(connect.into())).await.unwrap();
    rx.next().await.unwrap().unwrap();
    let start = Instant::now();
    let mut sent = 0usize;
    let mut done = 0usize;
    let mut frames = 0usize;
    let send_more = |tx_count: usize, sent: &mut usize| {
        let mut batch = Vec::new();
        while *sent < runs && *sent < tx_count + window {
            batch.push(format!(
                r#"{{"type":"req","id":"r{0}","method":"agent","params":{{"message":"hi","idempotencyKey":"k{0}"}}}}"#,
                *sent
            ));
            *sent += 1;
        }
        batch
    };
    for m in send_more(0, &mut sent) {
        tx.feed(Message::Text(m.into())).await.unwrap();
    }
    tx.flush().await.unwrap();
    while done < runs {
        let m = rx.next().await.unwrap().unwrap();
        frames += 1;
        if let Message::Text(t) = m {
            if t.as_str().starts_with(r#"{"type":"res""#) && t.as_str().contains(r#""summary":"completed""#) {
                done += 1;
                if done % 64 == 0 || sent == runs {
                    let batch = send_more(done, &mut sent);
                    for m in batch {
                        tx.feed(Message::Text(m.into())).await.unwrap();
                    }
                    tx.flush().await.unwrap();
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{runs} runs, {frames} frames in {secs:.2}s: {:.0} runs/s, {:.0} frames/s (window {window})",
        runs as f64 / secs,
        frames as f64 / secs
    );
    gw.shutdown().await;
}
