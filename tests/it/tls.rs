//! An `https://` upstream: clawbridge reaches the demo gateway only through
//! a TLS terminator whose certificate is issued by a test CA made at test
//! time. With the right CA and server name, chat (stream and not), HTTP
//! passthrough and WebSocket upgrades work over TLS; with the wrong CA (or
//! the system's roots) or the wrong name the link stays down with the TLS
//! reason in `/readyz`, and passthrough gets 502: never plaintext, never
//! unverified. A bad CA file is a config error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use pingora::tls::{CertificateDer, PrivateKeyDer, ServerConfig, TlsAcceptor};
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

/// The certificate's names: no IP address, so `https://127.0.0.1:…` needs
/// the server-name override.
const NAMES: [&str; 2] = ["gateway.test", "localhost"];

struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    /// A server certificate for `names`, and its key.
    fn issue(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.der().clone(), PrivateKeyDer::try_from(key.serialize_der()).unwrap())
    }

    fn write_pem(&self, dir: &Path, file: &str) -> PathBuf {
        let p = dir.join(file);
        std::fs::write(&p, self.cert.pem()).unwrap();
        p
    }
}

/// A TLS terminator in front of `backend`: accepts TLS with `cert`, then
/// copies bytes both ways. Records the SNI of every completed handshake
/// and counts the refused ones.
struct Terminator {
    addr: SocketAddr,
    sni: Arc<Mutex<Vec<Option<String>>>>,
    refused: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Terminator {
    async fn start(backend: SocketAddr, cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> Self {
        pingora::tls::install_default_crypto_provider();
        let config = ServerConfig::builder().with_no_client_auth().with_single_cert(vec![cert], key).unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sni = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let (seen, bad) = (sni.clone(), refused.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, seen, bad) = (acceptor.clone(), seen.clone(), bad.clone());
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(_) => {
                            *bad.lock().unwrap() += 1;
                            return;
                        }
                    };
                    seen.lock().unwrap().push(tls.get_ref().1.server_name().map(str::to_string));
                    let Ok(mut up) = TcpStream::connect(backend).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        Terminator { addr, sni, refused, task }
    }

    fn sni(&self) -> Vec<Option<String>> {
        self.sni.lock().unwrap().clone()
    }

    fn refused(&self) -> usize {
        *self.refused.lock().unwrap()
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The demo gateway behind a terminator with a certificate of `ca` for [`NAMES`].
async fn tls_gateway(ca: &TestCa) -> (DemoGateway, Terminator) {
    let gw = gateway().await;
    let (cert, key) = ca.issue(&NAMES);
    let term = Terminator::start(gw.addr(), cert, key).await;
    (gw, term)
}

fn bridge_opts(
    term: &Terminator,
    upstream_host: &str,
    ca_file: Option<&Path>,
    server_name: Option<&str>,
) -> BridgeOpts {
    let mut opts =
        BridgeOpts::new(term.addr).env("CLAWBRIDGE_UPSTREAM", &format!("https://{upstream_host}:{}", term.addr.port()));
    if let Some(p) = ca_file {
        opts = opts.env("CLAWBRIDGE_UPSTREAM_CA_FILE", p.to_str().unwrap());
    }
    if let Some(n) = server_name {
        opts = opts.env("CLAWBRIDGE_UPSTREAM_SERVER_NAME", n);
    }
    opts
}

/// `/readyz` body (its `reason`), polled until it mentions `needle`.
async fn readyz_reason_with(bridge: &Bridge, needle: &str) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = client().get(bridge.admin_url("/readyz")).send().await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        let reason = v["reason"].as_str().unwrap_or_default().to_string();
        if reason.contains(needle) || tokio::time::Instant::now() > deadline {
            return (status, reason);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Right CA, server name overridden (the URL is an IP the certificate does
/// not name): chat stream and non-stream, HTTP passthrough and a WebSocket
/// turn all go over TLS, each connection with the overridden SNI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_passthrough_over_tls_with_server_name_override() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("clawbridge test CA");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let (gw, term) = tls_gateway(&ca).await;
    gw.set(|b| b.reply = Some(vec!["Hel".into(), "lo".into()]));
    let bridge = bridge_opts(&term, "127.0.0.1", Some(&ca_file), Some("gateway.test")).start().await;

    let r = post_chat(&bridge, &chat_body(true, "hi")).await;
    assert_eq!(r.status(), 200);
    let events = parse_sse(&r.text().await.unwrap());
    assert_eq!(content_of(&events), "Hello", "{events:?}");
    assert_eq!(events.last(), Some(&Sse::Done));
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello", "{v}");

    let r = client().post(bridge.url("/__demo/echo/over/tls?q=1")).body("tls body").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["path"].as_str(), v["body"].as_str()), (Some("/__demo/echo/over/tls"), Some("tls body")), "{v}");

    assert_eq!(crate::common::ws::ws_turn(bridge.addr, "hi", "idem-tls-ws").await.text, "Hello");

    let sni = term.sni();
    // The link's, and passthrough's (Pingora pools it: the upgrade may reuse it).
    assert!(sni.len() >= 2, "the link and passthrough each made a TLS handshake: {sni:?}");
    assert!(sni.iter().all(|s| s.as_deref() == Some("gateway.test")), "SNI is the server name: {sni:?}");
    assert_eq!(term.refused(), 0);
}

/// No override: the URL's host is the server name (SNI and verified name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_urls_host_is_the_default_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("clawbridge test CA");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let (gw, term) = tls_gateway(&ca).await;
    gw.set(|b| b.reply = Some(vec!["ok".into()]));
    let bridge = bridge_opts(&term, "localhost", Some(&ca_file), None).start().await;
    let r = post_chat(&bridge, &chat_body(false, "hi")).await;
    assert_eq!(r.status(), 200);
    let r = client().get(bridge.url("/__demo/echo/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(term.sni().iter().all(|s| s.as_deref() == Some("localhost")), "{:?}", term.sni());
}

/// A certificate from another CA (a bundle without its issuer), or from a
/// CA the system does not trust (no bundle): the link is not ready and says
/// why, chat gets 503, passthrough 502. Nothing reaches the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("clawbridge test CA");
    let other = TestCa::new("some other CA");
    let other_file = other.write_pem(dir.path(), "other.pem");
    let (gw, term) = tls_gateway(&ca).await;
    for ca_file in [Some(other_file.as_path()), None] {
        let bridge = bridge_opts(&term, "localhost", ca_file, None).no_wait().start().await;
        let (status, reason) = readyz_reason_with(&bridge, "certificate").await;
        assert_eq!(status, 503, "{reason}");
        assert!(reason.contains("TLS handshake") && reason.contains("UnknownIssuer"), "{reason}");
        assert!(!reason.contains(TOKEN));
        let r = post_chat(&bridge, &chat_body(false, "hi")).await;
        assert_eq!(r.status(), 503, "chat while the link is down");
        let r = client().get(bridge.url("/__demo/echo/x")).send().await.unwrap();
        assert_eq!(r.status(), 502, "passthrough refuses the certificate");
    }
    assert_eq!(gw.connection_count(), 0, "no connection ever reached the gateway");
    assert!(term.sni().is_empty(), "no TLS handshake completed: {:?}", term.sni());
    assert!(term.refused() >= 4, "clawbridge aborted each handshake: {}", term.refused());
}

/// A server name the certificate does not carry is refused, on the link
/// and on passthrough; so is an IP URL without the override.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_server_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("clawbridge test CA");
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let (gw, term) = tls_gateway(&ca).await;
    for (host, name) in [("127.0.0.1", Some("other.test")), ("127.0.0.1", None)] {
        let bridge = bridge_opts(&term, host, Some(&ca_file), name).no_wait().start().await;
        let (status, reason) = readyz_reason_with(&bridge, "not valid for name").await;
        assert_eq!(status, 503, "{reason}");
        assert!(reason.contains("not valid for name"), "{reason}");
        let r = client().get(bridge.url("/__demo/echo/x")).send().await.unwrap();
        assert_eq!(r.status(), 502, "passthrough refuses the name ({name:?})");
    }
    assert_eq!(gw.connection_count(), 0, "no connection ever reached the gateway");
}

/// A CA file that is missing or holds no certificate, or no file and no
/// system roots, stops clawbridge at start and in `--check`, naming the key
/// (exit 64); TLS keys on a plain upstream are refused too.
#[test]
fn bad_tls_settings_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("CLAWBRIDGE_UPSTREAM_CA_FILE", junk.to_str().unwrap())], "upstream_tls.ca_file"),
        (&[("CLAWBRIDGE_UPSTREAM_CA_FILE", missing.to_str().unwrap())], "upstream_tls.ca_file"),
        // No bundle and a system without roots (as in the container image).
        (&[("SSL_CERT_FILE", empty.to_str().unwrap())], "upstream_tls.ca_file"),
        (&[("CLAWBRIDGE_UPSTREAM", "127.0.0.1:1"), ("CLAWBRIDGE_UPSTREAM_SERVER_NAME", "gw.test")], "upstream_tls"),
    ];
    for (env, key) in cases {
        for args in [&["--check"][..], &[][..]] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_clawbridge"))
                .args(args)
                .env_clear()
                .env("HOME", dir.path())
                .env("CLAWBRIDGE_UPSTREAM", "https://gateway.test:1")
                .envs(env.iter().copied())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{env:?} {args:?}: {stderr}");
            assert!(stderr.contains(&format!("config: {key}:")), "{env:?}: {stderr}");
        }
    }
}
