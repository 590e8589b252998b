//! One address, one server: a second `fal serve` on an address another
//! server holds fails with "address already in use" and the first keeps
//! every call. And the CLI names why it cannot reach a server: a refused
//! connection, an untrusted certificate, a name that does not resolve.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::certs::certificates;
use crate::harness::{Server, fal, stderr};

/// Runs `fal serve` on `listen` and waits (at most 60 s) for it to exit:
/// returns its exit status and stderr. A server that starts is killed and
/// fails the test.
fn serve_expecting_failure(listen: &str, data: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let err_path = data.with_extension("stderr");
    let mut child = fal()
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second `fal serve` on {listen} started instead of failing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&err_path).unwrap();
    (status.code().unwrap_or(-1), err)
}

/// `count` calls of `GET /users/current`, each on a connection of its own;
/// returns the status codes.
fn statuses_over_fresh_connections(url: &str, auth: &str, count: usize) -> Vec<String> {
    let target = format!("{url}/users/current");
    let mut args: Vec<String> = [
        "-s",
        "-w",
        "%{http_code}\\n",
        "-H",
        "Connection: close",
        "-H",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("Authorization: {auth}"));
    for _ in 0..count {
        // Each URL's body goes nowhere; only the status is printed.
        args.extend(["-o".to_owned(), "/dev/null".to_owned(), target.clone()]);
    }
    let out = Command::new("curl").args(&args).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_second_server_on_the_same_address_fails_and_the_first_keeps_every_call() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start_with(&dir.path().join("first"), None, &["--workers", "2"], &[]);
    let admin = first.bootstrap();
    let listen = first.url.strip_prefix("http://").unwrap().to_owned();

    // Another data directory, plain HTTP like the first.
    let (code, err) = serve_expecting_failure(&listen, &dir.path().join("second"), &[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("address already in use"), "{err}");
    assert!(
        err.contains(&listen),
        "the message names the address: {err}"
    );

    // TLS beside the plain server is refused the same way.
    let (_, cert, key) = certificates(dir.path());
    let (code, err) = serve_expecting_failure(
        &listen,
        &dir.path().join("third"),
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("address already in use"), "{err}");

    // Every call still reaches the first server (a second one sharing the
    // port would have answered about half of them with 401).
    let auth = format!("Key {}:{}", admin.id, admin.secret);
    let statuses = statuses_over_fresh_connections(&first.url, &auth, 50);
    assert_eq!(statuses.len(), 50, "{statuses:?}");
    assert!(statuses.iter().all(|s| s == "200"), "{statuses:?}");
    first.stop();
}

#[test]
fn the_cli_names_why_it_cannot_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    // The CLI is not told about the test CA: its certificate is untrusted.
    let s = Server::start_with(
        &dir.path().join("data"),
        None,
        &["--tls-cert", &cert, "--tls-key", &key],
        &[],
    );
    let admin = s.bootstrap();
    let creds = [
        ("FAL_KEY_ID", admin.id.as_str()),
        ("FAL_KEY_SECRET", admin.secret.as_str()),
    ];
    let with = |extra: &[(&str, &str)]| {
        let mut env = creds.to_vec();
        env.extend_from_slice(extra);
        s.run(&["auth", "whoami"], &env)
    };

    let out = with(&[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("certificate is not trusted"), "{err}");
    assert!(err.contains("SSL_CERT_FILE"), "{err}");
    assert!(!err.contains("Is `fal serve` running"), "{err}");
    // With the CA it works: the certificate was the whole problem.
    let out = with(&[("SSL_CERT_FILE", &ca)]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = with(&[("FAL_HOST", &refused)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains("Is `fal serve` running?"), "{err}");
    assert!(err.contains(&refused), "{err}");

    // A name that does not resolve (.invalid never does).
    let out = with(&[("FAL_HOST", "https://nonexistent.invalid")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("could not be resolved"), "{err}");
    assert!(!err.contains("Is `fal serve` running"), "{err}");
    s.stop();
}
