//! The gateway's address for forwarded requests. An IP literal is parsed
//! once. A host name is resolved off the runtime threads and cached for
//! [`TTL`], so no request blocks on DNS, and a failed lookup is a 502 for
//! that request, never a panic (Pingora's `HttpPeer::new` would resolve a
//! name synchronously on every request and unwrap the result). For an
//! `https://` upstream the peer is TLS, with `upstream_tls.server_name` as
//! SNI and verified name (Pingora verifies the certificate against the
//! connector's roots, `upstream_tls.ca_file`; a failure is a 502).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType};

use crate::config::UpstreamTls;

/// How long a resolved address is reused.
pub const TTL: Duration = Duration::from_secs(5);

pub struct Upstream {
    /// `host:port` as configured.
    spec: String,
    /// The address when `spec` is an IP literal.
    fixed: Option<SocketAddr>,
    resolved: Mutex<Option<(SocketAddr, Instant)>>,
    /// The TLS server name; `None`: plaintext. Never empty when set: Pingora
    /// skips verification for an empty SNI.
    sni: Option<String>,
}

impl Upstream {
    pub fn new(spec: &str, tls: Option<&UpstreamTls>) -> Self {
        let sni = tls.map(UpstreamTls::server_name_str).filter(|n| !n.is_empty());
        Self { spec: spec.to_string(), fixed: spec.parse().ok(), resolved: Mutex::new(None), sni }
    }

    /// The peer of a forwarded request.
    pub async fn peer(&self) -> pingora::Result<Box<HttpPeer>> {
        let addr = self.addr().await?;
        Ok(Box::new(match &self.sni {
            Some(sni) => HttpPeer::new(addr, true, sni.clone()),
            None => HttpPeer::new(addr, false, String::new()),
        }))
    }

    pub async fn addr(&self) -> pingora::Result<SocketAddr> {
        if let Some(addr) = self.fixed {
            return Ok(addr);
        }
        if let Some((addr, at)) = *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < TTL {
                return Ok(addr);
            }
        }
        let found = tokio::net::lookup_host(self.spec.as_str()).await.ok().and_then(|mut a| a.next());
        let Some(addr) = found else {
            let mut e = Error::new_up(ErrorType::ConnectNoRoute);
            e.set_context(format!("cannot resolve upstream {}", self.spec));
            return Err(e);
        };
        *self.resolved.lock().unwrap_or_else(|e| e.into_inner()) = Some((addr, Instant::now()));
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_literals_need_no_lookup_and_names_resolve_or_fail_as_upstream_errors() {
        assert_eq!(Upstream::new("127.0.0.1:18789", None).addr().await.unwrap(), "127.0.0.1:18789".parse().unwrap());
        assert_eq!(Upstream::new("[::1]:80", None).addr().await.unwrap(), "[::1]:80".parse().unwrap());
        let local = Upstream::new("localhost:18789", None).addr().await.unwrap();
        assert!(local.ip().is_loopback() && local.port() == 18789, "{local}");
        let err = Upstream::new("no-such-host.invalid:80", None).addr().await.unwrap_err();
        assert_eq!(err.esource(), &pingora::ErrorSource::Upstream);
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
    }
}
