//! fal's own JavaScript client (`@fal-ai/client` from npm), unchanged, under
//! Node against `fal serve --demo` over HTTPS with a certificate this test
//! makes. The script is `tests/js/fal_client.mjs`, one function per case.
//!
//! Needs Node and the client that `scripts/setup-js-client.sh` installs
//! (`.ci/run` runs it). Without them the test says so loudly and passes,
//! except under CI, where it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::certs::make_certificates;
use crate::harness::{Pair, Server, parse_pair};

/// The cases run with a working key (`revoked` runs after revocation).
const CASES: &[&str] = &[
    "run",
    "stream",
    "subscribe_polling",
    "subscribe_streaming",
    "queue_submit_status_result",
    "queue_cancel",
];

/// Node, and the directory the client is installed in.
fn node_and_client() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("FAL_TEST_JS_CLIENT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/js-client"));
    let node = std::env::var_os("FAL_TEST_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"));
    let node_runs = Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let installed = dir
        .join("node_modules/@fal-ai/client/package.json")
        .exists();
    if node_runs && installed {
        return Some((node, dir));
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but Node or @fal-ai/client is missing: run scripts/setup-js-client.sh"
    );
    let _ = writeln!(
        std::io::stderr(),
        "*** SKIPPED @fal-ai/client compatibility test: run scripts/setup-js-client.sh first ***"
    );
    None
}

/// Runs the script's `cases` with `key` as the credentials; returns the
/// lines it printed, parsed, or panics with its stderr.
fn run_cases(
    node: &Path,
    client_dir: &Path,
    server: &Server,
    ca: &Path,
    key: &Pair,
    cases: &[&str],
    request_id: &str,
) -> Vec<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/fal_client.mjs");
    let out = Command::new(node)
        .arg(&script)
        .args(cases)
        .env("FAL_URL", &server.url)
        .env("FAL_KEY", format!("{}:{}", key.id, key.secret))
        .env("FAL_JS_CLIENT_DIR", client_dir)
        .env("NODE_EXTRA_CA_CERTS", ca)
        .env("FAL_REQUEST_ID", request_id)
        .env_remove("FAL_KEY_ID")
        .env_remove("FAL_KEY_SECRET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node {cases:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

#[test]
fn fal_js_client_from_npm_runs_streams_queues_and_sees_revocation() {
    let Some((node, client_dir)) = node_and_client() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let ca = dir.path().join("ca.pem");
    let cert = dir.path().join("server.pem").display().to_string();
    let key = dir.path().join("server.key").display().to_string();
    let server = Server::start_with(
        &dir.path().join("data"),
        None,
        &["--demo", "--tls-cert", &cert, "--tls-key", &key],
        &[("SSL_CERT_FILE", &ca.display().to_string())],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let admin = server.bootstrap();
    let api: Pair = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();

    let reports = run_cases(&node, &client_dir, &server, &ca, &api, CASES, "");
    let passed: Vec<&str> = reports
        .iter()
        .filter(|r| r["passed"] == true)
        .filter_map(|r| r["case"].as_str())
        .collect();
    assert_eq!(passed, CASES, "{reports:?}");
    assert_eq!(reports[1]["events"], 4, "{reports:?}");
    let queued = reports
        .iter()
        .find(|r| r["case"] == "queue_submit_status_result")
        .and_then(|r| r["requestId"].as_str())
        .unwrap()
        .to_owned();

    server.ok(&admin, &["key", "revoke", &api.id]);
    let reports = run_cases(
        &node,
        &client_dir,
        &server,
        &ca,
        &api,
        &["revoked"],
        &queued,
    );
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["case"], "revoked");
    assert_eq!(reports[0]["passed"], true);
    server.stop();
}
