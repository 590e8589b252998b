//! schemathesis (PyPI) against the real `fal serve`, from the document it
//! serves at `/openapi.json`, with the bootstrap ADMIN key: no answer may
//! be a 5xx, and none may break the document (status, content type,
//! headers and body as documented; 405s naming what is allowed; secured
//! operations refusing calls without credentials).
//!
//! Needs the virtualenv that `scripts/setup-schemathesis.sh` creates
//! (`.ci/run` runs it). Without it the test says so loudly and passes,
//! except under CI, where it fails. `FAL_SCHEMATHESIS_SEED` picks another
//! seed than the fixed one (the runs are then new cases, not CI's).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fake_scanning::{KeyServer, Signer};
use crate::harness::Server;

/// The checks run: every one about the server's answers (not the ones
/// about how strictly the document describes the input).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      unsupported_method,ignored_auth";

/// The operations that could revoke, roll or rate-limit the key
/// schemathesis calls with, were the stateful phase to feed them its id
/// (`GET /keys` and `GET /users/current` show it).
const KEY_CHANGES: &str = r"^/keys/\{key_id\}(/roll)?$";
/// Those and `POST /keys`, whose links give them the keys it creates.
const KEY_LIFECYCLE: &str = r"^/keys(/\{key_id\}(/roll)?)?$";

fn schemathesis() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FAL_TEST_SCHEMATHESIS") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let st = root.join("target/schemathesis-venv/bin/schemathesis");
    if st.exists() {
        return Some(st);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but schemathesis is missing: run scripts/setup-schemathesis.sh"
    );
    let _ = writeln!(
        std::io::stderr(),
        "*** SKIPPED OpenAPI conformance test (schemathesis): run scripts/setup-schemathesis.sh first ***"
    );
    None
}

/// One `schemathesis run` over the server's document; panics with its
/// report when it finds anything.
fn run(st: &Path, work: &Path, server: &Server, key: &str, what: &str, args: &[&str]) {
    let seed = std::env::var("FAL_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1717".into());
    let config = work.join(format!("{}.toml", what.replace(' ', "-")));
    // The gateway's runs call the demo app: its paths' owner and name are
    // fixed to it (made-up apps only ever get 404).
    let params = if what.starts_with("gateway") {
        "[parameters]\n\"path.owner\" = \"fal-ai\"\n\"path.name\" = \"echo\"\n"
    } else {
        ""
    };
    std::fs::write(&config, params).unwrap();
    let out = Command::new(st)
        .current_dir(work)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/openapi.json", server.url))
        .args(["--header", &format!("Authorization: Key {key}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", "15", "--workers", "2", "--seed", &seed])
        .args(["--request-timeout", "10", "--output-truncate", "false"])
        .args(args)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis ({what}) found answers that break the document, or 5xx:\n{report}"
    );
    // Every selected operation was tested, none skipped as unreachable.
    assert!(report.contains("Tested:"), "{what}: {report}");
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_that_breaks_the_document() {
    let Some(st) = schemathesis() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Signed leak reports need GitHub's key list: a local one, so that the
    // endpoint answers (401 for schemathesis' signatures), not 503.
    let signer = Signer::new("openapi-test");
    let keys = KeyServer::start(&[&signer]);
    let server = Server::start_with(
        &dir.path().join("data"),
        None,
        &[
            // schemathesis sends calls without credentials on purpose.
            "--auth-failures-per-minute",
            "0",
            "--secret-scanning-keys-url",
            &keys.url,
            "--access-log",
            "off",
            // fal-ai/echo, for the gateway's run.
            "--demo",
        ],
        &[],
    );
    let pair = server.bootstrap();
    let key = format!("{}:{}", pair.id, pair.secret);
    let work = dir.path();
    // Everything but the operations that change keys, every phase.
    run(
        &st,
        work,
        &server,
        &key,
        "all operations but key changes",
        &["--exclude-path-regex", KEY_CHANGES],
    );
    // Those, with `POST /keys` and not `GET /keys`: the stateful phase
    // follows the links from the keys it creates, and made-up ids never
    // name the key in use.
    run(
        &st,
        work,
        &server,
        &key,
        "key changes",
        &[
            "--include-path-regex",
            KEY_LIFECYCLE,
            "--exclude-operation-id",
            "keys_list",
        ],
    );
    // fal's /run and /queue on the demo app: calls, queued requests and
    // (through the submit's links) their status, stream, result and cancel.
    run(
        &st,
        work,
        &server,
        &key,
        "gateway queue",
        &["--include-tag", "gateway", "--exclude-path-regex", "^/run/"],
    );
    // `/run` passes every method but CONNECT on to the app, extension
    // methods (`QUERY`, …) too, which an OpenAPI 3.1 document cannot list:
    // there a method it does not list is not expected to be a 405.
    run(
        &st,
        work,
        &server,
        &key,
        "gateway run",
        &[
            "--include-path-regex",
            "^/run/",
            "--exclude-checks",
            "unsupported_method",
        ],
    );
    // The key worked throughout: the runs tested the API, not its 401s.
    let out = server.run(&["auth", "whoami"], &[("FAL_KEY", &key)]);
    assert!(
        out.status.success(),
        "the bootstrap key stopped working during the run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop();
}
