//! Operators disable users (issue 12, finding 6): all their keys and
//! sessions stop at once, and they cannot sign in with GitHub again.

use std::sync::Arc;

use fal_core::Scope;
use reqwest::Method;
use reqwest::header::SET_COOKIE;

use crate::fake_github::FakeGithub;
use crate::github_web::app_with_github_and;
use crate::helpers::TestApp;
use crate::sessions::dashboard_accepts;

async fn app_with_github(fake: &FakeGithub, operators: &[&str]) -> TestApp {
    let operators: Vec<String> = operators.iter().map(|s| s.to_string()).collect();
    app_with_github_and(
        fake,
        move |c| c.operators = operators,
        Arc::new(fal_core::SystemClock),
    )
    .await
}

/// The web flow; returns the callback's status and the session token, if any.
async fn sign_in(app: &TestApp, fake: &FakeGithub) -> (u16, Option<String>) {
    let done = crate::github_web::sign_in(app, fake, false).await;
    let session = done
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next()?.strip_prefix("fal_session="))
        .find(|t| !t.is_empty())
        .map(str::to_owned);
    (done.status().as_u16(), session)
}

#[tokio::test]
async fn a_disabled_user_loses_keys_and_sessions_at_once_and_cannot_sign_in_again() {
    let fake = FakeGithub::start();
    let app = app_with_github(&fake, &[]).await;
    let admin = app.admin_auth();
    let (status, cookie) = sign_in(&app, &fake).await;
    assert_eq!(status, 303);
    let cookie = cookie.expect("a session token");
    assert!(dashboard_accepts(&app, &cookie).await);
    let (_, _, list) = app
        .call(Method::GET, "/admin/users", Some(&admin), None)
        .await;
    let octocat_id = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["login"] == "octocat")
        .map(|u| u["user_id"].as_str().unwrap().to_owned())
        .unwrap();
    let key = app.key_for(&octocat_id, Scope::Admin).await;
    // In use, so cached by the verifier.
    let (status, _, _) = app
        .call(Method::GET, "/users/current", Some(&key), None)
        .await;
    assert_eq!(status, 200);

    // Only operators administer users.
    for (method, path) in [
        (Method::GET, "/admin/users"),
        (Method::POST, "/admin/users/admin/disable"),
    ] {
        let (status, _, resp) = app.call(method, path, Some(&key), None).await;
        assert_eq!(status, 403, "{path}: {resp}");
        assert_eq!(resp["code"], "not_operator");
    }
    let (status, _, list) = app
        .call(Method::GET, "/admin/users", Some(&admin), None)
        .await;
    assert_eq!(status, 200);
    let octo = |list: &serde_json::Value| {
        list["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["login"] == "octocat")
            .cloned()
            .unwrap()
    };
    assert_eq!(octo(&list)["active_keys"], 1);
    assert!(octo(&list)["disabled_at"].is_null());

    let (status, _, done) = app
        .call(
            Method::POST,
            "/admin/users/octocat/disable",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["revoked_keys"], 1);
    assert_eq!(done["revoked_sessions"], 1);

    // At once: the cached key and the session are refused.
    let (status, _, _) = app
        .call(Method::GET, "/users/current", Some(&key), None)
        .await;
    assert_eq!(status, 401);
    assert!(!dashboard_accepts(&app, &cookie).await);
    // And GitHub sign-in no longer lets them in.
    let (status, session) = sign_in(&app, &fake).await;
    assert_eq!(status, 403);
    assert!(session.is_none(), "{session:?}");
    let (_, _, list) = app
        .call(Method::GET, "/admin/users", Some(&admin), None)
        .await;
    assert_eq!(octo(&list)["active_keys"], 0);
    assert!(octo(&list)["disabled_at"].is_string());
}

#[tokio::test]
async fn operators_cannot_disable_the_bootstrap_user_or_themselves() {
    let fake = FakeGithub::start();
    let app = app_with_github(&fake, &["carol"]).await;
    let carol = app.github_user_auth("carol", 103, Scope::Admin).await;
    for (who, path, needle) in [
        (&carol, "/admin/users/admin/disable", "bootstrap"),
        (&carol, "/admin/users/carol/disable", "yourself"),
        (&app.admin_auth(), "/admin/users/admin/disable", "bootstrap"),
    ] {
        let (status, _, resp) = app.call(Method::POST, path, Some(who), None).await;
        assert_eq!(status, 409, "{path}: {resp}");
        assert!(resp["detail"].as_str().unwrap().contains(needle), "{resp}");
    }
    let (status, _, _) = app
        .call(
            Method::POST,
            "/admin/users/nobody/disable",
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // An operator disables another operator; that one stops being one.
    let (id, secret) = app.user_key("dave", Some(104), Scope::Admin).await;
    let dave = format!("Key {id}:{secret}");
    let (status, _, _) = app
        .call(
            Method::POST,
            "/admin/users/dave/disable",
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .call(Method::GET, "/admin/users", Some(&dave), None)
        .await;
    assert_eq!(status, 401);
}
