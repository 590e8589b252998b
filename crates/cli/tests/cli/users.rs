//! `fal admin users list|disable` against a real `fal serve`.

use crate::harness::{Server, stderr, user_with_admin_key};

#[test]
fn operators_list_and_disable_users_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, None, &["--operators", "4242"], &[]);
    let admin = server.bootstrap();
    let bob = user_with_admin_key(&data, "bob", Some(102));
    let carol = user_with_admin_key(&data, "carol", Some(4242));
    server.ok(&bob, &["auth", "whoami"]);

    let table = server.ok(&carol, &["admin", "users", "list"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("LOGIN") && header.contains("KEYS"),
        "{table}"
    );
    let bob_line = table.lines().find(|l| l.starts_with("bob ")).unwrap();
    assert!(
        bob_line.contains(" 102 ") && bob_line.ends_with("active"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&server.ok(&admin, &["admin", "users", "list", "--json"])).unwrap();
    assert_eq!(json["users"].as_array().unwrap().len(), 3);

    // Not an operator: refused, and says why.
    let denied = server.run(
        &["admin", "users", "disable", "carol"],
        &[("FAL_KEY_ID", &bob.id), ("FAL_KEY_SECRET", &bob.secret)],
    );
    assert!(!denied.status.success());
    assert!(
        stderr(&denied).contains("only operators"),
        "{}",
        stderr(&denied)
    );
    // The bootstrap user is never disabled by mistake.
    let refused = server.run(
        &["admin", "users", "disable", "admin"],
        &[("FAL_KEY_ID", &carol.id), ("FAL_KEY_SECRET", &carol.secret)],
    );
    assert!(
        stderr(&refused).contains("bootstrap"),
        "{}",
        stderr(&refused)
    );

    let out = server.ok(&carol, &["admin", "users", "disable", "bob"]);
    assert_eq!(
        out.trim(),
        "Disabled bob: revoked 1 key(s) and 0 session(s); they cannot sign in again."
    );
    let gone = server.run(
        &["auth", "whoami"],
        &[("FAL_KEY_ID", &bob.id), ("FAL_KEY_SECRET", &bob.secret)],
    );
    assert!(!gone.status.success(), "bob's key still works");
    let table = server.ok(&admin, &["admin", "users", "list"]);
    let bob_line = table.lines().find(|l| l.starts_with("bob ")).unwrap();
    assert!(bob_line.contains("disabled 20"), "{table}");
}
