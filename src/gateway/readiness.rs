//! Why the link is not ready ([`NotReady`], carried by `LinkState::Down`)
//! and what `/readyz` and the metrics show of the current link
//! ([`LinkInfo`]: server version, protocol, device id, pairing state).
//! The chat layer sees only "not ready"; the detail is for operators.

use std::sync::{Arc, RwLock};

use crate::metrics;

/// Why the link is down. `Display` is the sentence logs and `/readyz` show
/// (built from fixed text, codes and ids, never a secret).
#[derive(Debug, Clone, PartialEq)]
pub enum NotReady {
    /// Not connected, lost, or the handshake failed.
    Link(Arc<str>),
    /// The gateway refused the secret: its file is re-read at once.
    Refused(Arc<str>),
    /// The gateway waits for an operator to approve this device.
    PairingRequired(Arc<Pairing>),
}

/// A pending pairing request, as the gateway described it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pairing {
    pub device_id: String,
    pub request_id: Option<String>,
    /// `not-paired`, `role-upgrade`, `scope-upgrade`, `metadata-upgrade`.
    pub reason: Option<String>,
}

impl Pairing {
    /// The command an operator runs on the gateway's host.
    pub fn approve_command(&self) -> String {
        match &self.request_id {
            Some(id) => format!("openclaw devices approve {id}"),
            None => "openclaw devices list (then: openclaw devices approve <requestId>)".into(),
        }
    }
}

impl NotReady {
    /// Whether the gateway's file should be re-read now (perhaps its secret
    /// changed and the file was not polled yet).
    pub fn rereads(&self) -> bool {
        matches!(self, NotReady::Refused(_))
    }
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Link(s) | NotReady::Refused(s) => f.write_str(s),
            NotReady::PairingRequired(p) => write!(
                f,
                "the gateway requires pairing ({}): device {} is waiting for approval, request {}; run `{}`",
                p.reason.as_deref().unwrap_or("not-paired"),
                p.device_id,
                p.request_id.as_deref().unwrap_or("unknown"),
                p.approve_command()
            ),
        }
    }
}

impl From<&str> for NotReady {
    fn from(s: &str) -> Self {
        NotReady::Link(Arc::from(s))
    }
}

impl From<String> for NotReady {
    fn from(s: String) -> Self {
        NotReady::Link(Arc::from(s))
    }
}

impl From<Arc<str>> for NotReady {
    fn from(s: Arc<str>) -> Self {
        NotReady::Link(s)
    }
}

/// What `hello-ok` said about the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerInfo {
    pub protocol: u32,
    pub version: Arc<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PairingState {
    /// No pairing needed (a loopback backend client), or not known yet.
    #[default]
    None,
    /// Refused with `PAIRING_REQUIRED`.
    Pending,
    /// The gateway issued a device token to this device.
    Paired,
}

impl PairingState {
    pub fn label(self) -> &'static str {
        match self {
            PairingState::None => "none",
            PairingState::Pending => "pending",
            PairingState::Paired => "paired",
        }
    }
}

/// The current link's facts, for `/readyz`.
#[derive(Debug, Clone, Default)]
pub struct LinkInfo {
    /// Of the link serving now; `None` while down.
    pub server: Option<ServerInfo>,
    pub device_id: Option<Arc<str>>,
    pub pairing: PairingState,
    pub pending: Option<Arc<Pairing>>,
}

/// Shared between the link task (writer) and the admin listener (reader).
#[derive(Debug, Default)]
pub struct LinkInfoCell(RwLock<LinkInfo>);

impl LinkInfoCell {
    pub fn new(device_id: Option<Arc<str>>) -> Self {
        LinkInfoCell(RwLock::new(LinkInfo { device_id, ..Default::default() }))
    }

    pub fn load(&self) -> LinkInfo {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut LinkInfo)) {
        let mut info = self.0.write().unwrap_or_else(|e| e.into_inner());
        f(&mut info);
        metrics::set_pairing(info.pairing.label());
        metrics::GATEWAY_INFO.reset();
        if let Some(s) = &info.server {
            metrics::GATEWAY_INFO.with_label_values(&[&s.protocol.to_string(), &label_value(&s.version)]).set(1);
        }
    }

    /// A link is up (first connect, reconnect or rotation).
    pub fn connected(&self, server: ServerInfo, paired: bool) {
        self.update(|i| {
            i.server = Some(server);
            i.pending = None;
            i.pairing = if paired { PairingState::Paired } else { PairingState::None };
        });
    }

    /// The link is down; a pairing refusal is remembered as pending.
    pub fn down(&self, why: &NotReady) {
        self.update(|i| {
            i.server = None;
            if let NotReady::PairingRequired(p) = why {
                i.pairing = PairingState::Pending;
                i.pending = Some(p.clone());
            }
        });
    }
}

/// A gateway-provided label value, bounded and printable.
fn label_value(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_reason_names_device_request_and_command() {
        let p =
            Pairing { device_id: "ab".repeat(32), request_id: Some("req-1".into()), reason: Some("not-paired".into()) };
        let text = NotReady::PairingRequired(Arc::new(p)).to_string();
        assert!(text.contains(&"ab".repeat(32)), "{text}");
        assert!(text.contains("request req-1"), "{text}");
        assert!(text.contains("`openclaw devices approve req-1`"), "{text}");
        assert!(!NotReady::from("x").rereads());
        assert!(NotReady::Refused("gateway refused connect".into()).rereads());
    }

    #[test]
    fn only_the_current_links_info_series_is_exported() {
        let cell = LinkInfoCell::new(None);
        cell.connected(ServerInfo { protocol: 3, version: "2026.3.31".into() }, true);
        cell.connected(ServerInfo { protocol: 4, version: "2026.9.6\n\"x".into() }, false);
        let text = {
            let mut buf = Vec::new();
            prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &prometheus::gather(), &mut buf).unwrap();
            String::from_utf8(buf).unwrap()
        };
        let series: Vec<&str> = text.lines().filter(|l| l.starts_with("clawbridge_gateway_info{")).collect();
        assert_eq!(series, vec![r#"clawbridge_gateway_info{protocol="4",server_version="2026.9.6\"x"} 1"#]);
        assert!(text.contains("clawbridge_gateway_pairing{state=\"none\"} 1"), "{text}");
        cell.down(&NotReady::PairingRequired(Arc::new(Pairing {
            device_id: "d".into(),
            request_id: None,
            reason: None,
        })));
        assert_eq!(cell.load().pairing, PairingState::Pending);
        assert!(cell.load().server.is_none());
    }
}
