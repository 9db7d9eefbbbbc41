//! clawbridge demo gateway: an in-process (and standalone) fake of the OpenClaw gateway that speaks the native
//! WebSocket protocol as recorded from openclaw 2026.9.6, plus a few HTTP routes, on one TCP port.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use demo_gateway::{DemoGateway, Mode};
//! let gw = DemoGateway::builder().token("test-token").start().await?;
//! println!("ws://{}", gw.addr());
//! gw.set(|b| b.mode = Mode::Hang);
//! gw.shutdown().await;
//! # Ok(()) }
//! ```

mod agent_params;
mod behaviour;
mod handshake;
mod http;
pub mod json;
mod names;
mod pairing;
pub mod protocol;
mod registry;
mod run;
mod ws;

pub use behaviour::{echo_deltas, AssistantForm, Behaviour, HandshakeMode, Mode};

use registry::{GatewayConfig, Shared};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Builder for [`DemoGateway`].
#[derive(Debug, Clone)]
pub struct DemoGatewayBuilder {
    secret: Option<String>,
    password_mode: bool,
    agents: Vec<String>,
    bind: String,
    behaviour: Behaviour,
}

impl Default for DemoGatewayBuilder {
    fn default() -> Self {
        DemoGatewayBuilder {
            secret: None,
            password_mode: false,
            agents: vec!["main".to_string()],
            bind: "127.0.0.1:0".to_string(),
            behaviour: Behaviour::default(),
        }
    }
}

impl DemoGatewayBuilder {
    /// Shared gateway token (`auth.token` or `auth.password` must carry it). Without a token or password any
    /// client is accepted (auth mode "none").
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.secret = Some(token.into());
        self.password_mode = false;
        self
    }

    /// Shared gateway password (same check as the token; hello-ok says `auth.method:"password"`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.secret = Some(password.into());
        self.password_mode = true;
        self
    }

    /// Configured agent ids; the first is the default agent. Default `["main"]`.
    pub fn agents<I, S>(mut self, agents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let v: Vec<String> = agents.into_iter().map(Into::into).collect();
        if !v.is_empty() {
            self.agents = v;
        }
        self
    }

    pub fn tick_interval(mut self, every: Duration) -> Self {
        self.behaviour.tick_interval = every;
        self
    }

    /// Fixed reply deltas instead of the default echo.
    pub fn reply<I, S>(mut self, deltas: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.behaviour.reply = Some(deltas.into_iter().map(Into::into).collect());
        self
    }

    pub fn delta_delay(mut self, delay: Duration) -> Self {
        self.behaviour.delta_delay = delay;
        self
    }

    /// Listen address, default `127.0.0.1:0`.
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = addr.into();
        self
    }

    /// Replace all behaviour knobs at once.
    pub fn behaviour(mut self, b: Behaviour) -> Self {
        self.behaviour = b;
        self
    }

    /// Edit behaviour knobs in place.
    pub fn configure(mut self, f: impl FnOnce(&mut Behaviour)) -> Self {
        f(&mut self.behaviour);
        self
    }

    /// Bind (with `SO_REUSEADDR`) and start serving.
    pub async fn start(self) -> std::io::Result<DemoGateway> {
        let addr: SocketAddr = tokio::net::lookup_host(&self.bind)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared::new(
            GatewayConfig { secret: self.secret, password_mode: self.password_mode, agents: self.agents },
            self.behaviour,
        ));
        let accept = tokio::spawn(http::accept_loop(listener, shared.clone()));
        Ok(DemoGateway { addr: local, shared, accept: Mutex::new(Some(accept)) })
    }
}

/// A running demo gateway. Dropping it stops it (like [`DemoGateway::shutdown`], without waiting).
pub struct DemoGateway {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for DemoGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoGateway").field("addr", &self.addr).finish()
    }
}

impl DemoGateway {
    pub fn builder() -> DemoGatewayBuilder {
        DemoGatewayBuilder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://<addr>` (any path upgrades).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// `http://<addr>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Change behaviour at runtime (applies to runs and handshakes that start afterwards).
    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        self.shared.update_behaviour(f);
    }

    /// Changes the shared token or password at runtime, as the real gateway applies a reloaded config: new
    /// handshakes need the new secret, and connections that authenticated with the old one are closed with
    /// 4001 "gateway auth changed" (unless the `keep_links_on_auth_change` knob is on). Runs in flight go on.
    /// Returns how many connections were closed.
    pub fn set_secret(&self, secret: impl Into<String>) -> usize {
        self.shared.set_secret(Some(secret.into()))
    }

    /// `(device id, request id)` of the pending pairing requests (`require_pairing`).
    pub fn pending_pairings(&self) -> Vec<(String, String)> {
        self.shared.devices.pending()
    }

    /// `openclaw devices approve <requestId>`: the device's next connect succeeds. False if unknown.
    pub fn approve_pairing(&self, request_id: &str) -> bool {
        self.shared.devices.approve(request_id)
    }

    /// `openclaw devices revoke --device <id>`: its links are closed with 4001 "device removed", and its next
    /// connect needs a new approval. Returns how many links were closed.
    pub fn revoke_device(&self, device_id: &str) -> usize {
        self.shared.revoke_device(device_id)
    }

    /// Current behaviour knobs.
    pub fn behaviour(&self) -> Behaviour {
        (*self.shared.behaviour()).clone()
    }

    /// Every `req` frame received on any connection, in arrival order (the newest 10,000).
    pub fn received_requests(&self) -> Vec<serde_json::Value> {
        self.shared.received_requests()
    }

    /// Count of received `req` frames per method.
    pub fn received_methods(&self) -> BTreeMap<String, u64> {
        self.shared.received_methods()
    }

    /// `(sessionKey, runId)` of every `chat.abort`/`sessions.abort` received (runId "" when none was given).
    pub fn aborts(&self) -> Vec<(String, String)> {
        self.shared.aborts()
    }

    pub fn runs_in_flight(&self) -> usize {
        self.shared.runs_in_flight()
    }

    /// Open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.shared.connection_count()
    }

    /// User messages received per canonical session key.
    pub fn sessions(&self) -> BTreeMap<String, Vec<String>> {
        self.shared.sessions()
    }

    /// User messages of one session (canonical key, e.g. `agent:main:main`).
    pub fn session_messages(&self, session_key: &str) -> Vec<String> {
        self.shared.sessions().remove(session_key).unwrap_or_default()
    }

    /// The same JSON as `GET /__demo/state`.
    pub fn state(&self) -> serde_json::Value {
        state_json(&self.shared)
    }

    /// Drop every WebSocket abruptly (no close frame; the TCP connection is closed).
    pub fn drop_all_connections(&self) {
        self.shared.drop_all_connections();
    }

    /// Stop listening and drop every connection and run. The address can be bound again afterwards.
    pub async fn shutdown(&self) {
        let accept = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = accept {
            task.abort();
            let _ = task.await;
        }
        self.shared.abort_everything();
    }
}

impl Drop for DemoGateway {
    fn drop(&mut self) {
        if let Some(task) = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        self.shared.abort_everything();
    }
}

pub(crate) fn state_json(shared: &Shared) -> serde_json::Value {
    let aborts: Vec<serde_json::Value> =
        shared.aborts().into_iter().map(|(k, r)| serde_json::json!({"sessionKey": k, "runId": r})).collect();
    serde_json::json!({
        "connections": shared.connection_count(),
        "runs_in_flight": shared.runs_in_flight(),
        "aborts": aborts,
        "received_methods": shared.received_methods(),
        "sessions": shared.sessions(),
    })
}
