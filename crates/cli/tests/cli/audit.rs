//! `fal audit`: the table, `--json`, the filters, and `--audit-retention`
//! on `fal serve`.

use crate::harness::{Server, parse_pair, stderr};

#[test]
fn audit_shows_what_the_cli_did_as_a_table_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, None, &["--audit-retention", "30d"], &[]);
    let admin = server.bootstrap();
    let made = server.ok(
        &admin,
        &["key", "generate", "--scope", "API", "--alias", "ci"],
    );
    let pair = parse_pair(&made).unwrap();
    server.ok(&admin, &["key", "revoke", &pair.id]);

    let table = server.ok(&admin, &["audit"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for col in ["TIME", "KIND", "ACTOR", "OBJECT", "SOURCE"] {
        assert!(header.contains(col), "{header}");
    }
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].contains("key.revoked") && rows[1].contains("key.generated"),
        "{table}"
    );
    for row in &rows {
        assert!(row.contains(&format!("key {}", admin.id)), "{row}");
        assert!(row.contains(&format!("key {}", pair.id)), "{row}");
        assert!(row.contains("127.0.0.1"), "{row}");
    }

    let json = server.ok(&admin, &["audit", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["kind"], "key.generated");
    assert_eq!(events[1]["detail"]["alias"], "ci");
    let agent = events[1]["user_agent"].as_str().unwrap();
    assert!(agent.starts_with("fal-client/"), "{agent}");
    assert!(!json.contains(&pair.secret) && !json.contains(&admin.secret));

    let revoked = server.ok(&admin, &["audit", "--json", "--kind", "key.revoked"]);
    let v: serde_json::Value = serde_json::from_str(&revoked).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
    let by_key = server.ok(&admin, &["audit", "--key-id", &admin.id]);
    assert_eq!(
        by_key.lines().count(),
        3,
        "done with the admin key: {by_key}"
    );

    let bad = server.run(
        &["audit", "--kind", "key.stolen"],
        &[("FAL_KEY_ID", &admin.id), ("FAL_KEY_SECRET", &admin.secret)],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("key.generated"), "{}", stderr(&bad));
    server.stop();
}

#[test]
fn an_api_key_cannot_read_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None);
    let admin = server.bootstrap();
    let api = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    let out = server.run(
        &["audit"],
        &[("FAL_KEY_ID", &api.id), ("FAL_KEY_SECRET", &api.secret)],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("ADMIN"), "{}", stderr(&out));
    server.stop();
}
