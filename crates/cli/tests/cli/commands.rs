//! `fal key …` (rate limits included), `fal keys create`, `fal auth whoami`
//! and credential resolution.

use crate::harness::{Server, parse_pair, stderr};

const SEED_MESSAGE_HEAD: &str = "Generated key id and key secret.\n\
This is the only time the secret will be visible.\n\
You will need to generate a new key pair if you lose access to this secret.\n\
\n\
FAL_KEY_ID='";

#[test]
fn generate_prints_the_seeds_message_and_the_key_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let admin = server.bootstrap();
    let out = server.ok(&admin, &["key", "generate", "--scope", "API"]);
    assert!(out.starts_with(SEED_MESSAGE_HEAD), "{out}");
    assert!(out.ends_with(
        "\nYou should store the values of FAL_KEY_ID and FAL_KEY_SECRET in your environment now.\n"
    ));
    let pair = parse_pair(&out).unwrap();
    let who = server.ok(&pair, &["auth", "whoami"]);
    assert!(who.contains(&pair.id) && who.contains("API scope"), "{who}");

    // `fal keys create --desc` is the same command, spelled as fal spells it today.
    let out = server.ok(
        &admin,
        &["keys", "create", "--scope", "ADMIN", "--desc", "laptop"],
    );
    let second = parse_pair(&out).unwrap();
    let json = server.ok(&admin, &["key", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let laptop = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == second.id.as_str())
        .unwrap();
    assert_eq!(laptop["alias"], "laptop");
    assert_eq!(laptop["scope"], "ADMIN");
    assert!(!json.contains(&second.secret) && !json.contains(&pair.secret));
    server.stop();
}

#[test]
fn list_shows_a_table_and_revoke_ends_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let admin = server.bootstrap();
    let pair = parse_pair(&server.ok(
        &admin,
        &["key", "generate", "--scope", "API", "--alias", "ci"],
    ))
    .unwrap();
    let table = server.ok(&admin, &["key", "list"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for col in [
        "KEY ID",
        "ALIAS",
        "SCOPE",
        "CREATED",
        "LAST USED",
        "RATE LIMIT",
        "EXPIRES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = table.lines().find(|l| l.starts_with(&pair.id)).unwrap();
    assert!(
        row.contains("ci") && row.contains("API") && row.contains("never"),
        "{row}"
    );

    let out = server.ok(&admin, &["key", "revoke", &pair.id]);
    assert!(out.contains(&pair.id));
    let denied = server.run(
        &["auth", "whoami"],
        &[("FAL_KEY_ID", &pair.id), ("FAL_KEY_SECRET", &pair.secret)],
    );
    assert!(!denied.status.success());
    assert!(
        stderr(&denied).contains("This key was revoked: use another key, or generate a new one")
    );
    let unknown = server.run(
        &["key", "revoke", "6f1c3a3e-8f7e-4a3a-9c53-0d7e2b1f6a11"],
        &[("FAL_KEY_ID", &admin.id), ("FAL_KEY_SECRET", &admin.secret)],
    );
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("No key"));
    server.stop();
}

#[test]
fn an_api_key_cannot_manage_keys_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let admin = server.bootstrap();
    let api = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    let env = [
        ("FAL_KEY_ID", api.id.as_str()),
        ("FAL_KEY_SECRET", api.secret.as_str()),
    ];
    for args in [
        vec!["key", "generate", "--scope", "ADMIN"],
        vec!["key", "list"],
        vec!["key", "revoke", &admin.id],
        vec!["key", "update", &admin.id, "--no-rate-limit"],
    ] {
        let out = server.run(&args, &env);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("needs a key with ADMIN scope; this key has API scope"),
            "{err}"
        );
    }
    server.stop();
}

#[test]
fn credentials_first_found_wins_flag_then_fal_key_then_the_pair() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let admin = server.bootstrap();
    let a = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    let b = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    let c = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    let flag = format!("{}:{}", a.id, a.secret);
    let fal_key = format!("{}:{}", b.id, b.secret);
    let pair_env = [
        ("FAL_KEY", fal_key.as_str()),
        ("FAL_KEY_ID", c.id.as_str()),
        ("FAL_KEY_SECRET", c.secret.as_str()),
    ];

    let out = server.run(&["--key", &flag, "auth", "whoami"], &pair_env);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&a.id),
        "the flag wins"
    );
    let out = server.run(&["auth", "whoami"], &pair_env);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&b.id) && text.contains("from FAL_KEY"),
        "FAL_KEY next: {text}"
    );
    let out = server.run(&["auth", "whoami", "--json"], &pair_env[1..]);
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["user"]["credential"]["key_id"], c.id.as_str());
    assert_eq!(who["credential_source"], "FAL_KEY_ID/FAL_KEY_SECRET");
    server.stop();
}

#[test]
fn credential_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("FAL_KEY", "no-colon-here")],
            "FAL_KEY must be '<key_id>:<key_secret>'",
        ),
        (
            &[("FAL_KEY_ID", "x")],
            "FAL_KEY_ID is set but FAL_KEY_SECRET is not",
        ),
        (
            &[("FAL_KEY_SECRET", "x")],
            "FAL_KEY_SECRET is set but FAL_KEY_ID is not",
        ),
        (
            &[],
            "no credentials found: set FAL_KEY_ID and FAL_KEY_SECRET",
        ),
    ];
    for (env, needle) in cases {
        let out = server.run(&["key", "list"], env);
        assert_eq!(out.status.code(), Some(1), "{env:?}");
        assert!(out.stdout.is_empty());
        let err = stderr(&out);
        assert!(err.contains(needle), "{env:?}: {err}");
        assert!(!err.contains("no-colon-here"), "never echo a credential");
    }
    server.stop();
}

#[test]
fn an_unreachable_server_is_explained() {
    let out = crate::harness::fal()
        .args(["key", "list"])
        .env("FAL_HOST", "http://127.0.0.1:1")
        .env("FAL_KEY", "a:b")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot reach the fal server at http://127.0.0.1:1"));
}

#[test]
fn a_disguising_alias_is_refused_before_anything_is_sent() {
    let alias = "evil\u{202E}gpj.exe";
    let expected = fal_core::Alias::parse(alias).unwrap_err().to_string();
    assert!(expected.contains("U+202E"), "{expected}");
    // Nothing listens on port 1: a request would fail with "cannot reach";
    // without credentials, reading them first would fail with "no credentials".
    for key in [Some("a:b"), None] {
        let mut cmd = crate::harness::fal();
        cmd.args(["key", "generate", "--scope", "API", "--alias", alias])
            .env("FAL_HOST", "http://127.0.0.1:1");
        if let Some(key) = key {
            cmd.env("FAL_KEY", key);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{key:?}");
        assert!(out.stdout.is_empty());
        assert_eq!(stderr(&out), format!("Error: {expected}\n"), "{key:?}");
    }
}

/// The `RATE LIMIT` cell (before `EXPIRES` and `REQUESTS`, the last) of
/// `key_id`'s row in `fal key list`.
fn listed_limit(server: &Server, admin: &crate::harness::Pair, key_id: &str) -> String {
    let tail = ["RATE", "LIMIT", "EXPIRES", "REQUESTS"];
    crate::harness::listed_cell(server, admin, key_id, &tail, 3)
}

#[test]
fn a_keys_rate_limit_is_set_listed_changed_and_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let admin = server.bootstrap();
    let out = server.ok(
        &admin,
        &[
            "key",
            "generate",
            "--scope",
            "API",
            "--alias",
            "x",
            "--rate-limit",
            "100/s",
        ],
    );
    assert!(out.contains("Rate limit: 100/s\n"), "{out}");
    let pair = parse_pair(&out).unwrap();
    assert_eq!(listed_limit(&server, &admin, &pair.id), "100/s");
    assert_eq!(listed_limit(&server, &admin, &admin.id), "-");

    let out = server.ok(
        &admin,
        &["key", "update", &pair.id, "--rate-limit", "5/min"],
    );
    assert_eq!(out, format!("Key {} is now limited to 5/min.\n", pair.id));
    assert_eq!(listed_limit(&server, &admin, &pair.id), "5/min");
    let json = server.ok(&admin, &["key", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let key = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == pair.id.as_str())
        .unwrap();
    assert_eq!(key["rate_limit"], "5/min");

    let out = server.ok(&admin, &["key", "update", &pair.id, "--no-rate-limit"]);
    assert_eq!(out, format!("Key {} has no rate limit now.\n", pair.id));
    assert_eq!(listed_limit(&server, &admin, &pair.id), "-");

    let json = server.ok(
        &admin,
        &[
            "key",
            "generate",
            "--scope",
            "API",
            "--rate-limit",
            "2/h",
            "--json",
        ],
    );
    let made: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(made["rate_limit"], "2/h");
    let json = server.ok(
        &admin,
        &[
            "key",
            "update",
            made["key_id"].as_str().unwrap(),
            "--rate-limit",
            "3/s",
            "--json",
        ],
    );
    let updated: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(updated["rate_limit"], "3/s");
    assert_eq!(updated["key_id"], made["key_id"]);

    // Someone else's (here: an unknown) key is the server's 404.
    let env = [
        ("FAL_KEY_ID", admin.id.as_str()),
        ("FAL_KEY_SECRET", admin.secret.as_str()),
    ];
    let unknown = server.run(
        &[
            "key",
            "update",
            "6f1c3a3e-8f7e-4a3a-9c53-0d7e2b1f6a11",
            "--rate-limit",
            "1/s",
        ],
        &env,
    );
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("No key"), "{}", stderr(&unknown));
    server.stop();
}

#[test]
fn a_bad_rate_limit_is_refused_before_anything_is_sent() {
    // Nothing listens on port 1: a request would fail with "cannot reach".
    for args in [
        vec!["key", "generate", "--scope", "API", "--rate-limit", "100/d"],
        vec![
            "key",
            "update",
            "6f1c3a3e-8f7e-4a3a-9c53-0d7e2b1f6a11",
            "--rate-limit",
            "100/d",
        ],
    ] {
        let out = crate::harness::fal()
            .args(&args)
            .env("FAL_HOST", "http://127.0.0.1:1")
            .env("FAL_KEY", "a:b")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty());
        let err = stderr(&out);
        assert!(err.contains("use s, min or h"), "{args:?}: {err}");
        assert!(!err.contains("cannot reach"), "{err}");
    }
    // Exactly one of --rate-limit and --no-rate-limit.
    for extra in [vec![], vec!["--rate-limit", "1/s", "--no-rate-limit"]] {
        let mut args = vec!["key", "update", "6f1c3a3e-8f7e-4a3a-9c53-0d7e2b1f6a11"];
        args.extend(extra);
        let out = crate::harness::fal()
            .args(&args)
            .env("FAL_HOST", "http://127.0.0.1:1")
            .env("FAL_KEY", "a:b")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("--rate-limit") && err.contains("--no-rate-limit"),
            "{args:?}: {err}"
        );
    }
}
