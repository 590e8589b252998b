//! `/metrics` of the real `fal serve` with two workers: `--metrics-listen`
//! serves it without credentials (the main listener wants an ADMIN key),
//! and the workers' counts add up to every call made.

use std::process::Command;

use crate::harness::Server;

/// `curl -s` with `args`: the status code, then the body.
fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_owned(), body.to_owned())
}

#[test]
fn the_metrics_listener_counts_every_worker_s_calls_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        &dir.path().join("data"),
        None,
        &[
            "--demo",
            "--workers",
            "2",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let metrics = s
        .banner
        .lines()
        .find_map(|l| l.strip_prefix("metrics: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("fal serve prints the metrics address")
        .to_owned();
    let admin = s.bootstrap();
    let auth = format!("Authorization: Key {}:{}", admin.id, admin.secret);
    // Each call on a connection of its own: the kernel spreads them over
    // both workers.
    for _ in 0..20 {
        let run = format!("{}/run/fal-ai/echo", s.url);
        let (code, _) = curl(&["-H", &auth, "-d", "{}", &run]);
        assert_eq!(code, "200");
    }
    let (code, text) = curl(&[&metrics]);
    assert_eq!(code, "200", "{text}");
    let line = r#"fal_requests_total{route="run",app="fal-ai/echo",status="2xx",scope="ADMIN"} 20"#;
    assert!(text.lines().any(|l| l == line), "{text}");
    assert!(!text.contains(&admin.secret));
    // The main listener: ADMIN only.
    let (code, _) = curl(&[&format!("{}/metrics", s.url)]);
    assert_eq!(code, "401");
    let (code, text) = curl(&["-H", &auth, &format!("{}/metrics", s.url)]);
    assert_eq!(code, "200");
    assert!(text.contains("# TYPE fal_gateway_request_duration_seconds histogram"));
    s.stop();
}
