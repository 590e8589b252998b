//! The access log of the real `fal serve`: one `fal::access` JSON line per
//! request on both forwarding paths, with no secret, token or query string
//! in any line; `--access-log off` silences it.

use std::process::Command;

use serde_json::Value;

use crate::harness::{Server, parse_pair};

/// `curl` with `args`; the status code it got.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The access lines of a JSON log.
fn access_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "fal::access")
        .collect()
}

#[test]
fn json_access_lines_name_each_request_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        &dir.path().join("data"),
        None,
        &["--demo", "--log-format", "json"],
        &[],
    );
    let admin = s.bootstrap();
    let key = parse_pair(&s.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    let auth = format!("Authorization: Key {}:{}", key.id, key.secret);
    // The hand-written path: a model call with a query that must not be logged.
    let run = format!("{}/run/fal-ai/echo/x?tokenish=hunter2", s.url);
    assert_eq!(curl(&["-H", &auth, "-d", "{}", &run]), "200");
    // The router: an API call, and a refused one.
    assert_eq!(
        curl(&["-H", &auth, &format!("{}/users/current", s.url)]),
        "200"
    );
    let jwt = format!("{}/run/fal-ai/echo?fal_jwt_token=not.a.token", s.url);
    let refused = curl(&["-d", "{}", &jwt]);
    assert_eq!(refused, "401");
    assert_eq!(curl(&[&format!("{}/healthz?probe=1", s.url)]), "200");
    let log = s.stop();

    for line in log.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"));
        assert!(v.is_object(), "{line}");
        for secret in [&key.secret, &admin.secret] {
            assert!(
                !line.contains(&secret["fal_sk_".len()..]),
                "a secret in {line}"
            );
        }
        for leak in ["hunter2", "not.a.token", "fal_jwt_token", "probe=1"] {
            assert!(!line.contains(leak), "{leak} in {line}");
        }
    }
    let lines = access_lines(&log);
    let find = |path: &str| -> &Value {
        lines
            .iter()
            .find(|v| v["path"] == path)
            .unwrap_or_else(|| panic!("no access line for {path} in {log}"))
    };
    let run = find("/run/fal-ai/echo/x");
    assert_eq!(run["method"], "POST");
    assert_eq!(run["status"], 200);
    assert_eq!(run["key_id"], key.id.as_str());
    assert_eq!(run["app"], "fal-ai/echo");
    assert_eq!(run["request_id"].as_str().map(str::len), Some(36), "{run}");
    assert!(run["ms"].as_f64().is_some(), "{run}");
    let user = find("/users/current");
    assert_eq!(
        (user["status"].as_u64(), user["key_id"].as_str()),
        (Some(200), Some(key.id.as_str()))
    );
    assert!(user.get("app").is_none(), "{user}");
    let refused = find("/run/fal-ai/echo");
    assert_eq!(refused["status"], 401);
    assert!(refused.get("key_id").is_none(), "{refused}");
    assert_eq!(refused["app"], "fal-ai/echo");
    assert_eq!(find("/healthz")["status"], 200);
    for path in [
        "/run/fal-ai/echo/x",
        "/users/current",
        "/run/fal-ai/echo",
        "/healthz",
    ] {
        let n = lines.iter().filter(|v| v["path"] == path).count();
        assert_eq!(n, 1, "one line per request to {path}: {log}");
    }
}

#[test]
fn access_log_off_writes_none() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        &dir.path().join("data"),
        None,
        &["--demo", "--log-format", "json"],
        &[("FAL_ACCESS_LOG", "off")],
    );
    let admin = s.bootstrap();
    s.ok(&admin, &["auth", "whoami"]);
    let auth = format!("Authorization: Key {}:{}", admin.id, admin.secret);
    assert_eq!(
        curl(&[
            "-H",
            &auth,
            "-d",
            "{}",
            &format!("{}/run/fal-ai/echo", s.url)
        ]),
        "200"
    );
    let log = s.stop();
    assert!(access_lines(&log).is_empty(), "{log}");
    assert!(
        log.contains("\"target\""),
        "other logs are still written: {log}"
    );
}
