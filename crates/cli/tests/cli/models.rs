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
