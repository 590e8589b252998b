//! Leaked-key reports through the real `fal serve`: the flag in `--help`,
//! a signed report revoking a key, and the log naming the key and where it
//! leaked but never the secret.

use crate::fake_scanning::{KeyServer, Signer};
use crate::harness::{Server, fal, parse_pair};

#[test]
fn the_keys_url_flag_is_in_serve_help() {
    let out = fal().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--secret-scanning-keys-url"), "{help}");
    assert!(help.contains("FAL_SECRET_SCANNING_KEYS_URL"), "{help}");
    assert!(
        help.contains("https://api.github.com/meta/public_keys/secret_scanning"),
        "{help}"
    );
    let out = fal()
        .args([
            "serve",
            "--secret-scanning-keys-url",
            "ftp://example.com/keys",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("https://"));
}

#[test]
fn a_reported_leak_revokes_the_key_and_logs_where_without_the_secret() {
    let github = Signer::new("github-key-1");
    let keys = KeyServer::start(&[&github]);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        Some("trace"),
        &["--secret-scanning-keys-url", &keys.url],
        &[],
    );
    let admin = server.bootstrap();
    let leaked = parse_pair(&server.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    server.ok(&leaked, &["auth", "whoami"]);

    let leak_url = "https://github.com/octocat/leaky/blob/abc123/.env";
    let body = serde_json::json!([{
        "token": leaked.secret,
        "type": "fal_key_secret",
        "url": leak_url,
        "source": "content",
    }])
    .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, answer) = rt.block_on(async {
        let resp = fal_client::http_client()
            .post(format!("{}/security/secret-scanning", server.url))
            .header("content-type", "application/json")
            .header("Github-Public-Key-Identifier", &github.id)
            .header("Github-Public-Key-Signature", github.sign(body.as_bytes()))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    });
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("true_positive"), "{answer}");
    let out = server.run(
        &["auth", "whoami"],
        &[
            ("FAL_KEY_ID", &leaked.id),
            ("FAL_KEY_SECRET", &leaked.secret),
        ],
    );
    assert!(!out.status.success(), "the leaked key still works");

    let log = server.stop();
    let line = log
        .lines()
        .find(|l| l.contains("leaked key") && l.contains(&leaked.id))
        .unwrap_or_else(|| panic!("no log line names the leaked key:\n{log}"));
    assert!(line.contains(leak_url), "{line}");
    assert!(line.contains("content"), "{line}");
    assert!(
        !log.contains(&leaked.secret["fal_sk_".len()..]),
        "the leaked secret reached the log"
    );
}
