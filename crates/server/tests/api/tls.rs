//! HTTPS on loopback: the certificate is replaced while serving (new
//! connections get the new one, open ones go on), a bad pair is refused,
//! and session tickets resume on every worker, and on every server that
//! shares a ticket key file but no other.
//!
//! Certificates are made with `openssl` for each test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use fal_core::{OsRandom, SystemClock};
use fal_server::App;
use fal_server::config::TlsFiles;
use rustls::client::ClientConfig;
use rustls::{HandshakeKind, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::helpers::config;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`) in `dir`.
fn make_ca(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=fal test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// `NAME.pem` and `NAME.key`: a certificate for 127.0.0.1 with CN `NAME`,
/// signed by the CA in `dir`, with an RSA-2048 or a P-256 key.
fn make_leaf(dir: &Path, name: &str, rsa: bool) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec!["req", "-newkey"];
    if rsa {
        args.extend(["rsa:2048"]);
    } else {
        args.extend(["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]);
    }
    let subj = format!("/CN={name}");
    args.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj]);
    openssl(dir, &args);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let pem = format!("{name}.pem");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

/// Writes `NAME`'s pair to the served paths, replacing the files by rename
/// (as an operator's script or Kubernetes would).
fn install(dir: &Path, name: &str) {
    for (from, to) in [
        (format!("{name}.pem"), "served.pem"),
        (format!("{name}.key"), "served.key"),
    ] {
        std::fs::copy(dir.join(&from), dir.join("tmp")).unwrap();
        std::fs::rename(dir.join("tmp"), dir.join(to)).unwrap();
    }
}

fn served(dir: &Path, ticket_key: Option<PathBuf>) -> TlsFiles {
    TlsFiles {
        cert: dir.join("served.pem"),
        key: dir.join("served.key"),
        ticket_key,
    }
}

fn client(dir: &Path, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

async fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .expect("a TLS handshake")
}

/// The DER of the certificate the server presented (full handshakes only).
fn presented(s: &TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec()
}

fn der_of(dir: &Path, name: &str) -> Vec<u8> {
    CertificateDer::from_pem_file(dir.join(format!("{name}.pem")))
        .unwrap()
        .to_vec()
}

/// `GET /healthz` on `s`, kept alive; returns the status line.
async fn healthz(s: &mut TlsStream<TcpStream>) -> String {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text.lines().next().unwrap().to_owned();
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed before a whole answer");
        got.extend_from_slice(&chunk[..n]);
    }
}

/// Connects until the server presents `want` (at most 5 s).
async fn wait_for_certificate(addr: SocketAddr, config: &Arc<ClientConfig>, want: &[u8]) {
    for _ in 0..100 {
        if presented(&connect(addr, config).await) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never presented the new certificate");
}

const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

#[tokio::test]
async fn a_new_pair_reaches_new_connections_and_open_ones_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d);
    make_leaf(d, "pair-a", true);
    make_leaf(d, "pair-b", false);
    install(d, "pair-a");
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(data.path());
    cfg.tls = Some(served(d, None));
    cfg.tls_watch_interval = Some(Duration::from_millis(50));
    let app = App::build(cfg, Arc::new(SystemClock), Arc::new(OsRandom))
        .await
        .unwrap();
    let tls = app.tls().expect("TLS is configured");
    assert_eq!(tls.current().common_name.as_deref(), Some("pair-a"));
    let server = app.spawn().await.unwrap();
    // Without resumption: every connection shows the certificate.
    let mut no_resume = (*client(d, TLS13)).clone();
    no_resume.resumption = rustls::client::Resumption::disabled();
    let c = Arc::new(no_resume);

    let mut open = connect(server.addr, &c).await;
    assert_eq!(presented(&open), der_of(d, "pair-a"));
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");

    // The files change: the watch picks them up.
    install(d, "pair-b");
    wait_for_certificate(server.addr, &c, &der_of(d, "pair-b")).await;
    assert_eq!(tls.current().common_name.as_deref(), Some("pair-b"));
    // The connection made before goes on with what it agreed.
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");

    // A mismatched pair (a's key under b's certificate) is refused, by a
    // reload asked for and by the watch; b stays.
    std::fs::copy(d.join("pair-a.key"), d.join("served.key")).unwrap();
    assert!(!tls.reload("test"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        presented(&connect(server.addr, &c).await),
        der_of(d, "pair-b")
    );
    // So is a file that is no key at all, or a missing one.
    std::fs::write(d.join("served.key"), "not a key").unwrap();
    assert!(!tls.reload("test"));
    std::fs::remove_file(d.join("served.pem")).unwrap();
    assert!(!tls.reload("test"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut after = connect(server.addr, &c).await;
    assert_eq!(presented(&after), der_of(d, "pair-b"));
    assert_eq!(healthz(&mut after).await, "HTTP/1.1 200 OK");
    assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");

    // A good pair again: a reload asked for takes it at once.
    install(d, "pair-a");
    assert!(tls.reload("test"));
    assert_eq!(
        presented(&connect(server.addr, &c).await),
        der_of(d, "pair-a")
    );
    server.stop().await;
}

#[tokio::test]
async fn the_leaf_is_summarised_for_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d);
    make_leaf(d, "summary", false);
    install(d, "summary");
    let tls =
        fal_server::tls::Tls::load(&served(d, None), Arc::new(SystemClock), Arc::new(OsRandom))
            .unwrap();
    let s = tls.current();
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-enddate",
            "-fingerprint",
            "-sha256",
            "-in",
        ])
        .arg(d.join("summary.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let fingerprint = text
        .lines()
        .find_map(|l| {
            l.split_once("Fingerprint=")
                .map(|(_, f)| f.replace(':', "").to_lowercase())
        })
        .unwrap();
    assert_eq!(s.sha256, fingerprint);
    assert_eq!(s.common_name.as_deref(), Some("summary"));
    // notAfter=Dec  3 08:00:00 2026 GMT: the year and time must agree.
    let end = text
        .lines()
        .find_map(|l| l.strip_prefix("notAfter="))
        .unwrap();
    let not_after = s.not_after.unwrap();
    let year = end.split_whitespace().nth(3).unwrap();
    let time = end.split_whitespace().nth(2).unwrap();
    assert!(
        not_after.starts_with(year) && not_after.contains(time),
        "{not_after} vs {end}"
    );
}

/// Connects twice; returns how the second handshake went.
async fn second_handshake(
    first: SocketAddr,
    second: SocketAddr,
    c: &Arc<ClientConfig>,
) -> HandshakeKind {
    let mut s = connect(first, c).await;
    // Reading an answer also reads the tickets sent after the handshake.
    assert_eq!(healthz(&mut s).await, "HTTP/1.1 200 OK");
    let mut s = connect(second, c).await;
    assert_eq!(healthz(&mut s).await, "HTTP/1.1 200 OK");
    s.get_ref().1.handshake_kind().unwrap()
}

async fn tls_server(d: &Path, ticket_key: Option<PathBuf>) -> fal_server::RunningServer {
    let data = tempfile::tempdir().unwrap().keep();
    let mut cfg = config(&data);
    cfg.tls = Some(served(d, ticket_key));
    let app = App::build(cfg, Arc::new(SystemClock), Arc::new(OsRandom))
        .await
        .unwrap();
    app.spawn().await.unwrap()
}

#[tokio::test]
async fn a_shared_ticket_key_resumes_on_every_server_holding_it_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d);
    make_leaf(d, "cluster", false);
    install(d, "cluster");
    std::fs::write(d.join("k1"), format!("{}\n", "1f".repeat(32))).unwrap();
    std::fs::write(d.join("k2"), "2e".repeat(32)).unwrap();
    let one = tls_server(d, Some(d.join("k1"))).await;
    let two = tls_server(d, Some(d.join("k1"))).await;
    let other = tls_server(d, Some(d.join("k2"))).await;
    let own_keys = tls_server(d, None).await;
    for versions in [TLS13, TLS12] {
        let name = versions[0].version;
        // The client keeps one session per server name: 127.0.0.1 for all.
        let c = client(d, versions);
        assert_eq!(
            second_handshake(one.addr, one.addr, &c).await,
            HandshakeKind::Resumed,
            "{name:?}"
        );
        let c = client(d, versions);
        assert_eq!(
            second_handshake(one.addr, two.addr, &c).await,
            HandshakeKind::Resumed,
            "{name:?}"
        );
        let c = client(d, versions);
        assert_eq!(
            second_handshake(one.addr, other.addr, &c).await,
            HandshakeKind::Full,
            "{name:?}"
        );
        let c = client(d, versions);
        assert_eq!(
            second_handshake(own_keys.addr, one.addr, &c).await,
            HandshakeKind::Full,
            "{name:?}"
        );
        let c = client(d, versions);
        assert_eq!(
            second_handshake(own_keys.addr, own_keys.addr, &c).await,
            HandshakeKind::Resumed,
            "{name:?}"
        );
        assert_ne!(name, ProtocolVersion::Unknown(0));
    }
    for s in [one, two, other, own_keys] {
        s.stop().await;
    }
}

#[tokio::test]
async fn sha256_suites_are_chosen_whatever_the_client_prefers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d);
    make_leaf(d, "suites", true);
    install(d, "suites");
    let server = tls_server(d, None).await;
    // rustls' client, like OpenSSL's, lists the AES-256-GCM suites first.
    for (versions, want) in [
        (TLS13, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
        (
            TLS12,
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
    ] {
        let c = client(d, versions);
        assert_eq!(
            c.crypto_provider().cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
        );
        let mut s = connect(server.addr, &c).await;
        assert_eq!(healthz(&mut s).await, "HTTP/1.1 200 OK");
        let suite = s.get_ref().1.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(suite, want);
    }
    server.stop().await;
}

#[tokio::test]
async fn tickets_resume_on_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d);
    make_leaf(d, "workers", false);
    install(d, "workers");
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(data.path());
    cfg.tls = Some(served(d, None));
    let app = App::build(cfg, Arc::new(SystemClock), Arc::new(OsRandom))
        .await
        .unwrap();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.serve_per_core(
        "127.0.0.1:0".parse().unwrap(),
        4,
        move |a, _metrics| {
            let _ = addr_tx.send(a);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let addr = addr_rx.await.unwrap();
    // The kernel spreads connections over the 4 workers; every one after
    // the first resumes, whichever worker took it.
    let c = client(d, TLS13);
    let mut first = connect(addr, &c).await;
    assert_eq!(healthz(&mut first).await, "HTTP/1.1 200 OK");
    for i in 0..20 {
        let mut s = connect(addr, &c).await;
        assert_eq!(healthz(&mut s).await, "HTTP/1.1 200 OK");
        assert_eq!(
            s.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "connection {i}"
        );
    }
    let _ = stop_tx.send(());
    serving.await.unwrap().unwrap();
}
