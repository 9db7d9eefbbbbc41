//! The front door, shared by every request before any route runs: which
//! route it reaches, judged on the path the gateway routes on (`path`,
//! `routes`); who sent it, as the gateway would attribute the client
//! (`attribution`, `trusted`); and the refusals answered here (`Refusal`).

pub mod attribution;
pub mod path;
pub mod routes;
pub mod trusted;

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use pingora::http::{RequestHeader, ResponseHeader};

pub use attribution::{Attributor, Client, Forwarding, GatewayTrust};
pub use routes::{OwnedRoute, Routed, Routes};

/// A request the front door answers itself, and closes the connection
/// after: a target it cannot route, or an owned route that carries
/// `Upgrade` (never passed through; answered as the gateway's own upgrade
/// handling answers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A target whose routing path cannot be computed (not UTF-8, or not a
    /// URL): the gateway refuses these too (400 from Node, or 401).
    Unroutable,
    /// `Upgrade` without a `Connection: upgrade` token, or empty: Node's
    /// request handler in the gateway answers 400 `Bad Request`.
    UpgradeIncomplete,
    /// A non-GET upgrade (h2c or websocket): the gateway's `ws` server
    /// answers 405 `Invalid HTTP method`.
    UpgradeMethod,
    /// A GET upgrade to anything but websocket (h2c): 400 `Invalid Upgrade header`.
    UpgradeProtocol,
    /// A websocket handshake to an owned route: the route takes POST only.
    UpgradeToRoute,
}

impl Refusal {
    /// The refusal due to a request to an owned route, if it carries `Upgrade`.
    pub fn for_owned(req: &RequestHeader) -> Option<Refusal> {
        let upgrade = req.headers.get(UPGRADE)?.as_bytes().trim_ascii();
        let connection_upgrade = req
            .headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade")));
        Some(if upgrade.is_empty() || !connection_upgrade {
            Refusal::UpgradeIncomplete
        } else if req.method != http::Method::GET {
            Refusal::UpgradeMethod
        } else if !upgrade.eq_ignore_ascii_case(b"websocket") {
            Refusal::UpgradeProtocol
        } else {
            Refusal::UpgradeToRoute
        })
    }

    pub fn status(self) -> u16 {
        match self {
            Refusal::Unroutable | Refusal::UpgradeIncomplete | Refusal::UpgradeProtocol => 400,
            Refusal::UpgradeMethod | Refusal::UpgradeToRoute => 405,
        }
    }

    /// `(content-type, body)`.
    pub fn body(self) -> (&'static str, &'static str) {
        match self {
            Refusal::Unroutable | Refusal::UpgradeIncomplete => ("text/plain; charset=utf-8", "Bad Request"),
            Refusal::UpgradeMethod => ("text/html", "Invalid HTTP method"),
            Refusal::UpgradeProtocol => ("text/html", "Invalid Upgrade header"),
            Refusal::UpgradeToRoute => ("text/plain; charset=utf-8", "Method Not Allowed"),
        }
    }

    /// The whole response; the connection is closed after it.
    pub fn response(self) -> (Box<ResponseHeader>, Bytes) {
        let (content_type, body) = self.body();
        let mut h = ResponseHeader::build(self.status(), Some(4)).expect("valid status");
        h.insert_header("Content-Type", content_type).expect("static header");
        h.insert_header("Content-Length", body.len().to_string()).expect("number header");
        h.insert_header("Connection", "close").expect("static header");
        if self == Refusal::UpgradeToRoute {
            h.insert_header("Allow", "POST").expect("static header");
        }
        (Box::new(h), Bytes::from_static(body.as_bytes()))
    }

    /// Fixed label for the access log.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unroutable => "unroutable_target",
            Refusal::UpgradeIncomplete => "upgrade_incomplete",
            Refusal::UpgradeMethod => "upgrade_method",
            Refusal::UpgradeProtocol => "upgrade_protocol",
            Refusal::UpgradeToRoute => "upgrade_to_owned_route",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/v1/chat/completions", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    /// The gateway's answers to upgrades (2026.9.6, `ws` 8.21.3 and its
    /// request handler), recorded against the real server.
    #[test]
    fn upgrades_on_owned_routes_are_refused_as_the_gateway_refuses_them() {
        let ws = [("Upgrade", "websocket"), ("Connection", "Upgrade")];
        assert_eq!(Refusal::for_owned(&req("POST", &ws)), Some(Refusal::UpgradeMethod));
        let h2c = [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings")];
        assert_eq!(Refusal::for_owned(&req("POST", &h2c)), Some(Refusal::UpgradeMethod));
        assert_eq!(Refusal::for_owned(&req("GET", &h2c)), Some(Refusal::UpgradeProtocol));
        assert_eq!(Refusal::for_owned(&req("GET", &ws)), Some(Refusal::UpgradeToRoute));
        let no_token = [("Upgrade", "websocket"), ("Connection", "keep-alive")];
        assert_eq!(Refusal::for_owned(&req("POST", &no_token)), Some(Refusal::UpgradeIncomplete));
        let empty = [("Upgrade", ""), ("Connection", "upgrade")];
        assert_eq!(Refusal::for_owned(&req("POST", &empty)), Some(Refusal::UpgradeIncomplete));
        let split = [("Upgrade", "websocket"), ("Connection", "keep-alive"), ("Connection", "UPGRADE")];
        assert_eq!(Refusal::for_owned(&req("POST", &split)), Some(Refusal::UpgradeMethod));
        assert_eq!(Refusal::for_owned(&req("POST", &[("Connection", "upgrade")])), None);
    }
}
