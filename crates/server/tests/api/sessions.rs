//! Where each credential works: a dashboard session only as the dashboard's
//! cookie, a CLI session only as `Authorization: Bearer`, and the cookie on
//! nothing but /dashboard pages. Also how sessions end: logout, a revoked
//! key, a reused refresh token, a user dropped from the allow-lists.

use std::sync::Arc;

use fal_core::{ManualClock, Timestamp};
use fal_server::github::GithubConfig;
use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::fake_github::{CLIENT_ID, CLIENT_SECRET, FakeGithub};
use crate::github_web::no_redirects;
use crate::helpers::{TestApp, spawn_app_with};

pub(crate) fn github_config(
    fake: &FakeGithub,
    users: &[&str],
    ids: &[i64],
    orgs: &[&str],
) -> GithubConfig {
    GithubConfig {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.to_owned().into(),
        url: fake.url.clone(),
        api_url: fake.url.clone(),
        allow_users: users.iter().map(|s| s.to_string()).collect(),
        allow_user_ids: ids.to_vec(),
        allow_orgs: orgs.iter().map(|s| s.to_string()).collect(),
    }
}

/// An app with GitHub sign-in, and the hand on its clock (the device flow's
/// polls are throttled by it).
pub struct GithubApp {
    app: TestApp,
    clock: Arc<ManualClock>,
}

impl std::ops::Deref for GithubApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl std::ops::DerefMut for GithubApp {
    fn deref_mut(&mut self) -> &mut TestApp {
        &mut self.app
    }
}

/// An app with the demo model and GitHub sign-in allowed by `config`.
pub(crate) async fn app_with(config: GithubConfig) -> GithubApp {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let app = spawn_app_with(
        move |c| {
            c.demo = true;
            c.github = Some(config);
        },
        clock.clone(),
    )
    .await;
    GithubApp { app, clock }
}

/// The value of the `name=` cookie in a response's `Set-Cookie` headers.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
}

/// Signs in to the dashboard with a key pair; returns the session cookie's
/// token.
pub async fn dashboard_sign_in(app: &TestApp, key_id: &str, secret: &str) -> String {
    let http = no_redirects();
    let page = http
        .get(format!("{}/dashboard/login", app.url))
        .send()
        .await
        .unwrap();
    let csrf = set_cookie(&page, "fal_csrf").expect("the sign-in form sets its CSRF cookie");
    let done = http
        .post(format!("{}/dashboard/login", app.url))
        .header(COOKIE, format!("fal_csrf={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("key_id", key_id),
            ("key_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303, "dashboard sign-in");
    set_cookie(&done, "fal_session").expect("a session cookie")
}

/// The CLI's device flow against the fake GitHub: access and refresh token.
pub async fn cli_sign_in(app: &GithubApp) -> (String, String) {
    let http = no_redirects();
    let start = http
        .post(format!("{}/auth/device", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 200);
    // The first poll may come one interval after the start.
    let interval = start.json::<Value>().await.unwrap()["interval"]
        .as_i64()
        .unwrap_or(5);
    app.clock.advance_millis(interval * 1000);
    let done = http
        .post(format!("{}/auth/device/token", app.url))
        .json(&json!({"device_code": "device-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    let v: Value = done.json().await.unwrap();
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// A request with only the session cookie; returns the status.
async fn with_cookie(app: &TestApp, method: Method, path: &str, token: &str) -> u16 {
    no_redirects()
        .request(method, format!("{}{path}", app.url))
        .header(COOKIE, format!("fal_session={token}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Whether the dashboard accepts this cookie (the keys page, not a
/// redirect to sign-in).
pub async fn dashboard_accepts(app: &TestApp, token: &str) -> bool {
    let r = no_redirects()
        .get(format!("{}/dashboard/keys", app.url))
        .header(COOKIE, format!("fal_session={token}"))
        .send()
        .await
        .unwrap();
    match r.status().as_u16() {
        200 => true,
        303 => {
            assert_eq!(r.headers()[LOCATION], "/dashboard/login");
            false
        }
        s => panic!("unexpected status {s} from /dashboard/keys"),
    }
}

#[tokio::test]
async fn a_dashboard_session_token_is_never_a_bearer_token() {
    let fake = FakeGithub::start();
    let app = app_with(github_config(&fake, &["octocat"], &[], &[])).await;
    let token = dashboard_sign_in(&app, &app.admin_id, &app.admin_secret).await;
    assert!(dashboard_accepts(&app, &token).await);
    let bearer = format!("Bearer {token}");
    let (status, _, body) = app
        .call(
            Method::POST,
            "/keys",
            Some(&bearer),
            Some(r#"{"scope":"ADMIN"}"#),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    for path in ["/keys", "/users/current", "/auth/verify"] {
        let (status, _, _) = app.call(Method::GET, path, Some(&bearer), None).await;
        assert_eq!(status, 401, "{path}");
    }
    // The only key is still the bootstrap one.
    assert_eq!(app.admin().list_all_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_cli_access_token_is_never_a_dashboard_cookie() {
    let fake = FakeGithub::start();
    let app = app_with(github_config(&fake, &["octocat"], &[], &[])).await;
    let (access, _) = cli_sign_in(&app).await;
    let (status, _, _) = app
        .call(
            Method::GET,
            "/users/current",
            Some(&format!("Bearer {access}")),
            None,
        )
        .await;
    assert_eq!(status, 200, "the bearer token works where it was issued");
    assert!(!dashboard_accepts(&app, &access).await);
}

#[tokio::test]
async fn the_session_cookie_alone_authenticates_no_api_call_and_no_model_call() {
    let fake = FakeGithub::start();
    let app = app_with(github_config(&fake, &["octocat"], &[], &[])).await;
    let token = dashboard_sign_in(&app, &app.admin_id, &app.admin_secret).await;
    for (method, path) in [
        (Method::GET, "/run/fal-ai/echo"),
        (Method::HEAD, "/run/fal-ai/echo"),
        (Method::OPTIONS, "/run/fal-ai/echo"),
        (Method::GET, "/run/fal-ai/echo/sub/path"),
        (Method::POST, "/run/fal-ai/echo"),
        (Method::GET, "/auth/verify"),
        (Method::HEAD, "/auth/verify"),
        (Method::GET, "/keys"),
        (Method::GET, "/users/current"),
        (Method::GET, "/apps"),
    ] {
        assert_eq!(
            with_cookie(&app, method.clone(), path, &token).await,
            401,
            "{method} {path} with only the dashboard cookie"
        );
    }
    assert!(
        dashboard_accepts(&app, &token).await,
        "the dashboard still reads it"
    );
}

#[tokio::test]
async fn api_logout_with_only_the_cookie_is_refused_and_clears_nothing() {
    let fake = FakeGithub::start();
    let app = app_with(github_config(&fake, &["octocat"], &[], &[])).await;
    let token = dashboard_sign_in(&app, &app.admin_id, &app.admin_secret).await;
    let r = no_redirects()
        .post(format!("{}/auth/logout", app.url))
        .header(COOKIE, format!("fal_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers().get(SET_COOKIE).is_none(),
        "a refused logout must not clear the cookie while the session lives"
    );
    assert!(dashboard_accepts(&app, &token).await);
    // The CLI's logout (bearer) still ends its session.
    let (access, refresh) = cli_sign_in(&app).await;
    let bearer = format!("Bearer {access}");
    let (status, _, _) = app
        .call(
            Method::POST,
            "/auth/logout",
            Some(&bearer),
            Some(&json!({ "refresh_token": refresh }).to_string()),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .call(Method::GET, "/users/current", Some(&bearer), None)
        .await;
    assert_eq!(status, 401);
}

/// `POST /auth/refresh`; returns the status, `Retry-After` and the body.
async fn refresh(app: &TestApp, token: &str) -> (u16, Option<String>, Value) {
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/auth/refresh",
            None,
            Some(&json!({ "refresh_token": token }).to_string()),
        )
        .await;
    let retry = headers
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, body)
}

async fn bearer_works(app: &TestApp, access: &str) -> bool {
    let (status, _, _) = app
        .call(
            Method::GET,
            "/users/current",
            Some(&format!("Bearer {access}")),
            None,
        )
        .await;
    assert!(status == 200 || status == 401, "{status}");
    status == 200
}

fn pair(v: &Value) -> (String, String) {
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn revoking_a_key_ends_the_dashboard_sessions_opened_with_it() {
    let fake = FakeGithub::start();
    let app = app_with(github_config(&fake, &["octocat"], &[], &[])).await;
    let k = app.admin().create_key("ADMIN", "to revoke").await.unwrap();
    let with_k = dashboard_sign_in(&app, &k.key_id, &k.key_secret).await;
    let with_bootstrap = dashboard_sign_in(&app, &app.admin_id, &app.admin_secret).await;
    assert!(dashboard_accepts(&app, &with_k).await);
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/keys/{}", k.key_id),
            Some(&app.admin_auth()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        !dashboard_accepts(&app, &with_k).await,
        "the session opened with the revoked key ended with it"
    );
    let generate = no_redirects()
        .post(format!("{}/dashboard/keys", app.url))
        .header(COOKIE, format!("fal_session={with_k}"))
        .form(&[("csrf", "x"), ("scope", "ADMIN"), ("alias", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(generate.status(), 303);
    assert_eq!(generate.headers()[LOCATION], "/dashboard/login");
    assert_eq!(app.admin().list_all_keys().await.unwrap().len(), 1);
    assert!(
        dashboard_accepts(&app, &with_bootstrap).await,
        "a session opened with another key lives on"
    );
}

#[tokio::test]
async fn a_replayed_refresh_token_ends_the_whole_session() {
    let fake = FakeGithub::start();
    let app = app_with(github_config(&fake, &["octocat"], &[], &[])).await;
    let (_, first_refresh) = cli_sign_in(&app).await;
    let (status, _, body) = refresh(&app, &first_refresh).await;
    assert_eq!(status, 200, "{body}");
    let (access, second_refresh) = pair(&body);
    assert!(bearer_works(&app, &access).await);
    // Someone replays the spent token: refused, and the session is over.
    let (status, _, body) = refresh(&app, &first_refresh).await;
    assert_eq!(status, 401, "{body}");
    assert!(!bearer_works(&app, &access).await, "the new access token");
    let (status, _, _) = refresh(&app, &second_refresh).await;
    assert_eq!(status, 401, "the new refresh token");
}

#[tokio::test]
async fn refresh_rechecks_org_membership_and_ends_the_session_of_a_member_removed() {
    let fake = FakeGithub::start();
    fake.set_orgs(&["acme"]);
    let app = app_with(github_config(&fake, &[], &[], &["acme"])).await;
    let (_, r) = cli_sign_in(&app).await;
    let (status, _, body) = refresh(&app, &r).await;
    assert_eq!(status, 200, "{body}");
    let (access, r) = pair(&body);
    fake.set_orgs(&["elsewhere"]);
    let (status, _, body) = refresh(&app, &r).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "access_withdrawn");
    assert!(!bearer_works(&app, &access).await, "the session ended");
    fake.set_orgs(&["acme"]);
    let (status, _, _) = refresh(&app, &r).await;
    assert_eq!(status, 401, "an ended session stays ended");
}

#[tokio::test]
async fn refresh_rechecks_the_login_list() {
    let fake = FakeGithub::start();
    let app = app_with(github_config(&fake, &["octocat"], &[], &[])).await;
    let (access, r) = cli_sign_in(&app).await;
    // The login changes hands: the session of the id that gave it up ends.
    fake.set_user(583231, "octo-renamed", "The Octocat");
    let (status, _, body) = refresh(&app, &r).await;
    assert_eq!(status, 401, "{body}");
    assert!(!bearer_works(&app, &access).await);
}

#[tokio::test]
async fn refresh_answers_503_and_keeps_the_session_when_github_is_down() {
    let fake = FakeGithub::start();
    fake.set_orgs(&["acme"]);
    let app = app_with(github_config(&fake, &[], &[], &["acme"])).await;
    let (access, r) = cli_sign_in(&app).await;
    fake.set_down(true);
    let (status, retry, body) = refresh(&app, &r).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "github_unavailable");
    assert!(retry.is_some(), "503 says when to retry");
    assert!(bearer_works(&app, &access).await, "the session lives");
    fake.set_down(false);
    let (status, _, body) = refresh(&app, &r).await;
    assert_eq!(status, 200, "the same refresh token works on retry: {body}");
}

#[tokio::test]
async fn the_allow_list_takes_numeric_ids_which_follow_the_account_not_the_login() {
    let fake = FakeGithub::start();
    let app = app_with(github_config(&fake, &[], &[583231], &[])).await;
    let (_, r) = cli_sign_in(&app).await;
    // A rename keeps access: the id is what is allowed.
    fake.set_user(583231, "octo-renamed", "The Octocat");
    let (status, _, body) = refresh(&app, &r).await;
    assert_eq!(status, 200, "{body}");
    // Another account that took the login "octocat" is not let in.
    fake.set_user(999_999, "octocat", "Not The Octocat");
    let http = no_redirects();
    http.post(format!("{}/auth/device", app.url))
        .send()
        .await
        .unwrap();
    app.clock.advance_millis(60_000);
    let done = http
        .post(format!("{}/auth/device/token", app.url))
        .json(&json!({"device_code": "device-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 403);
    let body: Value = done.json().await.unwrap();
    assert_eq!(body["code"], "not_allowed");
}
