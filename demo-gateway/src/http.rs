//! The shared TCP port: accept loop, hyper HTTP/1 connections, WebSocket upgrades on any path, and the plain HTTP
//! routes (`/health*`, `/ready*`, `/__demo/*`, the proxy-attribution 403, 404 otherwise).

use crate::registry::Shared;
use crate::ws::{spawn_connection, UpgradeInfo};
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

type Body = Full<Bytes>;

/// Accept connections until the task is aborted; dropping the `JoinSet` aborts every HTTP connection task.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| handle(req, shared.clone(), peer.ip()));
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

fn has(headers: &HeaderMap, name: &str) -> bool {
    headers.contains_key(name)
}

fn is_ws_upgrade(req: &Request<Incoming>) -> bool {
    let h = req.headers();
    let upgrade =
        h.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let conn = h
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    upgrade && conn && h.contains_key(header::SEC_WEBSOCKET_KEY)
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("valid response")
}

async fn handle(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: std::net::IpAddr,
) -> Result<Response<Body>, Infallible> {
    if is_ws_upgrade(&req) {
        return Ok(upgrade(&mut req, shared));
    }
    let proxied = has(req.headers(), "x-forwarded-for") || has(req.headers(), "forwarded");
    if proxied && !shared.behaviour().trusted_proxies.contains(&peer) {
        return Ok(json(
            StatusCode::FORBIDDEN,
            r#"{"error":{"message":"proxy_attribution_required","type":"forbidden"}}"#.to_string(),
        ));
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    Ok(match path.as_str() {
        "/healthz" | "/health" if get => json(StatusCode::OK, r#"{"ok":true,"status":"live"}"#.into()),
        "/readyz" | "/ready" if get => {
            let up = shared.started.elapsed().as_millis() as u64;
            json(StatusCode::OK, format!(r#"{{"ready":true,"failing":[],"uptimeMs":{up}}}"#))
        }
        p if p == "/__demo/echo" || p.starts_with("/__demo/echo/") => echo(req).await,
        "/__demo/config" if method == Method::POST => config_post(req, &shared).await,
        "/__demo/config" if get => json(StatusCode::OK, config_json(&shared)),
        "/__demo/state" if get => json(StatusCode::OK, crate::state_json(&shared).to_string()),
        "/__demo/drop-connections" if method == Method::POST => {
            shared.drop_all_connections();
            json(StatusCode::OK, r#"{"ok":true}"#.into())
        }
        _ => text(StatusCode::NOT_FOUND, "Not Found"),
    })
}

fn upgrade(req: &mut Request<Incoming>, shared: Arc<Shared>) -> Response<Body> {
    let h = req.headers();
    let info = UpgradeInfo {
        has_origin: has(h, "origin"),
        has_proxy_headers: has(h, "x-forwarded-for") || has(h, "x-real-ip") || has(h, "forwarded"),
    };
    let key = h.get(header::SEC_WEBSOCKET_KEY).map(|k| derive_accept_key(k.as_bytes())).unwrap_or_default();
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(crate::protocol::MAX_PAYLOAD as usize))
                    .max_frame_size(Some(crate::protocol::MAX_PAYLOAD as usize));
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                spawn_connection(shared, ws, info);
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, key)
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

async fn echo(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let out = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "body_len": body.len(),
    });
    json(StatusCode::OK, out.to_string())
}

fn config_json(shared: &Shared) -> String {
    serde_json::to_string(&*shared.behaviour()).unwrap_or_else(|_| "{}".into())
}

async fn config_post(req: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let patch: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(&e.to_string()),
    };
    let mut err = None;
    shared.update_behaviour(|b| {
        let mut candidate = b.clone();
        match candidate.merge_json(&patch) {
            Ok(()) => *b = candidate,
            Err(e) => err = Some(e),
        }
    });
    match err {
        Some(e) => bad_request(&e),
        None => json(StatusCode::OK, config_json(shared)),
    }
}

fn bad_request(msg: &str) -> Response<Body> {
    let body = serde_json::json!({"error":{"message": msg, "type":"invalid_request_error"}});
    json(StatusCode::BAD_REQUEST, body.to_string())
}
