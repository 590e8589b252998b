//! fal's own Python client (`fal-client` from PyPI), unchanged, against
//! `fal serve --demo` over HTTPS with a certificate this test makes.
//!
//! Needs the virtualenv that `scripts/setup-python-client.sh` creates
//! (`.ci/run` runs it). Without it the test says so loudly and passes,
//! except under CI, where it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::certs::certificates;
use crate::harness::{Pair, Server, parse_pair};

fn venv_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FAL_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join("target/fal-client-venv/bin/python");
    if python.exists() {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but the fal-client virtualenv is missing: run scripts/setup-python-client.sh"
    );
    let _ = writeln!(
        std::io::stderr(),
        "*** SKIPPED fal-client compatibility test: run scripts/setup-python-client.sh first ***"
    );
    None
}

fn call(
    python: &Path,
    server: &Server,
    key_env: &[(&str, String)],
    args: &str,
) -> serde_json::Value {
    call_as(python, server, key_env, args, "run")
}

fn call_as(
    python: &Path,
    server: &Server,
    key_env: &[(&str, String)],
    args: &str,
    mode: &str,
) -> serde_json::Value {
    call_with(python, server, key_env, &[args, mode])
}

/// Runs `call_model.py APP ARGS...` (JSON arguments, mode, request id);
/// returns what it printed.
fn call_with(
    python: &Path,
    server: &Server,
    key_env: &[(&str, String)],
    args: &[&str],
) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/call_model.py");
    let host = server.url.strip_prefix("https://").unwrap();
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg("fal-ai/echo")
        .args(args)
        .env("FAL_RUN_HOST", format!("{host}/run"))
        .env("FAL_QUEUE_RUN_HOST", format!("{host}/queue"))
        .env_remove("FAL_KEY")
        .env_remove("FAL_KEY_ID")
        .env_remove("FAL_KEY_SECRET");
    cmd.envs(server.env.iter().map(|(k, v)| (k, v)));
    for (k, v) in key_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn fal_client_from_pypi_calls_and_streams_a_model_and_sees_revocation() {
    let Some(python) = venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let server = Server::start_with(
        &dir.path().join("data"),
        None,
        &["--demo", "--tls-cert", &cert, "--tls-key", &key],
        &[("SSL_CERT_FILE", &ca)],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let admin = server.bootstrap();

    // Our own CLI over HTTPS makes the API key, as the seed says.
    let api: Pair = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();

    let pair_env = [
        ("FAL_KEY_ID", api.id.clone()),
        ("FAL_KEY_SECRET", api.secret.clone()),
    ];
    let got = call(&python, &server, &pair_env, r#"{"prompt": "a red fox"}"#);
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["result"]["prompt"], "a red fox");
    assert_eq!(got["result"]["fal_key_id"], api.id.as_str());

    let fal_key = [("FAL_KEY", format!("{}:{}", api.id, api.secret))];
    let got = call(&python, &server, &fal_key, r#"{"n": 2}"#);
    assert_eq!(got["result"]["n"], 2, "{got}");

    // fal_client.stream: POST /run/fal-ai/echo/stream, each event as it
    // arrives (the demo app waits 200 ms between two).
    let got = call_as(
        &python,
        &server,
        &pair_env,
        r#"{"prompt": "streamed", "sleep_ms": 200}"#,
        "stream",
    );
    assert_eq!(got["ok"], true, "{got}");
    let events = got["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "{got}");
    for (i, e) in events[..3].iter().enumerate() {
        assert_eq!(
            e,
            &serde_json::json!({"partial": true, "index": i, "of": 3})
        );
    }
    assert_eq!(events[3]["prompt"], "streamed");
    assert_eq!(events[3]["fal_key_id"], api.id.as_str());
    let last_ms = got["arrived_ms"][3].as_u64().unwrap();
    assert!(last_ms >= 550, "the events came together: {got}");

    server.ok(&admin, &["key", "revoke", &api.id]);
    let got = call(&python, &server, &pair_env, r#"{"prompt": "again"}"#);
    assert_eq!(got["ok"], false, "{got}");
    assert_eq!(got["status"], 401);
    assert_eq!(
        got["message"],
        "This key was revoked: use another key, or generate a new one"
    );
    // fal-client 1.0.3's stream never reads an error answer: it refuses
    // anything but text/event-stream before looking at the status, so our
    // 401 reaches the caller as httpx_sse's SSEError naming our JSON.
    let got = call_as(&python, &server, &pair_env, "{}", "stream");
    assert_eq!(got["ok"], false, "{got}");
    assert_eq!(got["error"], "SSEError", "{got}");
    assert!(
        got["message"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{got}"
    );
    server.stop();
}

/// The types of the statuses fal-client parsed, in order, repeats merged.
fn kinds(statuses: &serde_json::Value) -> Vec<String> {
    let mut kinds: Vec<String> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap().to_owned())
        .collect();
    kinds.dedup();
    kinds
}

fn messages(status: &serde_json::Value) -> Vec<&str> {
    status["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no logs in {status}"))
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect()
}

#[test]
fn fal_client_from_pypi_uses_the_queue_and_sees_revocation() {
    let Some(python) = venv_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let server = Server::start_with(
        &dir.path().join("data"),
        None,
        &["--demo", "--tls-cert", &cert, "--tls-key", &key],
        &[("SSL_CERT_FILE", &ca)],
    );
    let admin = server.bootstrap();
    let api: Pair = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    let env = [("FAL_KEY", format!("{}:{}", api.id, api.secret))];
    let echo = |prompt: &str, sleep_ms: u64| serde_json::json!({"prompt": prompt, "sleep_ms": sleep_ms, "fal_key_id": api.id});

    // subscribe: submit, status polled with logs (on_queue_update), answer.
    let got = call_with(
        &python,
        &server,
        &env,
        &[r#"{"prompt": "queued", "sleep_ms": 300}"#, "subscribe"],
    );
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["result"], echo("queued", 300));
    let updates = &got["updates"];
    let seen = kinds(updates);
    assert_eq!(seen.last().map(String::as_str), Some("Completed"), "{got}");
    assert!(seen.contains(&"InProgress".to_owned()), "{got}");
    let last = updates.as_array().unwrap().last().unwrap();
    assert_eq!(
        messages(last),
        ["Started on fal-ai/echo", "Completed"],
        "{got}"
    );
    assert_eq!(last["error"], serde_json::Value::Null);
    assert!(
        last["metrics"]["inference_time"].as_f64().unwrap() >= 0.3,
        "{got}"
    );

    // submit, handle.status(with_logs=True), handle.get().
    let got = call_with(
        &python,
        &server,
        &env,
        &[r#"{"prompt": "by handle", "sleep_ms": 200}"#, "submit"],
    );
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["result"], echo("by handle", 200));
    let statuses = got["statuses"].as_array().unwrap();
    assert!(
        ["Queued", "InProgress"].contains(&statuses[0]["type"].as_str().unwrap()),
        "{got}"
    );
    assert_eq!(statuses[1]["type"], "Completed");
    assert_eq!(
        messages(&statuses[1]),
        ["Started on fal-ai/echo", "Completed"]
    );
    let id = got["request_id"].as_str().unwrap().to_owned();

    // By id: fal_client.status and fal_client.result.
    let got = call_with(&python, &server, &env, &["{}", "by_id", &id]);
    assert_eq!(got["ok"], true, "{got}");
    assert_eq!(got["status"]["type"], "Completed", "{got}");
    assert_eq!(messages(&got["status"]).len(), 2, "{got}");
    assert_eq!(got["result"], echo("by handle", 200));

    // handle.cancel() on a running request: it completes with our error,
    // its answer is that error, and a second cancel is refused.
    let got = call_with(
        &python,
        &server,
        &env,
        &[r#"{"sleep_ms": 60000}"#, "cancel"],
    );
    assert_eq!(got["ok"], true, "{got}");
    let cancelled = &got["cancelled"];
    assert_eq!(cancelled["type"], "Completed", "{got}");
    assert_eq!(cancelled["error"], "Request was cancelled", "{got}");
    assert_eq!(cancelled["error_type"], "cancelled", "{got}");
    assert_eq!(
        messages(cancelled).last().copied(),
        Some("Failed: Request was cancelled")
    );
    assert_eq!(got["get"]["status"], 499, "{got}");
    assert_eq!(got["get"]["message"], "Request was cancelled", "{got}");
    assert_eq!(got["cancel_again"]["status"], 400, "{got}");

    // A revoked key: our 401 and detail on each queue call.
    server.ok(&admin, &["key", "revoke", &api.id]);
    let got = call_with(&python, &server, &env, &["{}", "refused", &id]);
    assert_eq!(got["ok"], true, "{got}");
    for call in ["submit", "subscribe", "status", "result", "cancel"] {
        let r = &got["refusals"][call];
        assert_eq!(r["status"], 401, "{call}: {got}");
        assert_eq!(
            r["message"], "This key was revoked: use another key, or generate a new one",
            "{call}: {got}"
        );
    }
    server.stop();
}
