//! HTTP edges that take more than one exchange, answered as the gateway's
//! Node server answers them (measured on 2026.9.6): `Expect: 100-continue`
//! gets `100 Continue` before the body is sent, and pipelined requests (a
//! chat request followed by others in the same write) are all answered, in
//! order. Single-request refusals (no `Host`, CL+TE, 417, broken chunks,
//! 431) are in the hostile corpus.

use std::time::Duration;

use crate::common::raw::{valid_chat_request, RawConn};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_before_the_body() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let full = String::from_utf8(valid_chat_request(TOKEN, "hi")).unwrap();
    let (head, body) = full.split_once("\r\n\r\n").unwrap();
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    assert!(c.write_now(format!("{head}\r\nExpect: 100-continue\r\n\r\n").as_bytes()).await);
    let interim = c.read(false, Duration::from_secs(3)).await.expect("100 Continue before the body");
    assert_eq!(interim.status, 100);
    assert!(c.write_now(body.as_bytes()).await);
    let r = c.read(false, Duration::from_secs(5)).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let gw = gateway().await;
    let bridge = BridgeOpts::new(gw.addr()).start().await;
    let mut all = valid_chat_request(TOKEN, "first");
    all.extend_from_slice(b"GET /v1/nope HTTP/1.1\r\nHost: x\r\n\r\n");
    all.extend(valid_chat_request(TOKEN, "third"));
    let mut c = RawConn::connect(bridge.addr).await.unwrap();
    let first = c.send_and_read(all, false, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.status, 200);
    assert!(first.text().contains("You said: first"), "{}", first.text());
    let second = c.read(false, Duration::from_secs(5)).await.expect("the pipelined passthrough request");
    assert_ne!(second.status, 200, "the passthrough answer comes second: {}", second.text());
    let third = c.read(false, Duration::from_secs(5)).await.expect("the pipelined chat request");
    assert_eq!(third.status, 200);
    assert!(third.text().contains("You said: third"), "{}", third.text());
}
