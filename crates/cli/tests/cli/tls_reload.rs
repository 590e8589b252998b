//! `fal serve --tls-cert` reloads its certificate and key on SIGHUP: new
//! connections get the new pair; a bad pair is logged with the reason (and
//! nothing of the key) and the one in use stays. A SIGHUP to a plain-HTTP
//! server does not stop it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::certs::{make_ca, make_leaf};
use crate::harness::Server;

/// Copies `NAME.pem` and `NAME.key` over the served files by rename.
fn install(dir: &Path, name: &str) {
    for (from, to) in [
        (format!("{name}.pem"), "served.pem"),
        (format!("{name}.key"), "served.key"),
    ] {
        std::fs::copy(dir.join(&from), dir.join("tmp")).unwrap();
        std::fs::rename(dir.join("tmp"), dir.join(to)).unwrap();
    }
}

/// The CN of the certificate a new connection gets, as curl reports it.
fn subject(url: &str, ca: &Path) -> String {
    let out = Command::new("curl")
        .args(["-sv", "-o", "/dev/null", "--cacert"])
        .arg(ca)
        .arg(format!("{url}/healthz"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl: {err}");
    err.lines()
        .find_map(|l| l.trim_start_matches(['*', ' ']).strip_prefix("subject:"))
        .unwrap_or_else(|| panic!("curl -v shows no subject: {err}"))
        .trim()
        .to_owned()
}

fn hangup(server: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (at most 10 s) until the server's log has `count` lines with `needle`.
fn wait_for_log(server: &Server, needle: &str, count: usize) -> String {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(&server.log_path).unwrap();
        if log.lines().filter(|l| l.contains(needle)).count() >= count {
            return log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {needle:?} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Base64 runs of the key files, as they would show if quoted.
fn key_fragments(dir: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| {
            let pem = std::fs::read_to_string(dir.join(format!("{n}.key"))).unwrap();
            let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .unwrap();
            let mut out: Vec<String> = b64
                .as_bytes()
                .chunks(16)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            out.extend(der.chunks(8).map(hex_of));
            out
        })
        .collect()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sighup_reloads_the_pair_and_a_bad_pair_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(d);
    make_leaf(d, "pair-a", "pair-a");
    make_leaf(d, "pair-b", "pair-b");
    install(d, "pair-a");
    let ca = d.join("ca.pem");
    let cert = d.join("served.pem").display().to_string();
    let key = d.join("served.key").display().to_string();
    // Watching off: only SIGHUP reloads here.
    let s = Server::start_with(
        &d.join("data"),
        Some("info"),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-watch-interval",
            "0",
        ],
        &[],
    );
    assert_eq!(subject(&s.url, &ca), "CN=pair-a");

    install(d, "pair-b");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        subject(&s.url, &ca),
        "CN=pair-a",
        "not watched: no change yet"
    );
    hangup(&s);
    let log = wait_for_log(&s, "TLS certificate reloaded", 1);
    let line = log
        .lines()
        .find(|l| l.contains("TLS certificate reloaded"))
        .unwrap();
    assert!(line.contains("SIGHUP") && line.contains("pair-b"), "{line}");
    assert!(line.contains("not_after"), "{line}");
    assert_eq!(subject(&s.url, &ca), "CN=pair-b");

    // a's key under b's certificate: refused, b stays.
    std::fs::copy(d.join("pair-a.key"), d.join("served.key")).unwrap();
    hangup(&s);
    let log = wait_for_log(&s, "TLS certificate not reloaded", 1);
    let line = log.lines().find(|l| l.contains("not reloaded")).unwrap();
    assert!(line.contains("is not the key of the certificate"), "{line}");
    assert_eq!(subject(&s.url, &ca), "CN=pair-b");
    // A damaged key file: refused, saying so without quoting it.
    let damaged = std::fs::read_to_string(d.join("pair-b.key"))
        .unwrap()
        .replace('A', "*");
    std::fs::write(d.join("served.key"), damaged).unwrap();
    hangup(&s);
    let log = wait_for_log(&s, "TLS certificate not reloaded", 2);
    assert!(log.contains("no readable PRIVATE KEY block"), "{log}");
    assert_eq!(subject(&s.url, &ca), "CN=pair-b");

    let log = s.stop();
    for fragment in key_fragments(d, &["pair-a", "pair-b"]) {
        assert!(
            !log.contains(&fragment),
            "key material in the log: {fragment}"
        );
    }
}

#[test]
fn sighup_does_not_stop_a_plain_http_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), Some("info"));
    hangup(&s);
    wait_for_log(&s, "SIGHUP: nothing to reload", 1);
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{}/healthz", s.url))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    s.stop();
}
