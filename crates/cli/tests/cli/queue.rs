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
        "Error: No user found for Key ID and Secret"
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
