//! Failed-auth throttling over real HTTP: past the threshold of refused
//! credentials one client address is refused (429, `Retry-After`, our JSON
//! body) on the hand-written path, hyper's path and the dashboard's
//! sign-in form alike, until its window closes on the manual clock; other
//! addresses are untouched; `X-Forwarded-For` counts only from a trusted
//! proxy. Addresses are simulated with `--trusted-proxies 127.0.0.1/32`.

use std::sync::Arc;

use fal_core::{ManualClock, Timestamp};
use reqwest::header::{COOKIE, RETRY_AFTER};
use serde_json::Value;

use crate::github_web::no_redirects;
use crate::helpers::{TestApp, spawn_app_with};

/// Failures that block, in these tests.
const LIMIT: u32 = 3;

/// A server blocking after [`LIMIT`] failures a minute, believing
/// `X-Forwarded-For` from `trusted` (none: from nobody), on its own clock.
async fn spawn(hand_path: bool, trusted: &[&str]) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let proxies = trusted.iter().map(|c| c.parse().unwrap()).collect();
    let app = spawn_app_with(
        |c| {
            c.demo = true;
            c.hand_path = hand_path;
            c.throttle.failures = LIMIT;
            c.throttle.trusted_proxies = fal_server::throttle::TrustedProxies::new(proxies);
        },
        clock.clone(),
    )
    .await;
    (app, clock)
}

/// A request to `path` (POST for `/run`, GET otherwise) with `auth`, as
/// forwarded for `client`: status, `Retry-After` and the JSON body.
async fn call(
    app: &TestApp,
    path: &str,
    auth: Option<&str>,
    client: &str,
) -> (u16, Option<String>, Value) {
    let url = format!("{}{path}", app.url);
    let mut req = if path.starts_with("/run/") {
        app.http.post(url).body("{}")
    } else {
        app.http.get(url)
    };
    req = req.header("x-forwarded-for", client);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

/// `Key id:wrong` for the app's admin key.
fn wrong(app: &TestApp) -> String {
    format!("Key {}:fal_sk_{}", app.admin_id, "0".repeat(72))
}

/// Blocks `client` with [`LIMIT`] refused credentials on `path`, checking
/// each is a plain 401 and the next a 429.
async fn block(app: &TestApp, path: &str, client: &str) {
    let bad = wrong(app);
    for i in 0..LIMIT {
        let (status, retry, body) = call(app, path, Some(&bad), client).await;
        assert_eq!(
            (status, retry),
            (401, None),
            "failure {i} on {path}: {body}"
        );
    }
    let (status, retry, body) = call(app, path, Some(&bad), client).await;
    assert_eq!(status, 429, "{path}: {body}");
    assert_eq!(body["code"], "too_many_failed_attempts", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("retry in 60 s"),
        "{body}"
    );
    assert_eq!(retry.as_deref(), Some("60"));
}

#[tokio::test]
async fn a_blocked_address_gets_429_on_both_paths_until_its_window_closes() {
    for (hand_path, path) in [
        (true, "/run/fal-ai/echo"),
        (false, "/run/fal-ai/echo"),
        (true, "/keys"),
    ] {
        let (app, clock) = spawn(hand_path, &["127.0.0.1/32"]).await;
        let good = app.admin_auth();
        let ok = |(status, _, body): (u16, Option<String>, Value)| {
            assert_eq!(status, 200, "hand path {hand_path}, {path}: {body}");
        };
        block(&app, path, "10.6.6.6").await;
        // A right key from the blocked address waits like a wrong one.
        let (status, retry, _) = call(&app, path, Some(&good), "10.6.6.6").await;
        assert_eq!((status, retry.as_deref()), (429, Some("60")), "{path}");
        // Everyone else is untouched, wrong keys and all.
        ok(call(&app, path, Some(&good), "10.0.0.1").await);
        let (status, _, _) = call(&app, path, Some(&wrong(&app)), "10.0.0.1").await;
        assert_eq!(status, 401);
        // Retry-After counts down; the block ends with the window.
        clock.advance_millis(59_500);
        let (status, retry, _) = call(&app, path, Some(&good), "10.6.6.6").await;
        assert_eq!((status, retry.as_deref()), (429, Some("1")), "{path}");
        clock.advance_millis(500);
        ok(call(&app, path, Some(&good), "10.6.6.6").await);
        // And the count starts again.
        let (status, _, _) = call(&app, path, Some(&wrong(&app)), "10.6.6.6").await;
        assert_eq!(status, 401);
        ok(call(&app, path, Some(&good), "10.6.6.6").await);
    }
}

#[tokio::test]
async fn every_kind_of_refused_credential_counts_but_missing_ones_do_not() {
    for hand_path in [true, false] {
        let (app, _) = spawn(hand_path, &["127.0.0.1/32"]).await;
        let path = "/run/fal-ai/echo";
        for _ in 0..10 {
            let (status, _, body) = call(&app, path, None, "10.1.1.1").await;
            assert_eq!(
                (status, body["code"].as_str()),
                (401, Some("missing_credentials"))
            );
            let (status, _, _) = call(&app, path, Some("Basic Zm9vOmJhcg=="), "10.1.1.1").await;
            assert_eq!(status, 401);
        }
        let ok = call(&app, path, Some(&app.admin_auth()), "10.1.1.1").await;
        assert_eq!(ok.0, 200, "hand path {hand_path}: {}", ok.2);
        let unknown = "Key 00000000-0000-0000-0000-000000000000:x".to_owned();
        let refused = [
            "Key no-colon-here".to_owned(),
            "Bearer not-a-session".to_owned(),
            unknown,
        ];
        for auth in &refused {
            let (status, _, body) = call(&app, path, Some(auth), "10.2.2.2").await;
            assert_eq!(status, 401, "{auth}: {body}");
        }
        let (status, _, body) = call(&app, path, Some(&app.admin_auth()), "10.2.2.2").await;
        assert_eq!(status, 429, "hand path {hand_path}: {body}");
    }
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_changes_nothing() {
    // No trusted proxy: the TCP peer (127.0.0.1) is the client, whatever
    // the header claims, so rotating it does not escape the count...
    let (app, _) = spawn(true, &[]).await;
    let bad = wrong(&app);
    for i in 0..LIMIT {
        let (status, _, _) = call(&app, "/keys", Some(&bad), &format!("10.9.9.{i}")).await;
        assert_eq!(status, 401);
    }
    let (status, _, _) = call(&app, "/keys", Some(&app.admin_auth()), "10.0.0.1").await;
    assert_eq!(status, 429, "a spoofed X-Forwarded-For picked the address");

    // ...and a peer that is not the trusted proxy is not believed either.
    let (app, _) = spawn(true, &["10.0.0.0/8"]).await;
    block(&app, "/run/fal-ai/echo", "10.0.0.1").await;
    let (status, _, _) = call(&app, "/keys", Some(&app.admin_auth()), "192.0.2.1").await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn failed_dashboard_sign_ins_count() {
    let (app, _) = spawn(true, &["127.0.0.1/32"]).await;
    let http = no_redirects();
    let sign_in = |secret: String| {
        let http = http.clone();
        let url = app.url.clone();
        let key_id = app.admin_id.clone();
        async move {
            let csrf = "c".repeat(43);
            http.post(format!("{url}/dashboard/login"))
                .header(COOKIE, format!("fal_csrf={csrf}"))
                .header("x-forwarded-for", "10.6.6.6")
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("key_id", key_id.as_str()),
                    ("key_secret", secret.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..LIMIT {
        let resp = sign_in(format!("fal_sk_{}", "0".repeat(72))).await;
        assert_eq!(resp.status(), 401);
    }
    let resp = sign_in(app.admin_secret.clone()).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()[RETRY_AFTER], "60");
    // The API counts the same failures.
    let (status, _, _) = call(&app, "/keys", Some(&app.admin_auth()), "10.6.6.6").await;
    assert_eq!(status, 429);
}
