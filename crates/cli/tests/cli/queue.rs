//! `fal run OWNER/NAME --queue` against a real `fal serve --demo`, and the
//! typed queue calls of `fal-client` (submit, status, result, cancel) that
//! it is built on.

use std::time::{Duration, Instant};

use fal_client::{Cancelled, Client, credentials};
use serde_json::{Value, json};

use crate::harness::{Pair, Server, parse_pair, stderr};

fn client(server: &Server, key: &Pair) -> Client {
    let creds =
        credentials::resolve(Some(&format!("{}:{}", key.id, key.secret)), |_| None).unwrap();
    Client::new(&server.url, creds)
}

fn queued(server: &Server, key: &Pair, data: &str) -> std::process::Output {
    server.run(
        &["run", "fal-ai/echo", "--queue", "--data", data],
        &[("FAL_KEY", &format!("{}:{}", key.id, key.secret))],
    )
}

#[test]
fn fal_run_queue_shows_each_change_and_prints_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), None, &["--demo"], &[]);
    let admin = server.bootstrap();
    let api = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();

    let out = queued(&server, &api, r#"{"prompt": "queued", "sleep_ms": 500}"#);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer,
        json!({"prompt": "queued", "sleep_ms": 500, "fal_key_id": api.id})
    );
    // Not a terminal: plain lines, in order, no spinner.
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("Request "), "{err}");
    assert_eq!(
        &lines[1..],
        [
            "IN_QUEUE (position 0)",
            "IN_PROGRESS",
            "[INFO] Started on fal-ai/echo",
            "COMPLETED",
            "[INFO] Completed",
        ],
        "{err}"
    );
    assert!(!err.contains('\r'), "{err:?}");

    // A request completed with an error: its error, and a failure.
    let out = queued(&server, &api, r#"{"sleep_ms": "soon"}"#);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.contains("[ERROR] Failed: sleep_ms must be a whole number"),
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("Error: sleep_ms must be a whole number"),
        "{err}"
    );

    // Refused at submit: our detail.
    let out = server.run(
        &["run", "fal-ai/nothing", "--queue"],
        &[("FAL_KEY", &format!("{}:{}", api.id, api.secret))],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("fal-ai/nothing"), "{}", stderr(&out));
    assert!(
        !queued_conflicts(&server, &api).status.success(),
        "--queue and --stream together"
    );
    server.ok(&admin, &["key", "revoke", &api.id]);
    let out = queued(&server, &api, "{}");
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "Error: This key was revoked: use another key, or generate a new one"
    );
    server.stop();
}

fn queued_conflicts(server: &Server, key: &Pair) -> std::process::Output {
    server.run(
        &["run", "fal-ai/echo", "--queue", "--stream"],
        &[("FAL_KEY", &format!("{}:{}", key.id, key.secret))],
    )
}

#[test]
fn the_typed_queue_calls_submit_follow_fetch_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), None, &["--demo"], &[]);
    let admin = server.bootstrap();
    let c = client(&server, &admin);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let body = br#"{"prompt": "typed", "sleep_ms": 200}"#.to_vec();
        let s = c.submit("fal-ai/echo", body, None).await.unwrap();
        assert_eq!(s.status, "IN_QUEUE");
        assert_eq!(s.queue_position, Some(0));
        assert!(
            s.status_url
                .ends_with(&format!("/requests/{}/status", s.request_id))
        );
        let mut stream = c
            .status_stream("fal-ai/echo", &s.request_id, true)
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut lines = Vec::new();
        while let Some(status) = stream.next_status().await.unwrap() {
            lines.extend(status.logs.into_iter().flatten().map(|l| l.message));
            seen.push(status.status);
        }
        assert_eq!(
            seen.last().map(String::as_str),
            Some("COMPLETED"),
            "{seen:?}"
        );
        assert_eq!(lines, ["Started on fal-ai/echo", "Completed"]);
        let done = c.status("fal-ai/echo", &s.request_id, false).await.unwrap();
        assert!(done.is_completed() && done.error.is_none() && done.logs.is_none());
        let answer = c.result("fal-ai/echo", &s.request_id).await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.request_id.as_deref(), Some(s.request_id.as_str()));
        let v: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(v["prompt"], "typed");
        assert_eq!(
            c.cancel("fal-ai/echo", &s.request_id).await.unwrap(),
            Cancelled::AlreadyCompleted
        );

        // Cancel a running request: it completes with our error, and its
        // answer is that error.
        let body = br#"{"sleep_ms": 60000}"#.to_vec();
        let s = c.submit("fal-ai/echo", body, None).await.unwrap();
        let started = Instant::now();
        while c
            .status("fal-ai/echo", &s.request_id, false)
            .await
            .unwrap()
            .status
            != "IN_PROGRESS"
        {
            assert!(started.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            c.cancel("fal-ai/echo", &s.request_id).await.unwrap(),
            Cancelled::Requested
        );
        let done = loop {
            let st = c.status("fal-ai/echo", &s.request_id, true).await.unwrap();
            if st.is_completed() {
                break st;
            }
            assert!(started.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(done.error.as_deref(), Some("Request was cancelled"));
        assert_eq!(done.error_type.as_deref(), Some("cancelled"));
        match c.result("fal-ai/echo", &s.request_id).await {
            Err(fal_client::ClientError::Api { status, detail, .. }) => {
                assert_eq!((status, detail.as_str()), (499, "Request was cancelled"));
            }
            other => panic!("the answer of a cancelled request: {other:?}"),
        }
        // Bad ids are refused before anything is sent.
        assert!(c.status("fal-ai/echo", "../x", false).await.is_err());
        let unknown = c.status("fal-ai/echo", "no-such-request", false).await;
        assert!(
            matches!(
                &unknown,
                Err(fal_client::ClientError::Api { status: 404, .. })
            ),
            "{unknown:?}"
        );
    });
    server.stop();
}

/// `script` (util-linux) runs a command on a pseudo-terminal.
fn script() -> Option<&'static str> {
    let found = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("script");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but `script` (util-linux) is missing"
    );
    eprintln!("*** SKIPPED the spinner test of fal run --queue: no `script` (util-linux) ***");
    None
}

#[test]
fn on_a_terminal_fal_run_queue_spins_and_ctrl_c_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), None, &["--demo"], &[]);
    let admin = server.bootstrap();
    let key = format!("{}:{}", admin.id, admin.secret);

    if let Some(script) = script() {
        let command = format!(
            "{} run fal-ai/echo --queue --data '{{\"prompt\": \"tty\", \"sleep_ms\": 600}}'",
            crate::harness::FAL
        );
        let out = server.run_program(
            script,
            &["-qec", &command, "/dev/null"],
            &[("FAL_KEY", &key)],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        // Frames redrawn over one line with the status, then the status
        // left on a line of its own, then the answer.
        let frames = ['|', '/', '-', '\\'];
        let spun = frames.map(|f| text.contains(&format!("\r{f} IN_PROGRESS\x1b[K")));
        assert!(spun.iter().filter(|s| **s).count() >= 3, "{text:?}");
        assert!(text.contains("[INFO] Started on fal-ai/echo"), "{text:?}");
        assert!(text.contains("\rCOMPLETED\x1b[K\r\n{"), "{text:?}");
        assert!(text.contains("\"prompt\": \"tty\""), "{text:?}");
        assert!(text.starts_with("Request "), "{text:?}");
    }

    // Ctrl-C while it runs: the request is cancelled, fal exits nonzero.
    let mut child = crate::harness::fal()
        .env("FAL_HOST", &server.url)
        .env("FAL_KEY", &key)
        .args([
            "run",
            "fal-ai/echo",
            "--queue",
            "--data",
            r#"{"sleep_ms": 60000}"#,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut id = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("Request ") {
            id = rest.to_owned();
        }
        if line == "IN_PROGRESS" {
            break;
        }
    }
    assert!(!id.is_empty());
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(!child.wait().unwrap().success());
    assert_eq!(
        rest.last().map(String::as_str),
        Some(format!("Error: interrupted: request {id} was cancelled").as_str()),
        "{rest:?}"
    );
    let c = client(&server, &admin);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let done = rt.block_on(async {
        let started = Instant::now();
        loop {
            let s = c.status("fal-ai/echo", &id, false).await.unwrap();
            if s.is_completed() {
                break s;
            }
            assert!(started.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(done.error.as_deref(), Some("Request was cancelled"));
    server.stop();
}
