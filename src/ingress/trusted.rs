//! `gateway.trustedProxies`: the peers allowed to send forwarding headers.
//! Entries are IP addresses or CIDR ranges, as the gateway accepts them.

use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses entries; returns the first one that is neither an IP nor a CIDR.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut out = Vec::new();
        for entry in entries {
            let (ip, bits) = match entry.trim().split_once('/') {
                Some((ip, bits)) => (ip, Some(bits)),
                None => (entry.trim(), None),
            };
            let ip: IpAddr = ip.parse().map_err(|_| entry.to_string())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| entry.to_string())?,
                None => max,
            };
            out.push((ip, bits));
        }
        Ok(TrustedProxies(out))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = super::attribution::canonical(ip);
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), *bits),
            _ => false,
        })
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = (bits / 8) as usize;
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ips_and_ranges() {
        let t = TrustedProxies::parse(["10.0.0.0/8", "192.168.1.7", "fd00::/8"]).unwrap();
        assert!(t.contains("10.200.3.4".parse().unwrap()));
        assert!(t.contains("192.168.1.7".parse().unwrap()));
        assert!(!t.contains("192.168.1.8".parse().unwrap()));
        assert!(t.contains("fd12::1".parse().unwrap()));
        assert!(t.contains("::ffff:10.1.1.1".parse().unwrap()), "v4-mapped v6 peers match v4 ranges");
        assert!(!TrustedProxies::default().contains("127.0.0.1".parse().unwrap()));
        assert_eq!(TrustedProxies::parse(["nope"]).unwrap_err(), "nope");
        assert!(TrustedProxies::parse(["10.0.0.0/33"]).is_err());
    }
}
