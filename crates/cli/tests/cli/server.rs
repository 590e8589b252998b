//! `fal serve` itself: first start, restarts, shutdown, logs, recovery.

use crate::harness::{Server, fal, parse_pair};

#[test]
fn the_bootstrap_key_is_printed_once_and_keys_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, None);
    assert!(server.banner.contains("Generated key id and key secret."));
    let admin = server.bootstrap();
    let api = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    let log = server.stop();
    assert!(log.contains("server stopped"), "graceful shutdown: {log}");

    let again = Server::start(&data, None);
    assert!(!again.banner.contains("FAL_KEY_SECRET"), "{}", again.banner);
    assert!(!again.banner.contains(&admin.secret));
    assert!(again.banner.contains("data: "), "says where its data lives");
    again.ok(&api, &["auth", "whoami"]);
    let list = again.ok(&admin, &["key", "list"]);
    assert!(list.contains(&api.id));
    again.stop();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("pepper"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn a_lost_bootstrap_key_is_recovered_with_the_server_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Server::start(&data, None).stop();
    let out = fal()
        .args(["admin", "recover-key", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Generated key id and key secret."));
    let recovered = parse_pair(&text).unwrap();
    let server = Server::start(&data, None);
    let who = server.ok(&recovered, &["auth", "whoami"]);
    assert!(
        who.contains("admin") && who.contains("ADMIN scope"),
        "{who}"
    );
    // The recovered key is in the audit log, made on the host.
    let log = server.ok(&recovered, &["audit", "--json", "--kind", "key.generated"]);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let event = &log["events"][0];
    assert_eq!(event["key_id"], recovered.id.as_str());
    assert_eq!(
        (&event["detail"]["via"], &event["source"]),
        (&serde_json::json!("recovery"), &serde_json::Value::Null)
    );
    server.stop();
}

#[test]
fn no_secret_reaches_the_logs_at_any_level() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), Some("trace"));
    let admin = server.bootstrap();
    let mut secrets = vec![admin.secret.clone()];
    for scope in ["API", "ADMIN"] {
        let p = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", scope])).unwrap();
        server.ok(&p, &["auth", "whoami"]);
        secrets.push(p.secret);
    }
    // Failed attempts carry secrets too: a wrong one and a mistyped one.
    let mut typo = admin.secret.clone();
    typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
    for bad in [secrets[1].clone(), typo.clone()] {
        let out = server.run(
            &["auth", "whoami"],
            &[("FAL_KEY_ID", &admin.id), ("FAL_KEY_SECRET", &bad)],
        );
        assert!(!out.status.success());
    }
    secrets.push(typo);
    let list = server.ok(&admin, &["key", "list"]);
    assert!(!list.is_empty());
    let log = server.stop();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "logging ran at trace level"
    );
    assert!(log.contains(&admin.id), "key ids may be logged");
    for s in &secrets {
        // The random part alone, in case something logged a fragment.
        assert!(
            !log.contains(&s["fal_sk_".len()..]),
            "a secret reached the log"
        );
    }
}

#[test]
fn recover_key_on_a_directory_without_fal_data_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // Nothing there at all.
        dir.path().join("missing"),
        // An empty directory.
        dir.path().join("empty"),
        // A pepper alone (say, copied from elsewhere), no database.
        dir.path().join("pepper-only"),
    ];
    std::fs::create_dir(&cases[1]).unwrap();
    std::fs::create_dir(&cases[2]).unwrap();
    std::fs::write(cases[2].join("pepper"), format!("{}\n", "ab".repeat(32))).unwrap();
    for data in &cases {
        let before = listing(data);
        let out = fal()
            .args(["admin", "recover-key", "--data-dir"])
            .arg(data)
            .env_remove("FAL_DATABASE_URL")
            .env_remove("FAL_PEPPER_FILE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}: {err}", data.display());
        assert!(err.contains("no fal data"), "{}: {err}", data.display());
        assert_eq!(
            listing(data),
            before,
            "{}: created something",
            data.display()
        );
    }
}

/// The names in `dir`, or `None` when it does not exist.
fn listing(dir: &std::path::Path) -> Option<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Some(names)
}

/// `fal serve` lifts its soft open-file limit to the hard one (a low soft
/// limit let a few hundred stalled sockets stop the server) and says so.
#[cfg(target_os = "linux")]
#[test]
fn serve_raises_the_open_file_limit_to_the_hard_one() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("serve.log");
    let mut child = std::process::Command::new("sh")
        .args(["-c", "ulimit -Sn 256 && exec \"$0\" \"$@\""])
        .arg(crate::harness::FAL)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("FAL_DATABASE_URL")
        .env_remove("FAL_PEPPER_FILE")
        .env_remove("FAL_MAX_CONNECTIONS")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "fal serve exited early"
        );
        if line.starts_with("fal is listening on ") {
            break;
        }
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    let (soft, hard) = (open_files[3], open_files[4]);
    assert_eq!(soft, hard, "{limits}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("open-file limit"), "{log}");
    assert!(log.contains("connection cap"), "{log}");
}
