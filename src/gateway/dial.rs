//! Opens the link's socket: TCP (Nagle off), then, for an `https://`
//! upstream, TLS verified against `upstream_tls` (its CA roots and server
//! name; never skipped, never retried in plaintext), then the WebSocket
//! upgrade (`ws://` or `wss://`) with the link's frame bounds.

use std::sync::Arc;

use pingora::tls::{version, ClientConfig, ServerName, TlsConnector};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::MaybeTlsStream;

use super::connection::{transport_bound, Ws};
use super::GatewaySettings;
use crate::config::UpstreamTls;

/// The link's TLS client: one rustls config, built once from `upstream_tls`
/// (the same roots Pingora verifies passthrough with).
#[derive(Clone, Debug)]
pub struct LinkTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    /// The server name as text, for errors.
    name: String,
    /// `server_name:port`: the `Host` of the upgrade request.
    host: String,
}

impl LinkTls {
    /// `authority` is the upstream's `host:port`.
    pub fn new(tls: &UpstreamTls, authority: &str) -> Self {
        pingora::tls::install_default_crypto_provider();
        let mut config = ClientConfig::builder_with_protocol_versions(&[&version::TLS12, &version::TLS13])
            .with_root_certificates(tls.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let port = authority.rsplit_once(':').map_or("443", |(_, p)| p);
        let name = tls.server_name_str();
        let host = if name.contains(':') { format!("[{name}]:{port}") } else { format!("{name}:{port}") };
        LinkTls { config: Arc::new(config), server_name: tls.server_name.clone(), name, host }
    }
}

/// TCP, TLS when configured, and the WebSocket upgrade. The error is one
/// line for logs and `/readyz` (addresses, names and the TLS alert only).
pub(super) async fn dial(settings: &GatewaySettings) -> Result<Ws, String> {
    let upstream = &settings.upstream;
    let tcp = TcpStream::connect(upstream).await.map_err(|e| format!("connect {upstream}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("set TCP_NODELAY: {e}"))?;
    let (stream, url) = match &settings.tls {
        None => (MaybeTlsStream::Plain(tcp), format!("ws://{upstream}/")),
        Some(tls) => {
            let stream = TlsConnector::from(tls.config.clone())
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS handshake with {upstream} (server name {}): {e}", tls.name))?;
            (MaybeTlsStream::Rustls(stream), format!("wss://{}/", tls.host))
        }
    };
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(transport_bound(settings.max_frame_bytes));
    config.max_frame_size = Some(transport_bound(settings.max_frame_bytes));
    // tungstenite zeroes its read buffer per read: 128 KiB by default.
    config.read_buffer_size = 16 * 1024;
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| format!("websocket upgrade: {e}"))?;
    Ok(ws)
}
