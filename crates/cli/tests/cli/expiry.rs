//! `fal key generate --expires-in/--expires-at`, the EXPIRES column of
//! `fal key list`, and `fal key roll [--grace]`, run as a user types them.
//! (Moving time past an expiry is tested in the server's API tests, which
//! own the clock.)

use serde_json::Value;

use crate::harness::{Pair, Server, parse_pair, stderr};

/// The EXPIRES cell (before REQUESTS, the last) of `key_id`'s row in
/// `fal key list`.
fn listed_expiry(server: &Server, admin: &Pair, key_id: &str) -> String {
    crate::harness::listed_cell(server, admin, key_id, &["EXPIRES", "REQUESTS"], 2)
}

fn env(p: &Pair) -> [(&'static str, &str); 2] {
    [("FAL_KEY_ID", &p.id), ("FAL_KEY_SECRET", &p.secret)]
}

#[test]
fn keys_are_generated_with_an_expiry_and_listed_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let admin = server.bootstrap();
    let out = server.ok(
        &admin,
        &["key", "generate", "--scope", "API", "--expires-in", "30d"],
    );
    assert!(
        out.starts_with("Generated key id and key secret.\n"),
        "{out}"
    );
    let month = parse_pair(&out).unwrap();
    let expires = out
        .lines()
        .find_map(|l| l.strip_prefix("Expires: "))
        .unwrap_or_else(|| panic!("no Expires line: {out}"))
        .to_owned();
    assert_eq!(listed_expiry(&server, &admin, &month.id), expires);
    let json = server.ok(
        &admin,
        &[
            "key",
            "generate",
            "--scope",
            "ADMIN",
            "--expires-at",
            "2099-12-31T23:59:00Z",
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["expires_at"], "2099-12-31T23:59:00.000Z");
    let dated = v["key_id"].as_str().unwrap();
    assert_eq!(
        listed_expiry(&server, &admin, dated),
        "2099-12-31T23:59:00.000Z"
    );
    assert_eq!(listed_expiry(&server, &admin, &admin.id), "never");
    // The new key works.
    let who = server.run(&["auth", "whoami"], &env(&month));
    assert!(who.status.success(), "{}", stderr(&who));

    // Refused: a date in the past (by the server), both at once, bad text.
    let past = server.run(
        &[
            "key",
            "generate",
            "--scope",
            "API",
            "--expires-at",
            "2020-01-01T00:00:00Z",
        ],
        &env(&admin),
    );
    assert!(!past.status.success());
    assert!(
        stderr(&past).contains("is not in the future: give a later date"),
        "{}",
        stderr(&past)
    );
    let both = server.run(
        &[
            "key",
            "generate",
            "--scope",
            "API",
            "--expires-in",
            "1d",
            "--expires-at",
            "2099-01-01T00:00:00Z",
        ],
        &env(&admin),
    );
    assert!(!both.status.success());
    assert!(
        stderr(&both).contains("cannot be used with"),
        "{}",
        stderr(&both)
    );
    let bad = server.run(
        &[
            "key",
            "generate",
            "--scope",
            "API",
            "--expires-in",
            "a month",
        ],
        &env(&admin),
    );
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("expires_in is a whole number and a unit"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn a_rolled_key_prints_its_new_pair_and_the_old_one_works_for_its_grace() {
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
            "deploy",
            "--expires-in",
            "30d",
        ],
    );
    let old = parse_pair(&out).unwrap();

    let out = server.ok(&admin, &["key", "roll", &old.id, "--grace", "1h"]);
    assert!(
        out.starts_with(
            "Generated key id and key secret.\nThis is the only time the secret will be visible.\n"
        ),
        "{out}"
    );
    assert!(out.contains(&format!(
        "It replaces key {}, which stops working at ",
        old.id
    )));
    assert!(out.ends_with(
        "You should store the values of FAL_KEY_ID and FAL_KEY_SECRET in your environment now.\n"
    ));
    let new = parse_pair(&out).unwrap();
    assert_ne!(new.id, old.id);
    for pair in [&old, &new] {
        let who = server.run(&["auth", "whoami"], &env(pair));
        assert!(who.status.success(), "within the grace: {}", stderr(&who));
    }
    let listed = server.ok(&admin, &["key", "list", "--json"]);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let row = |id: &str| {
        listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(row(&new.id)["alias"], "deploy");
    assert_eq!(row(&new.id)["expires_in"], "30d");
    assert_eq!(row(&old.id)["rolled_to"], new.id.as_str());

    // Without grace, the rolled pair stops at once, and says so.
    let out = server.ok(&admin, &["key", "roll", &new.id, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["old_key_id"], new.id.as_str());
    let who = server.run(&["auth", "whoami"], &env(&new));
    assert!(!who.status.success());
    assert!(
        stderr(&who).contains("This key was rolled and stopped working at"),
        "{}",
        stderr(&who)
    );
    // Rolled already, and a grace over a week: refused, saying what to do.
    let again = server.run(&["key", "roll", &new.id], &env(&admin));
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("roll that key instead"),
        "{}",
        stderr(&again)
    );
    let long = server.run(&["key", "roll", &old.id, "--grace", "8d"], &env(&admin));
    assert!(!long.status.success());
    assert!(
        stderr(&long).contains("grace is at most 7d"),
        "{}",
        stderr(&long)
    );
}
