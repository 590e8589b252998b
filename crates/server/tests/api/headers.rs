//! Response headers: `nosniff` on every answer (once), `no-store` on every
//! answer that carries a secret or a token.

use std::sync::Arc;

use fal_core::{ManualClock, Timestamp};
use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::fake_github::FakeGithub;
use crate::github_web::{app_with_github_and, no_redirects};
use crate::helpers::spawn_app;

fn nosniff_once(h: &HeaderMap, what: &str) {
    let v: Vec<_> = h.get_all("x-content-type-options").iter().collect();
    assert_eq!(v, ["nosniff"], "{what}: {h:?}");
}

#[tokio::test]
async fn every_api_answer_says_nosniff_exactly_once() {
    let app = spawn_app().await;
    let auth = app.admin_auth();
    for (method, path, auth, body, status) in [
        (Method::GET, "/keys", Some(auth.as_str()), None, 200),
        (Method::GET, "/users/current", Some(&auth), None, 200),
        (Method::GET, "/keys", None, None, 401),
        (Method::GET, "/nowhere", None, None, 404),
        (Method::POST, "/keys", Some(&auth), Some("{"), 400),
        (Method::GET, "/auth/github", None, None, 200),
        (Method::GET, "/auth/github/login", None, None, 404),
    ] {
        let (got, headers, _) = app.call(method.clone(), path, auth, body).await;
        assert_eq!(got, status, "{method} {path}");
        nosniff_once(&headers, &format!("{method} {path}"));
    }
    // Dashboard pages set it themselves too: still once.
    let page = no_redirects()
        .get(format!("{}/dashboard/login", app.url))
        .send()
        .await
        .unwrap();
    nosniff_once(page.headers(), "GET /dashboard/login");
}

#[tokio::test]
async fn secrets_and_tokens_are_never_cached() {
    let app = spawn_app().await;
    let (status, headers, _) = app
        .call(
            Method::POST,
            "/keys",
            Some(&app.admin_auth()),
            Some(r#"{"scope": "API"}"#),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(headers["cache-control"], "no-store");

    let fake = FakeGithub::start();
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let app = app_with_github_and(&fake, |_| {}, clock.clone()).await;
    fake.script(&["ok"]);
    let (status, headers, start) = app.call(Method::POST, "/auth/device", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store", "the device code");
    clock.advance_millis(1_000);
    let body = format!(
        r#"{{"device_code": "{}"}}"#,
        start["device_code"].as_str().unwrap()
    );
    let (status, headers, tokens) = app
        .call(Method::POST, "/auth/device/token", None, Some(&body))
        .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        headers["cache-control"], "no-store",
        "the device flow's tokens"
    );
    nosniff_once(&headers, "POST /auth/device/token");
    let body = format!(
        r#"{{"refresh_token": "{}"}}"#,
        tokens["refresh_token"].as_str().unwrap()
    );
    let (status, headers, refreshed) = app
        .call(Method::POST, "/auth/refresh", None, Some(&body))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(headers["cache-control"], "no-store", "refreshed tokens");
}
