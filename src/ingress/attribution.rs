//! Who the client is, as the gateway would judge it if the client connected
//! to it directly, and how a forwarded request tells the gateway so. The
//! gateway trusts a loopback peer that sends no forwarding headers as
//! local; every other client must reach it as itself, named in
//! `X-Forwarded-For`, so that a remote client stays remote (no local
//! scopes, no loopback exemption from the auth lockout). The rules follow
//! the gateway's `resolveGatewayIngressAttribution` and
//! `resolveForwardedClientIp` (2026.9.6).

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderValue};

use super::trusted::TrustedProxies;

pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client of one request, as the gateway attributes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A loopback peer with no forwarding headers: local to the gateway.
    Local(IpAddr),
    /// Anyone else, by the address the gateway would key it on.
    Remote(IpAddr),
    /// Forwarding headers the gateway would refuse (403
    /// `proxy_attribution_required`): from a peer it does not trust, or
    /// naming no usable client.
    Unattributable,
}

impl Client {
    /// The address auth failures are counted against; `None` when unattributable.
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Client::Local(ip) | Client::Remote(ip) => Some(ip),
            Client::Unattributable => None,
        }
    }
}

/// What a forwarded request carries upstream about its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarding {
    /// A local client: forwarded as it came, so the gateway sees it local.
    Untouched,
    /// A trusted proxy's chain, extended with the proxy's own address.
    Extend(HeaderValue),
    /// Anyone else: the client's forwarding headers are dropped and
    /// `X-Forwarded-For` names the client. If clawbridge itself is not in
    /// `gateway.trustedProxies`, the gateway refuses such a request (403)
    /// rather than treating the client as local.
    Replace(HeaderValue),
}

impl Forwarding {
    /// Writes what the gateway must see about the client into the upstream
    /// request (passthrough, and requests handed to the gateway's own endpoint).
    pub fn apply(self, upstream: &mut pingora::http::RequestHeader) -> pingora::Result<()> {
        match self {
            Forwarding::Untouched => {}
            Forwarding::Extend(chain) => upstream.insert_header(X_FORWARDED_FOR, chain)?,
            Forwarding::Replace(client) => {
                let spoofed: Vec<_> =
                    upstream.headers.keys().filter(|k| is_proxy_header(k.as_str())).cloned().collect();
                for name in spoofed {
                    upstream.remove_header(&name);
                }
                upstream.insert_header(X_FORWARDED_FOR, client)?;
            }
        }
        Ok(())
    }
}

/// The gateway's `gateway.trustedProxies` and `gateway.allowRealIpFallback`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributor {
    pub trusted: TrustedProxies,
    pub real_ip_fallback: bool,
}

impl Attributor {
    /// The client of a request from `peer`, as the gateway attributes it.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Client {
        let Some(peer) = peer.map(canonical) else { return Client::Unattributable };
        if direct_local(peer, headers) {
            return Client::Local(peer);
        }
        let proxied = has_proxy_headers(headers);
        if self.trusted.contains(peer) {
            return match self.forwarded_client(headers) {
                Some(ip) if !is_loopback(ip) => Client::Remote(ip),
                _ => Client::Unattributable,
            };
        }
        if proxied {
            Client::Unattributable
        } else {
            Client::Remote(peer)
        }
    }

    /// How to forward a request from `peer` so the gateway sees its client
    /// as it would see it directly (never as more trusted).
    pub fn forwarding(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Forwarding {
        let Some(peer) = peer.map(canonical) else {
            return Forwarding::Replace(HeaderValue::from_static("unknown"));
        };
        if direct_local(peer, headers) {
            return Forwarding::Untouched;
        }
        let proxied = has_proxy_headers(headers);
        let own = HeaderValue::from_str(&peer.to_string()).expect("an IP address is a valid header value");
        if proxied && self.trusted.contains(peer) {
            let mut chain = Vec::new();
            for value in headers.get_all(X_FORWARDED_FOR) {
                chain.extend_from_slice(value.as_bytes());
                chain.extend_from_slice(b", ");
            }
            chain.extend_from_slice(own.as_bytes());
            if let Ok(chain) = HeaderValue::from_bytes(&chain) {
                return Forwarding::Extend(chain);
            }
        }
        Forwarding::Replace(own)
    }

    /// `resolveForwardedClientIp`: the rightmost `X-Forwarded-For` hop that
    /// is neither loopback nor a trusted proxy (duplicate headers read as
    /// one list, as Node joins them); then `X-Real-IP` if the fallback is on.
    fn forwarded_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in headers.get_all(X_FORWARDED_FOR) {
            let Ok(text) = value.to_str() else { continue };
            hops.extend(text.split(',').filter_map(parse_ip_literal));
        }
        let from_chain = hops.into_iter().rev().find(|ip| !is_loopback(*ip) && !self.trusted.contains(*ip));
        from_chain.or_else(|| {
            if !self.real_ip_fallback {
                return None;
            }
            let mut values = headers.get_all("x-real-ip").iter();
            // Node joins duplicates with ", ", which no longer parses.
            match (values.next(), values.next()) {
                (Some(v), None) => v.to_str().ok().and_then(parse_ip_literal),
                _ => None,
            }
        })
    }
}

/// Whether the gateway will serve remote clients that clawbridge forwards:
/// only if it trusts the address clawbridge reaches it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayTrust {
    /// `gateway.trustedProxies` holds clawbridge's address: remote clients
    /// are served as themselves.
    Trusted(IpAddr),
    /// It does not: the gateway refuses forwarded remote clients (403
    /// `proxy_attribution_required`); they are never passed off as local.
    NotTrusted(IpAddr),
    /// The gateway is not on loopback: which address it sees is unknown here.
    Unknown,
}

impl GatewayTrust {
    /// From the upstream address (`host:port`) clawbridge connects to.
    pub fn of(attributor: &Attributor, upstream: &str) -> Self {
        let Ok(addr) = upstream.parse::<std::net::SocketAddr>() else { return GatewayTrust::Unknown };
        let own = canonical(addr.ip());
        if !own.is_loopback() {
            return GatewayTrust::Unknown;
        }
        if attributor.trusted.contains(own) {
            GatewayTrust::Trusted(own)
        } else {
            GatewayTrust::NotTrusted(own)
        }
    }

    /// One plain sentence for `--check`, the startup log and `/readyz`.
    pub fn describe(self) -> String {
        match self {
            GatewayTrust::Trusted(ip) => {
                format!("remote clients are forwarded as themselves (gateway.trustedProxies includes {ip})")
            }
            GatewayTrust::NotTrusted(ip) => format!(
                "remote clients are refused by the gateway (403 proxy_attribution_required), never passed as local: \
                 gateway.trustedProxies does not include {ip}, the address clawbridge reaches it from"
            ),
            GatewayTrust::Unknown => "remote clients are forwarded with X-Forwarded-For; the gateway serves them only \
                if gateway.trustedProxies includes the address clawbridge reaches it from"
                .to_string(),
        }
    }
}

/// A loopback peer without forwarding headers: local to the gateway, and
/// forwarded untouched whatever `gateway.trustedProxies` says.
pub fn direct_local(peer: IpAddr, headers: &HeaderMap) -> bool {
    is_loopback(peer) && !has_proxy_headers(headers)
}

/// `forwarded`, `x-real-ip`, any `x-forwarded-*`, or a header Tailscale
/// owns: the gateway treats the request as proxied.
pub fn has_proxy_headers(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| is_proxy_header(k.as_str()))
}

pub fn is_proxy_header(name: &str) -> bool {
    matches!(
        name,
        "forwarded"
            | "x-real-ip"
            | "tailscale-funnel-request"
            | "tailscale-headers-info"
            | "tailscale-user-login"
            | "tailscale-user-name"
            | "tailscale-user-profile-pic"
    ) || name.starts_with("x-forwarded-")
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, as a dual-stack listener reports
/// IPv4 peers) as plain IPv4, as the gateway normalises addresses.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// `127.0.0.0/8`, `::1`, and their IPv4-mapped forms.
pub fn is_loopback(ip: IpAddr) -> bool {
    canonical(ip).is_loopback()
}

/// The gateway's `parseIpLiteral`: trimmed, an optional port stripped
/// (`1.2.3.4:80`, `[v6]:443`), canonical literals only.
fn parse_ip_literal(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('[') {
        return inner.split_once(']').and_then(|(ip, _)| ip.parse().ok()).map(canonical);
    }
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    match raw.rsplit_once(':') {
        Some((host, _)) if raw.contains('.') && !host.contains(':') => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn attributor(trusted: &[&str]) -> Attributor {
        Attributor { trusted: TrustedProxies::parse(trusted.iter().copied()).unwrap(), real_ip_fallback: false }
    }

    /// The gateway's resolved client for each `X-Forwarded-For`, with
    /// `trustedProxies: ["10.0.0.0/8", "127.0.0.1"]` and peer 127.0.0.1
    /// (recorded from the gateway's own `resolveClientIp`).
    #[test]
    fn resolves_the_forwarded_client_as_the_gateway_does() {
        let a = attributor(&["10.0.0.0/8", "127.0.0.1"]);
        let cases: &[(&str, Option<&str>)] = &[
            ("203.0.113.5", Some("203.0.113.5")),
            ("203.0.113.5, 10.1.1.1", Some("203.0.113.5")),
            ("198.51.100.1, 203.0.113.5", Some("203.0.113.5")),
            ("10.9.9.9, 203.0.113.5, 10.1.1.1", Some("203.0.113.5")),
            ("203.0.113.5, 127.0.0.1", Some("203.0.113.5")),
            ("127.0.0.1", None),
            ("::ffff:127.0.0.1", None),
            ("10.9.9.9", None),
            ("203.0.113.5:8080", Some("203.0.113.5")),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("2001:DB8::1", Some("2001:db8::1")),
            ("::ffff:203.0.113.5", Some("203.0.113.5")),
            (" 203.0.113.5 ,garbage", Some("203.0.113.5")),
            ("unknown, 203.0.113.5", Some("203.0.113.5")),
            ("203.0.113.5,,", Some("203.0.113.5")),
            ("garbage", None),
            ("for=203.0.113.5", None),
            ("\"203.0.113.5\"", None),
            ("010.1.1.1", None),
            ("203.0.113.5 198.51.100.1", None),
        ];
        for (xff, expected) in cases {
            let got = a.client(ip("127.0.0.1"), &headers(&[("x-forwarded-for", xff)]));
            let want = match expected {
                Some(e) => Client::Remote(e.parse().unwrap()),
                None => Client::Unattributable,
            };
            assert_eq!(got, want, "X-Forwarded-For: {xff}");
        }
        let split = headers(&[("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", "203.0.113.5")]);
        assert_eq!(a.client(ip("127.0.0.1"), &split), Client::Remote("203.0.113.5".parse().unwrap()));
    }

    #[test]
    fn attribution_table() {
        let a = attributor(&["127.0.0.1", "10.0.0.5"]);
        let none = headers(&[]);
        let xff = headers(&[("x-forwarded-for", "203.0.113.5")]);
        let proto = headers(&[("x-forwarded-proto", "https")]);
        let tailscale = headers(&[("tailscale-user-login", "x")]);
        let r = |s: &str| Client::Remote(s.parse().unwrap());
        // Loopback without headers is local, trusted or not, mapped or not.
        assert_eq!(a.client(ip("127.0.0.1"), &none), Client::Local("127.0.0.1".parse().unwrap()));
        assert_eq!(a.client(ip("127.8.9.10"), &none), Client::Local("127.8.9.10".parse().unwrap()));
        assert_eq!(a.client(ip("::ffff:127.0.0.1"), &none), Client::Local("127.0.0.1".parse().unwrap()));
        assert_eq!(a.client(ip("::1"), &none), Client::Local("::1".parse().unwrap()));
        // A loopback peer the gateway does not trust may not forward.
        assert_eq!(a.client(ip("::1"), &xff), Client::Unattributable);
        assert_eq!(a.client(ip("127.0.0.2"), &tailscale), Client::Unattributable);
        // Trusted peers: the chain decides.
        assert_eq!(a.client(ip("10.0.0.5"), &xff), r("203.0.113.5"));
        assert_eq!(a.client(ip("10.0.0.5"), &none), Client::Unattributable, "trusted, remote, no header");
        assert_eq!(a.client(ip("10.0.0.5"), &proto), Client::Unattributable, "no X-Forwarded-For");
        // Untrusted remote peers: themselves, unless they forward.
        assert_eq!(a.client(ip("192.0.2.7"), &none), r("192.0.2.7"));
        assert_eq!(a.client(ip("::ffff:192.0.2.7"), &none), r("192.0.2.7"));
        assert_eq!(a.client(ip("192.0.2.7"), &xff), Client::Unattributable);
        assert_eq!(a.client(None, &none), Client::Unattributable);
    }

    #[test]
    fn real_ip_fallback_only_when_enabled() {
        let mut a = attributor(&["127.0.0.1"]);
        let h = headers(&[("x-real-ip", "203.0.113.9")]);
        assert_eq!(a.client(ip("127.0.0.1"), &h), Client::Unattributable);
        a.real_ip_fallback = true;
        assert_eq!(a.client(ip("127.0.0.1"), &h), Client::Remote("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn trust_of_clawbridge_itself() {
        let a = attributor(&["127.0.0.1"]);
        assert_eq!(GatewayTrust::of(&a, "127.0.0.1:18789"), GatewayTrust::Trusted("127.0.0.1".parse().unwrap()));
        assert_eq!(GatewayTrust::of(&a, "[::1]:18789"), GatewayTrust::NotTrusted("::1".parse().unwrap()));
        assert_eq!(
            GatewayTrust::of(&Attributor::default(), "127.0.0.1:1"),
            GatewayTrust::NotTrusted("127.0.0.1".parse().unwrap())
        );
        assert_eq!(GatewayTrust::of(&a, "gateway:18789"), GatewayTrust::Unknown);
        assert_eq!(GatewayTrust::of(&a, "10.0.0.9:18789"), GatewayTrust::Unknown);
    }

    #[test]
    fn forwarding_never_makes_a_client_more_local() {
        let a = attributor(&["127.0.0.1", "10.0.0.5"]);
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(a.forwarding(ip("127.0.0.1"), &headers(&[])), Forwarding::Untouched);
        assert_eq!(a.forwarding(ip("::ffff:127.0.0.1"), &headers(&[])), Forwarding::Untouched);
        assert_eq!(a.forwarding(ip("192.0.2.7"), &headers(&[])), Forwarding::Replace(v("192.0.2.7")));
        assert_eq!(a.forwarding(ip("::ffff:192.0.2.7"), &headers(&[])), Forwarding::Replace(v("192.0.2.7")));
        // An untrusted client's own forwarding headers are dropped.
        let spoof = headers(&[("x-forwarded-for", "127.0.0.1"), ("x-real-ip", "127.0.0.1")]);
        assert_eq!(a.forwarding(ip("192.0.2.7"), &spoof), Forwarding::Replace(v("192.0.2.7")));
        // A loopback client with headers it may not send is named as
        // loopback, which the gateway refuses, as it would refuse it directly.
        assert_eq!(a.forwarding(ip("::1"), &spoof), Forwarding::Replace(v("::1")));
        // A trusted proxy's chain is extended.
        let chain = headers(&[("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", "203.0.113.5")]);
        assert_eq!(a.forwarding(ip("10.0.0.5"), &chain), Forwarding::Extend(v("198.51.100.1, 203.0.113.5, 10.0.0.5")));
        assert_eq!(
            a.forwarding(ip("10.0.0.5"), &headers(&[("x-forwarded-proto", "https")])),
            Forwarding::Extend(v("10.0.0.5"))
        );
    }
}
