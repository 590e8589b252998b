//! The dashboard's GitHub sign-in: web flow with state and PKCE, and the
//! session cookie it sets.

use std::sync::Arc;

use fal_server::github::GithubConfig;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::fake_github::{CLIENT_ID, CLIENT_SECRET, FakeGithub};
use fal_core::SystemClock;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// Where the test servers say browsers reach them.
const PUBLIC_URL: &str = "https://fal.example.com";

pub async fn app_with_github(fake: &FakeGithub) -> TestApp {
    app_with_github_and(fake, |_| {}, Arc::new(SystemClock)).await
}

/// A server signing in with `fake`, with more settings and a clock of the
/// test's choosing.
pub async fn app_with_github_and(
    fake: &FakeGithub,
    tweak: impl FnOnce(&mut fal_server::Config),
    clock: Arc<dyn fal_core::Clock>,
) -> TestApp {
    let url = fake.url.clone();
    spawn_app_with(
        move |c| {
            c.github = Some(GithubConfig {
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.to_owned().into(),
                url: url.clone(),
                api_url: url,
                allow_users: vec!["octocat".into()],
                allow_user_ids: vec![],
                allow_orgs: vec![],
            });
            c.public_url = Some(PUBLIC_URL.into());
            tweak(c);
        },
        clock,
    )
    .await
}

pub fn no_redirects() -> reqwest::Client {
    let _ = fal_client::http_client();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn query_param(url: &str, name: &str) -> String {
    let q = url.split_once('?').unwrap().1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
        .to_owned()
}

/// Runs the web flow up to the callback; returns the callback's response.
pub async fn sign_in(app: &TestApp, fake: &FakeGithub, tamper_state: bool) -> reqwest::Response {
    sign_in_as(app, fake, tamper_state, None).await
}

/// [`sign_in`], every request with a `Host` header of the caller's choosing.
async fn sign_in_as(
    app: &TestApp,
    fake: &FakeGithub,
    tamper_state: bool,
    host: Option<&str>,
) -> reqwest::Response {
    let http = no_redirects();
    let with_host = |r: reqwest::RequestBuilder| match host {
        Some(h) => r.header(reqwest::header::HOST, h),
        None => r,
    };
    let start = with_host(http.get(format!("{}/auth/github/login", app.url)))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let location = start.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/login/oauth/authorize?", fake.url)),
        "{location}"
    );
    assert_eq!(query_param(&location, "code_challenge_method"), "S256");
    let oauth_cookie = start.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(oauth_cookie.starts_with("fal_oauth="), "{oauth_cookie}");
    assert!(oauth_cookie.contains("HttpOnly") && oauth_cookie.contains("SameSite=Lax"));
    let cookie = oauth_cookie.split(';').next().unwrap().to_owned();
    // The user approves on GitHub, which redirects back with a code.
    fake.issue_code("code-1", &query_param(&location, "code_challenge"));
    let state = if tamper_state {
        "forged".to_owned()
    } else {
        query_param(&location, "state")
    };
    with_host(http.get(format!(
        "{}/auth/github/callback?code=code-1&state={state}",
        app.url
    )))
    .header(COOKIE, cookie)
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn the_web_flow_sets_an_httponly_samesite_session_cookie() {
    let fake = FakeGithub::start();
    let app = app_with_github(&fake).await;
    let done = sign_in(&app, &fake, false).await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()[LOCATION], "/dashboard/keys");
    let session = done
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("fal_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "plain HTTP here; Secure is set under TLS"
    );
    let cookie = session.split(';').next().unwrap().to_owned();

    // The dashboard reads it; the API does not (only explicit credentials).
    let page = no_redirects()
        .get(format!("{}/dashboard/keys", app.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("octocat"));
    let me = no_redirects()
        .get(format!("{}/users/current", app.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);

    // A cookie never authorises a state change (CSRF): POST needs a header.
    let post = no_redirects()
        .post(format!("{}/keys", app.url))
        .header(COOKIE, &cookie)
        .json(&serde_json::json!({"scope": "API"}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 401);
}

#[tokio::test]
async fn a_forged_state_or_missing_cookie_is_refused() {
    let fake = FakeGithub::start();
    let app = app_with_github(&fake).await;
    let forged = sign_in(&app, &fake, true).await;
    assert_eq!(forged.status(), 400);
    let body: serde_json::Value = forged.json().await.unwrap();
    assert_eq!(body["code"], "bad_oauth_state");
    let no_cookie = no_redirects()
        .get(format!("{}/auth/github/callback?code=x&state=y", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_cookie.status(), 400);
}

#[tokio::test]
async fn a_forged_host_header_does_not_choose_the_redirect_uri() {
    let fake = FakeGithub::start();
    let app = app_with_github(&fake).await;
    let callback = format!("{PUBLIC_URL}/auth/github/callback");
    for host in [
        None,
        Some("evil.example"),
        Some("fal.example.com.evil.example:8443"),
    ] {
        let http = no_redirects();
        let mut start = http.get(format!("{}/auth/github/login", app.url));
        if let Some(h) = host {
            start = start.header(reqwest::header::HOST, h);
        }
        let start = start.send().await.unwrap();
        let location = start.headers()[LOCATION].to_str().unwrap().to_owned();
        let sent = query_param(&location, "redirect_uri");
        assert_eq!(
            sent, "https%3A%2F%2Ffal.example.com%2Fauth%2Fgithub%2Fcallback",
            "Host {host:?}"
        );
    }
    let done = sign_in_as(&app, &fake, false, Some("evil.example")).await;
    assert_eq!(done.status(), 303);
    assert_eq!(
        fake.state.lock().unwrap().redirect_uris,
        [callback],
        "the code exchange names the configured callback"
    );
}

#[tokio::test]
async fn without_a_public_url_a_wildcard_or_port_0_server_refuses_the_web_flow() {
    let fake = FakeGithub::start();
    // spawn_app listens on 127.0.0.1:0: no address a browser could be sent back to.
    let app = app_with_github_and(&fake, |c| c.public_url = None, Arc::new(SystemClock)).await;
    let r = no_redirects()
        .get(format!("{}/auth/github/login", app.url))
        .header(reqwest::header::HOST, "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    assert!(r.headers().get(LOCATION).is_none());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "public_url_not_configured");
    assert!(
        body["detail"].as_str().unwrap().contains("--public-url"),
        "{body}"
    );
}

#[tokio::test]
async fn an_empty_state_is_refused_even_against_an_empty_stored_one() {
    let fake = FakeGithub::start();
    let app = app_with_github(&fake).await;
    fake.issue_code("code-e", "whatever");
    for (cookie, query) in [
        ("fal_oauth=.verifier", "code=code-e&state="),
        ("fal_oauth=.verifier", "code=code-e"),
        ("fal_oauth=.", "code=code-e&state="),
        ("fal_oauth=state.", "code=code-e&state=state"),
    ] {
        let r = no_redirects()
            .get(format!("{}/auth/github/callback?{query}", app.url))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{cookie} {query}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "bad_oauth_state");
    }
    assert!(
        fake.state.lock().unwrap().redirect_uris.is_empty(),
        "GitHub was never asked"
    );
}

#[tokio::test]
async fn without_github_configured_sign_in_says_so_and_keys_still_work() {
    let app = spawn_app().await;
    let r = no_redirects()
        .get(format!("{}/auth/github/login", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "github_not_configured");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("--github-client-id")
    );
    let status: serde_json::Value = no_redirects()
        .get(format!("{}/auth/github", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["configured"], false);
    app.admin().current_user().await.unwrap();
}

#[tokio::test]
async fn the_sign_in_page_offers_github_only_when_configured() {
    let fake = FakeGithub::start();
    let with = app_with_github(&fake).await;
    let without = spawn_app().await;
    for (app, offered) in [(&with, true), (&without, false)] {
        let page = no_redirects()
            .get(format!("{}/dashboard/login", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["x-frame-options"], "DENY");
        let html = page.text().await.unwrap();
        assert_eq!(html.contains("href=\"/auth/github/login\""), offered);
        assert!(html.contains("Sign in with an ADMIN key"));
    }
}
