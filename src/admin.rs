//! The admin listener (`CLAWBRIDGE_ADMIN_LISTEN`), apart from the proxy port
//! so it never shadows a gateway path: `/healthz` (the process serves),
//! `/readyz` (the gateway link is up with write scope, and no drain has
//! started; the detail names the gateway's version and protocol and the
//! device's pairing state) and `/metrics` (Prometheus text, default registry).

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{Encoder, TextEncoder};

use crate::config::Live;
use crate::drain::Drain;
use crate::gateway::{Gateway, LinkInfoCell, LinkState};
use crate::ingress::{Attributor, GatewayTrust};

pub struct Admin {
    /// `None` when the chat endpoint is off: readiness then needs no link.
    pub gateway: Option<Gateway>,
    pub drain: Arc<Drain>,
    /// `gateway.trustedProxies` (live) and the upstream address: how the
    /// gateway treats forwarded remote clients (readiness detail).
    pub attributor: Arc<Live<Attributor>>,
    pub upstream: String,
    /// The link's server version, protocol, device id and pairing state.
    pub link_info: Arc<LinkInfoCell>,
}

impl Admin {
    /// `(ready, reason)`.
    pub fn readiness(&self) -> (bool, String) {
        if self.drain.is_draining() {
            return (false, "shutting down".into());
        }
        match self.gateway.as_ref().map(Gateway::state) {
            None => (true, "passthrough only".into()),
            Some(LinkState::Ready { .. }) => (true, "gateway connected".into()),
            Some(LinkState::Down { reason }) => (false, format!("gateway not connected: {reason}")),
        }
    }
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .expect("static response parts")
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        match path.as_str() {
            "/healthz" | "/livez" => reply(200, "application/json", br#"{"ok":true,"status":"live"}"#.to_vec()),
            "/readyz" => {
                let (ready, reason) = self.readiness();
                let remote_clients = GatewayTrust::of(&self.attributor.load(), &self.upstream).describe();
                let mut body =
                    serde_json::json!({ "ready": ready, "reason": reason, "remote_clients": remote_clients });
                if self.gateway.is_some() {
                    let info = self.link_info.load();
                    body["gateway"] = match &info.server {
                        Some(s) => serde_json::json!({ "protocol": s.protocol, "server_version": &*s.version }),
                        None => serde_json::Value::Null,
                    };
                    body["device"] = serde_json::json!({
                        "id": info.device_id.as_deref(),
                        "pairing": info.pairing.label(),
                        "request_id": info.pending.as_ref().and_then(|p| p.request_id.as_deref()),
                        "approve": info.pending.as_ref().map(|p| p.approve_command()),
                    });
                }
                reply(if ready { 200 } else { 503 }, "application/json", body.to_string().into_bytes())
            }
            "/metrics" => {
                let encoder = TextEncoder::new();
                let mut buf = Vec::new();
                let _ = encoder.encode(&prometheus::gather(), &mut buf);
                reply(200, encoder.format_type(), buf)
            }
            _ => reply(404, "text/plain; charset=utf-8", b"Not Found".to_vec()),
        }
    }
}
