//! `fal apps …` and `fal run` against `fal serve --demo`.

use crate::harness::{Server, parse_pair, stderr};

#[test]
fn apps_are_managed_and_models_called_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), None, &["--demo"], &[]);
    assert!(server.banner.contains("demo app: fal-ai/echo"));
    let admin = server.bootstrap();
    let api = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();

    // fal run with inline JSON and with @file, as an API key.
    let out = server.ok(
        &api,
        &["run", "fal-ai/echo", "--data", r#"{"prompt": "hello"}"#],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["prompt"], "hello");
    assert_eq!(v["fal_key_id"], api.id.as_str());
    let file = dir.path().join("input.json");
    std::fs::write(&file, r#"{"steps": 3}"#).unwrap();
    let out = server.ok(
        &api,
        &[
            "run",
            "fal-ai/echo",
            "--data",
            &format!("@{}", file.display()),
        ],
    );
    assert!(out.contains("\"steps\": 3"), "{out}");

    // Apps: add, list (table and JSON), remove; the API key may not.
    let out = server.ok(
        &admin,
        &[
            "apps",
            "add",
            "acme/sdxl",
            "--upstream",
            "http://127.0.0.1:9",
            "--timeout",
            "90s",
        ],
    );
    assert!(out.contains("acme/sdxl"), "{out}");
    let table = server.ok(&admin, &["apps", "list"]);
    assert!(
        table.contains("acme/sdxl") && table.contains("90000ms") && table.contains("fal-ai/echo"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&server.ok(&admin, &["apps", "list", "--json"])).unwrap();
    assert_eq!(json["apps"].as_array().unwrap().len(), 2);
    let denied = server.run(
        &["apps", "add", "acme/x", "--upstream", "http://127.0.0.1:9"],
        &[("FAL_KEY_ID", &api.id), ("FAL_KEY_SECRET", &api.secret)],
    );
    assert!(!denied.status.success());
    assert!(stderr(&denied).contains("ADMIN"));
    let bad = server.run(
        &["apps", "add", "acme/x", "--upstream", "ftp://nowhere"],
        &[("FAL_KEY_ID", &admin.id), ("FAL_KEY_SECRET", &admin.secret)],
    );
    assert!(stderr(&bad).contains("http or https"), "{}", stderr(&bad));
    server.ok(&admin, &["apps", "rm", "acme/sdxl"]);
    assert!(!server.ok(&admin, &["apps", "list"]).contains("acme/sdxl"));

    // A model that cannot be reached, and bad input, are explained.
    let env = [
        ("FAL_KEY_ID", admin.id.as_str()),
        ("FAL_KEY_SECRET", admin.secret.as_str()),
    ];
    let out = server.run(&["run", "acme/nothing"], &env);
    assert!(
        stderr(&out).contains("No app acme/nothing"),
        "{}",
        stderr(&out)
    );
    let out = server.run(&["run", "fal-ai/echo", "--data", "{not json"], &env);
    assert!(
        stderr(&out).contains("--data must be JSON"),
        "{}",
        stderr(&out)
    );
    let out = server.run(&["apps", "add", "acme", "--upstream", "http://x"], &env);
    assert!(stderr(&out).contains("OWNER/NAME"), "{}", stderr(&out));
    server.stop();
}

#[test]
fn fal_run_stream_prints_each_event_as_it_arrives() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    const SLEEP_MS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), None, &["--demo"], &[]);
    let admin = server.bootstrap();
    let api = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    let data = format!(r#"{{"prompt": "hi", "sleep_ms": {SLEEP_MS}}}"#);

    let mut child = crate::harness::fal()
        .args(["run", "fal-ai/echo", "--stream", "--data", &data])
        .env("FAL_HOST", &server.url)
        .env("FAL_KEY_ID", &api.id)
        .env("FAL_KEY_SECRET", &api.secret)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        lines.push((line.unwrap(), Instant::now()));
    }
    assert!(child.wait().unwrap().success());
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|(l, _)| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{lines:?}");
    for (i, e) in events[..3].iter().enumerate() {
        assert_eq!(
            e,
            &serde_json::json!({"partial": true, "index": i, "of": 3})
        );
    }
    assert_eq!(events[3]["prompt"], "hi");
    assert_eq!(events[3]["fal_key_id"], api.id.as_str());
    // The demo app waits between events: printed as they came, the last
    // line comes well after the first.
    assert!(
        lines[3].1 - lines[0].1 >= Duration::from_millis(3 * SLEEP_MS - 50),
        "all lines came at once: {lines:?}"
    );

    // The app's refusal and ours: a nonzero exit with the detail.
    let env = [
        ("FAL_KEY_ID", api.id.as_str()),
        ("FAL_KEY_SECRET", api.secret.as_str()),
    ];
    let out = server.run(
        &[
            "run",
            "fal-ai/echo",
            "--stream",
            "--data",
            r#"{"sleep_ms": -1}"#,
        ],
        &env,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("sleep_ms must be"),
        "{}",
        stderr(&out)
    );
    server.ok(&admin, &["key", "revoke", &api.id]);
    let out = server.run(&["run", "fal-ai/echo", "--stream"], &env);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("This key was revoked: use another key, or generate a new one"),
        "{}",
        stderr(&out)
    );
    server.stop();
}
