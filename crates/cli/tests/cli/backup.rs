//! The README's backup recipe ("Operating fal" / "Backups"): `VACUUM
//! INTO` a running server's SQLite database (here through Python's sqlite3
//! module, as `sqlite3 fal.db "VACUUM INTO '…'"` would), plus its pepper
//! file, restored into a fresh data directory, starts and verifies the
//! keys it held; without the pepper the restored database refuses to start.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Pair, Server, fal, parse_pair, stderr};

/// `VACUUM INTO` from `db` to `to`, beside the server writing to `db`.
fn vacuum_into(db: &Path, to: &Path) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             c.execute('VACUUM INTO ?', (sys.argv[2],))\n\
             c.close()",
        ])
        .arg(db)
        .arg(to)
        .output()
        .expect("python3 runs (its sqlite3 module makes the backup)");
    assert!(out.status.success(), "VACUUM INTO: {}", stderr(&out));
}

fn generate(server: &Server, admin: &Pair, scope: &str) -> Pair {
    let out = server.ok(admin, &["key", "generate", "--scope", scope]);
    parse_pair(&out).expect("generate prints the pair")
}

fn whoami_works(server: &Server, pair: &Pair) -> bool {
    server
        .run(
            &["auth", "whoami"],
            &[("FAL_KEY_ID", &pair.id), ("FAL_KEY_SECRET", &pair.secret)],
        )
        .status
        .success()
}

#[test]
fn a_vacuum_into_backup_with_the_pepper_restores_and_verifies_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, None);
    let admin = server.bootstrap();
    let api = generate(&server, &admin, "API");
    assert!(whoami_works(&server, &api));

    // The backup, taken while the server runs (and keeps writing).
    let backup = dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    vacuum_into(&data.join("fal.db"), &backup.join("fal.db"));
    std::fs::copy(data.join("pepper"), backup.join("pepper")).unwrap();
    // Made after the backup: the restored server never saw it.
    let later = generate(&server, &admin, "API");
    assert!(whoami_works(&server, &later));
    server.stop();

    // Restore: the two files into a fresh data directory.
    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::copy(backup.join("fal.db"), restored.join("fal.db")).unwrap();
    std::fs::copy(backup.join("pepper"), restored.join("pepper")).unwrap();
    let server = Server::start(&restored, None);
    assert!(
        parse_pair(&server.banner).is_none(),
        "a restored database is not a first start:\n{}",
        server.banner
    );
    assert!(whoami_works(&server, &admin), "the bootstrap key");
    assert!(whoami_works(&server, &api), "the API key");
    assert!(
        !whoami_works(&server, &later),
        "a key made after the backup"
    );
    let log = server.stop();
    assert!(!log.contains(&api.secret), "a secret reached the log");
}

#[test]
fn a_restored_database_without_its_pepper_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, None);
    let backup = dir.path().join("backup.db");
    vacuum_into(&data.join("fal.db"), &backup);
    server.stop();

    // The database alone: fal makes a new pepper, which does not match.
    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::copy(&backup, restored.join("fal.db")).unwrap();
    let mut child = fal()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&restored)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fal serve started on a database without its pepper");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not the one this database was initialised with"),
        "the refusal names the pepper: {}",
        stderr(&out)
    );
}
