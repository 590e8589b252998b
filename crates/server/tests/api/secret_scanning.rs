//! `POST /security/secret-scanning`: GitHub's secret scanning partner
//! protocol against a fake key server publishing a P-256 key generated
//! here. A signed report of a real secret revokes its key (on both
//! forwarding paths, and on a second server sharing PostgreSQL); guessed,
//! malformed, unsigned, wrongly signed or tampered reports change nothing.

use std::sync::Arc;
use std::time::Duration;

use fal_core::{Clock, KeySecret, ManualClock, OsRandom, SystemClock, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::fake_scanning::{KeyServer, Signer};
use crate::helpers::{TestApp, spawn_app_with};

const PATH: &str = "/security/secret-scanning";

/// An app with the demo upstream, trusting `keys`.
async fn app_with(keys: &KeyServer, hand_path: bool, clock: Arc<dyn Clock>) -> TestApp {
    let url = keys.url.clone();
    spawn_app_with(
        move |c| {
            c.demo = true;
            c.hand_path = hand_path;
            c.secret_scanning_keys_url = url;
        },
        clock,
    )
    .await
}

/// A report body as GitHub sends it.
fn report(tokens: &[&str]) -> String {
    let rows: Vec<Value> = tokens
        .iter()
        .map(|t| {
            json!({
                "token": t,
                "type": "fal_key_secret",
                "url": "https://github.com/octocat/leaky/blob/abc123/.env",
                "source": "content",
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// Posts `body` with the given signature headers; status and JSON body.
async fn post(app: &TestApp, body: &str, id: Option<&str>, sig: Option<&str>) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}{PATH}", app.url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(id) = id {
        req = req.header("Github-Public-Key-Identifier", id);
    }
    if let Some(sig) = sig {
        req = req.header("Github-Public-Key-Signature", sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Posts `body` signed by `signer`.
async fn signed(app: &TestApp, signer: &Signer, body: &str) -> (u16, Value) {
    post(
        app,
        body,
        Some(&signer.id),
        Some(&signer.sign(body.as_bytes())),
    )
    .await
}

/// The status of a model call on the demo app with `key` (`id:secret`).
async fn run_status(app: &TestApp, key: &str) -> u16 {
    app.http
        .post(format!("{}/run/fal-ai/echo", app.url))
        .header("authorization", format!("Key {key}"))
        .json(&json!({"prompt": "a cat"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A new API key of the admin user: (`id:secret`, secret).
async fn new_key(app: &TestApp) -> (String, String) {
    let k = app.admin().create_key("API", "leaky").await.unwrap();
    (format!("{}:{}", k.key_id, k.key_secret), k.key_secret)
}

fn labels(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|r| r["label"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_signed_report_of_a_real_secret_revokes_its_key_on_both_paths() {
    let github = Signer::new("github-key-1");
    let keys = KeyServer::start(&[&github]);
    for hand_path in [true, false] {
        let app = app_with(&keys, hand_path, Arc::new(SystemClock)).await;
        let (key, secret) = new_key(&app).await;
        let (other, _) = new_key(&app).await;
        assert_eq!(run_status(&app, &key).await, 200, "hand path {hand_path}");

        let (status, body) = signed(&app, &github, &report(&[&secret])).await;
        assert_eq!(status, 200, "hand path {hand_path}: {body}");
        assert_eq!(
            body,
            json!([{"token_raw": secret, "token_type": "fal_key_secret", "label": "true_positive"}])
        );
        assert_eq!(run_status(&app, &key).await, 401, "hand path {hand_path}");
        let (_, _, me) = app
            .call(
                Method::GET,
                "/users/current",
                Some(&format!("Key {key}")),
                None,
            )
            .await;
        assert_eq!(me["code"], "key_revoked", "its own secret learns why");
        // Only that key: the other one and the admin key still work.
        assert_eq!(run_status(&app, &other).await, 200);
        let listed = app.admin().list_all_keys().await.unwrap();
        let key_id = key.split(':').next().unwrap();
        assert!(listed.iter().all(|k| k.key_id != key_id));
        assert_eq!(listed.len(), 2, "the admin key and the other key remain");
        // The owner's audit log says so, with where the secret was found.
        let leaked = crate::audit::events(&app, &app.admin_auth(), "kind=key.leaked_revoked").await;
        assert_eq!(leaked.len(), 1, "hand path {hand_path}: {leaked:?}");
        assert_eq!(leaked[0]["key_id"], key_id);
        let text = leaked[0].to_string();
        assert!(
            text.contains("https://github.com/octocat/leaky/blob/abc123/.env"),
            "{text}"
        );
        assert!(!text.contains(&secret), "no secret in the event");
    }
}

#[tokio::test]
async fn guessed_and_malformed_tokens_revoke_nothing() {
    let github = Signer::new("github-key-1");
    let keys = KeyServer::start(&[&github]);
    let app = app_with(&keys, true, Arc::new(SystemClock)).await;
    let (key, secret) = new_key(&app).await;
    // Well-formed with a right checksum, but nobody's secret.
    let guessed = KeySecret::generate(&OsRandom).unwrap();
    // The real secret with one digit changed: its checksum fails.
    let mut typo = secret.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let upper = secret.to_uppercase();
    let body = report(&[guessed.expose(), &typo, "fal_sk_0000", &upper, ""]);
    let (status, answer) = signed(&app, &github, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(labels(&answer), vec!["false_positive"; 5]);
    assert_eq!(answer[0]["token_raw"], guessed.expose());
    assert_eq!(answer[1]["token_type"], "fal_key_secret");
    assert_eq!(run_status(&app, &key).await, 200, "nothing was revoked");

    // In one report with the real secret, each gets its own label, in order.
    let body = report(&[guessed.expose(), &secret, "nonsense"]);
    let (status, answer) = signed(&app, &github, &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        labels(&answer),
        vec!["false_positive", "true_positive", "false_positive"]
    );
    assert_eq!(run_status(&app, &key).await, 401);
}

#[tokio::test]
async fn unsigned_wrongly_signed_or_tampered_reports_are_refused_and_change_nothing() {
    let github = Signer::new("github-key-1");
    let impostor = Signer::new("impostor-key");
    let keys = KeyServer::start(&[&github]);
    let app = app_with(&keys, true, Arc::new(SystemClock)).await;
    let (key, secret) = new_key(&app).await;
    let body = report(&[&secret]);
    let good = github.sign(body.as_bytes());
    let tampered = report(&[&secret]).replace("leaky", "other");
    let other_body = report(&["fal_sk_nothing"]);
    let cases: Vec<(&str, &str, Option<&str>, Option<String>)> = vec![
        ("no headers", &body, None, None),
        ("no signature", &body, Some("github-key-1"), None),
        ("no identifier", &body, None, Some(good.clone())),
        (
            "not base64",
            &body,
            Some("github-key-1"),
            Some("!!not base64!!".into()),
        ),
        (
            "not a signature",
            &body,
            Some("github-key-1"),
            Some("c2lnbmF0dXJl".into()),
        ),
        (
            "another body's signature",
            &body,
            Some("github-key-1"),
            Some(github.sign(other_body.as_bytes())),
        ),
        (
            "signed by another key under GitHub's identifier",
            &body,
            Some("github-key-1"),
            Some(impostor.sign(body.as_bytes())),
        ),
        (
            "an identifier GitHub does not publish",
            &body,
            Some("impostor-key"),
            Some(impostor.sign(body.as_bytes())),
        ),
        (
            "tampered after signing",
            &tampered,
            Some("github-key-1"),
            Some(good.clone()),
        ),
    ];
    for (what, body, id, sig) in cases {
        let (status, answer) = post(&app, body, id, sig.as_deref()).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert_eq!(answer["code"], "invalid_signature", "{what}");
        assert!(answer["detail"].is_string(), "{what}");
        assert!(!answer.to_string().contains(&secret), "{what}");
        assert_eq!(run_status(&app, &key).await, 200, "{what} revoked the key");
    }
    // The unknown identifier made the server look for new keys once, not
    // once per report.
    let fetched = keys.fetched();
    for _ in 0..3 {
        let sig = impostor.sign(body.as_bytes());
        let (status, _) = post(&app, &body, Some("impostor-key"), Some(&sig)).await;
        assert_eq!(status, 401);
    }
    assert_eq!(keys.fetched(), fetched, "refetched within the minute");
    // The right signature still works afterwards.
    let (status, _) = post(&app, &body, Some("github-key-1"), Some(&good)).await;
    assert_eq!(status, 200);
    assert_eq!(run_status(&app, &key).await, 401);
}

#[tokio::test]
async fn the_key_list_unreachable_at_first_is_fetched_again_a_minute_later() {
    let github = Signer::new("github-key-1");
    let keys = KeyServer::start(&[&github]);
    keys.set_down(true);
    let clock = Arc::new(ManualClock::new(Timestamp(1_700_000_000_000)));
    let app = app_with(&keys, true, clock.clone()).await;
    let (key, secret) = new_key(&app).await;
    let body = report(&[&secret]);

    // The signature cannot be checked: 503, so the service retries; the
    // key still works.
    let (status, answer) = signed(&app, &github, &body).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], "unavailable");
    assert_eq!(keys.fetched(), 1);
    assert_eq!(run_status(&app, &key).await, 200);

    // Up again, but within the minute: not asked again.
    keys.set_down(false);
    let (status, _) = signed(&app, &github, &body).await;
    assert_eq!(status, 503);
    assert_eq!(keys.fetched(), 1, "asked again within the minute");

    clock.advance_millis(60_000);
    let (status, answer) = signed(&app, &github, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(labels(&answer), vec!["true_positive"]);
    assert_eq!(keys.fetched(), 2);
    assert_eq!(run_status(&app, &key).await, 401);

    // Down again: the keys held still check reports, without a fetch.
    keys.set_down(true);
    clock.advance_millis(120_000);
    let (key2, secret2) = new_key(&app).await;
    let (status, _) = signed(&app, &github, &report(&[&secret2])).await;
    assert_eq!(status, 200);
    assert_eq!(keys.fetched(), 2);
    assert_eq!(run_status(&app, &key2).await, 401);
    // An unknown identifier tries the list, fails, and keeps what is held.
    let rotated = Signer::new("github-key-2");
    let (status, _) = signed(&app, &rotated, &body).await;
    assert_eq!(status, 503);
    assert_eq!(keys.fetched(), 3);
    let (status, _) = signed(&app, &github, &body).await;
    assert_eq!(status, 200, "a failed fetch dropped the keys held");
}

#[tokio::test]
async fn an_already_revoked_key_is_a_true_positive_without_error() {
    let github = Signer::new("github-key-1");
    let keys = KeyServer::start(&[&github]);
    let app = app_with(&keys, true, Arc::new(SystemClock)).await;
    let (key, secret) = new_key(&app).await;
    let key_id = key.split(':').next().unwrap();
    app.admin().revoke_key(key_id).await.unwrap();
    // Twice in one report, and again in a second report.
    for _ in 0..2 {
        let (status, answer) = signed(&app, &github, &report(&[&secret, &secret])).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(labels(&answer), vec!["true_positive", "true_positive"]);
    }
    assert_eq!(run_status(&app, &key).await, 401);
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_report_is_refused() {
    let github = Signer::new("github-key-1");
    let keys = KeyServer::start(&[&github]);
    let app = app_with(&keys, true, Arc::new(SystemClock)).await;
    let (key, secret) = new_key(&app).await;
    for (body, want) in [
        (json!({"token": secret}).to_string(), 422),
        (json!([{"type": "fal_key_secret"}]).to_string(), 422),
        ("[{\"token\":".to_owned() + &secret, 400),
        ("not json".to_owned(), 400),
    ] {
        let (status, answer) = signed(&app, &github, &body).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(answer["code"].is_string());
    }
    // Too many matches in one report.
    let many = json!(vec![json!({"token": "x", "type": "fal_key_secret"}); 1001]).to_string();
    assert!(many.len() < 64 * 1024);
    let (status, answer) = signed(&app, &github, &many).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("1000"));
    // Beyond --max-body-size (64 KiB): 413 before any signature work.
    let huge = report(&vec![secret.as_str(); 600]);
    assert!(huge.len() > 64 * 1024);
    let (status, _) = signed(&app, &github, &huge).await;
    assert_eq!(status, 413);
    assert_eq!(run_status(&app, &key).await, 200, "nothing was revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_to_one_server_is_refused_by_another_on_one_postgresql() {
    let Some(db) = crate::postgres::Db::new("leaked key across servers").await else {
        return;
    };
    let github = Signer::new("github-key-1");
    let keys = KeyServer::start(&[&github]);
    // A minute of staleness: only the change notification explains a
    // refusal on B within the two seconds allowed.
    let minute = Duration::from_secs(60);
    let mut servers = Vec::new();
    let mut boot = None;
    for name in ["a", "b"] {
        let mut c = db.config(name, &db.url, minute);
        c.secret_scanning_keys_url = keys.url.clone();
        let mut app = fal_server::App::build(c, Arc::new(SystemClock), Arc::new(OsRandom))
            .await
            .unwrap();
        boot = boot.or(app.take_bootstrap_key());
        servers.push(app.spawn().await.unwrap());
    }
    let boot = boot.unwrap();
    let admin = fal_client::Client::new(
        &servers[0].url(),
        Some(crate::helpers::creds(
            &boot.key_id.to_string(),
            boot.secret.expose(),
        )),
    );
    let k = admin.create_key("API", "leaky").await.unwrap();
    let on_b = fal_client::Client::new(
        &servers[1].url(),
        Some(crate::helpers::creds(&k.key_id, &k.key_secret)),
    );
    assert!(on_b.current_user().await.is_ok(), "B knows the key");

    let body = report(&[&k.key_secret]);
    let resp = fal_client::http_client()
        .post(format!("{}{PATH}", servers[0].url()))
        .header("Github-Public-Key-Identifier", &github.id)
        .header("Github-Public-Key-Signature", github.sign(body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = std::time::Instant::now();
    let mut refused = false;
    while started.elapsed() < Duration::from_secs(2) {
        if on_b.current_user().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "B still accepted the leaked key 2 s after A revoked it"
    );
    for s in servers {
        s.stop().await;
    }
    db.drop().await;
}
