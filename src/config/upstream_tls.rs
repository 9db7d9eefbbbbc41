//! The gateway's address (`upstream`) and, for an `https://` upstream, the
//! TLS settings the link and passthrough share: the CA bundle
//! (`upstream_tls.ca_file`, PEM, one or more certificates; default: the
//! system's roots, as Pingora reads them) and the server name
//! (`upstream_tls.server_name`, default: the URL's host), sent as SNI and
//! verified against the certificate. Verification is never skipped; a bad
//! bundle or name is a config error at start and in `--check`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use pingora::tls::{RootCertStore, ServerName};
use serde::Deserialize;

use super::ConfigError;

/// `upstream_tls` in the YAML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUpstreamTls {
    pub(super) ca_file: Option<PathBuf>,
    pub(super) server_name: Option<String>,
}

/// TLS to the gateway, validated: the roots are loaded and the name parses.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Sent as SNI and checked against the certificate.
    pub server_name: ServerName<'static>,
    /// `None`: the system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured).
    pub ca_file: Option<PathBuf>,
    /// The trust anchors, loaded once.
    pub roots: Arc<RootCertStore>,
}

impl UpstreamTls {
    /// The server name as text (a DNS name or an IP address).
    pub fn server_name_str(&self) -> String {
        match &self.server_name {
            ServerName::DnsName(d) => d.as_ref().to_string(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            other => format!("{other:?}"),
        }
    }

    /// One line for `--check` and the startup log.
    pub fn describe(&self) -> String {
        let roots = match &self.ca_file {
            Some(p) => format!("CA bundle {}", p.display()),
            None => "the system's CA roots".to_string(),
        };
        format!(
            "TLS, server name {}, verified against {roots} ({} certificates)",
            self.server_name_str(),
            self.roots.len()
        )
    }
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name_str())
            .field("ca_file", &self.ca_file)
            .field("roots", &self.roots.len())
            .finish()
    }
}

/// `upstream` parsed: `host:port` and whether it is `https`.
#[derive(Debug, PartialEq)]
struct Target {
    authority: String,
    host: String,
    tls: bool,
}

/// Parses `upstream` (`host:port`, `http://host[:port]` or
/// `https://host[:port]`, a trailing `/` allowed) and loads its TLS settings.
/// Returns the `host:port` to dial and, for `https`, the TLS settings.
pub(super) fn resolve(
    upstream: &str,
    ca_file: Option<PathBuf>,
    server_name: Option<String>,
) -> Result<(String, Option<UpstreamTls>), ConfigError> {
    let target = parse(upstream.trim())?;
    if !target.tls {
        if ca_file.is_some() || server_name.is_some() {
            return Err(ConfigError::new(
                "upstream_tls",
                format!("set, but upstream {upstream:?} is not https://; TLS settings apply only to an https upstream"),
            ));
        }
        return Ok((target.authority, None));
    }
    let name = server_name.map(|n| n.trim().to_string()).unwrap_or_else(|| target.host.clone());
    let server_name = ServerName::try_from(name.clone()).map_err(|_| {
        ConfigError::new("upstream_tls.server_name", format!("{name:?} is not a DNS name or an IP address"))
    })?;
    let roots = load_roots(ca_file.as_ref())?;
    Ok((target.authority, Some(UpstreamTls { server_name, ca_file, roots: Arc::new(roots) })))
}

fn parse(v: &str) -> Result<Target, ConfigError> {
    let bad = || {
        ConfigError::new(
            "upstream",
            format!("expected host:port, http://host[:port] or https://host[:port], got {v:?}"),
        )
    };
    let (rest, tls, default_port) = if let Some(r) = v.strip_prefix("https://") {
        (r, true, Some(443))
    } else if let Some(r) = v.strip_prefix("http://") {
        (r, false, Some(80))
    } else {
        (v, false, None)
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace) {
        return Err(bad());
    }
    // `[v6]:port`, `host:port`, or (with a scheme) a host alone.
    let (host, port) = match rest.strip_prefix('[') {
        Some(r) => {
            let (h, after) = r.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad()),
            }
        }
        None => match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad()),
            None => (rest, None),
        },
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?,
        None => default_port.ok_or_else(bad)?,
    };
    if host.is_empty() {
        return Err(bad());
    }
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    Ok(Target { authority, host: host.to_string(), tls })
}

/// The CA bundle, or the system's roots; an empty set is an error (every
/// handshake would fail).
fn load_roots(ca_file: Option<&PathBuf>) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let key = "upstream_tls.ca_file";
            // Pingora takes the path as a string (and would panic on a file it cannot load).
            if path.to_str().is_none() {
                return Err(ConfigError::new(key, format!("{}: not a UTF-8 path", path.display())));
            }
            let text = std::fs::read(path).map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))?;
            if !text.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                return Err(ConfigError::new(key, format!("{}: no PEM certificate in it", path.display())));
            }
            pingora::tls::load_ca_file_into_store(path, &mut roots)
                .map_err(|e| ConfigError::new(key, format!("{}: {}", path.display(), describe_load_error(&e))))?;
        }
        None => {
            pingora::tls::load_platform_certs_incl_env_into_store(&mut roots).map_err(|e| {
                ConfigError::new(
                    "upstream_tls.ca_file",
                    format!("not set, and the system's CA roots cannot be read: {}", describe_load_error(&e)),
                )
            })?;
            if roots.is_empty() {
                return Err(ConfigError::new(
                    "upstream_tls.ca_file",
                    "not set, and the system has no CA roots (no /etc/ssl/certs, SSL_CERT_FILE or SSL_CERT_DIR): set the gateway's CA bundle",
                ));
            }
        }
    }
    Ok(roots)
}

/// Pingora's error without its type prefix, with its cause.
fn describe_load_error(e: &pingora::Error) -> String {
    let mut s = e.context.as_ref().map(|c| c.as_str().to_string()).unwrap_or_else(|| e.etype().as_str().to_string());
    if let Some(cause) = &e.cause {
        s.push_str(&format!(": {cause}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(authority: &str, host: &str, tls: bool) -> Target {
        Target { authority: authority.into(), host: host.into(), tls }
    }

    #[test]
    fn upstream_forms() {
        assert_eq!(parse("127.0.0.1:18789").unwrap(), t("127.0.0.1:18789", "127.0.0.1", false));
        assert_eq!(parse("http://gw:80/").unwrap(), t("gw:80", "gw", false));
        assert_eq!(parse("https://gw.example").unwrap(), t("gw.example:443", "gw.example", true));
        assert_eq!(parse("https://[::1]:8443").unwrap(), t("[::1]:8443", "::1", true));
        assert_eq!(parse("[::1]:80").unwrap(), t("[::1]:80", "::1", false));
        for bad in [
            "gw",
            "wss://gw:1",
            "https://gw:1/path",
            "https://user@gw:1",
            "https://gw:0",
            "https://gw:99999",
            "https://:1",
            "::1:80",
            "https://gw:1?x",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.key, "upstream", "{bad}");
        }
    }

    #[test]
    fn tls_keys_need_https_and_a_valid_name() {
        let err = resolve("127.0.0.1:1", None, Some("gw".into())).unwrap_err();
        assert_eq!(err.key, "upstream_tls");
        let err = resolve("https://127.0.0.1:1", None, Some("not a name".into())).unwrap_err();
        assert_eq!(err.key, "upstream_tls.server_name");
        assert!(resolve("127.0.0.1:1", None, None).unwrap().1.is_none());
    }

    #[test]
    fn ca_file_errors_name_the_key_and_the_file() {
        let dir = std::env::temp_dir().join(format!("clawbridge-tls-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = resolve("https://gw:1", Some(missing.clone()), None).unwrap_err();
        assert_eq!(err.key, "upstream_tls.ca_file");
        assert!(err.message.contains("missing.pem"), "{err}");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = resolve("https://gw:1", Some(junk), None).unwrap_err();
        assert!(err.message.contains("no PEM certificate"), "{err}");
        let broken = dir.join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let err = resolve("https://gw:1", Some(broken), None).unwrap_err();
        assert_eq!(err.key, "upstream_tls.ca_file", "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
