//! The audit log (issue 16): every key, app and session action records
//! its event with actor, client address and user agent; `GET /audit`
//! shows a user their own events only, to ADMIN callers; retention prunes
//! by the injected clock. Sign-ins, sign-outs and the proof that no
//! secret reaches an event are in `audit_sessions.rs`, with these helpers.

use std::sync::Arc;

use fal_core::{ManualClock, OsRandom, Scope, Timestamp};
use fal_server::App;
use reqwest::Method;
use reqwest::header::{COOKIE, USER_AGENT};
use serde_json::{Value, json};

use crate::fake_github::FakeGithub;
use crate::github_web::{app_with_github_and, no_redirects};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// The user agent the tests' requests send.
pub(crate) const AGENT: &str = "audit-test/1.0 (probe)";

/// A request with [`AGENT`]; returns status and JSON (Null if none).
pub(crate) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: &str,
    body: Option<Value>,
    forwarded: Option<&str>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.url))
        .header(USER_AGENT, AGENT);
    if !auth.is_empty() {
        req = req.header("authorization", auth);
    }
    if let Some(f) = forwarded {
        req = req.header("x-forwarded-for", f);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The caller's events (`query` after `/audit?`), newest first.
pub(crate) async fn events(app: &TestApp, auth: &str, query: &str) -> Vec<Value> {
    let (status, body) = send(
        app,
        Method::GET,
        &format!("/audit?{query}"),
        auth,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

pub(crate) fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// A server signing in with `fake` (web flow and device flow), on a
/// clock the test moves.
pub(crate) async fn github_app(fake: &FakeGithub) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    (
        app_with_github_and(fake, |_| {}, clock.clone()).await,
        clock,
    )
}

/// The CLI's device flow (sending [`AGENT`]): access and refresh token.
pub(crate) async fn cli_sign_in(app: &TestApp, clock: &ManualClock) -> (String, String) {
    let (status, start) = send(app, Method::POST, "/auth/device", "", None, None).await;
    assert_eq!(status, 200, "{start}");
    clock.advance_millis(start["interval"].as_i64().unwrap_or(5) * 1000);
    let body = Some(json!({"device_code": crate::fake_github::DEVICE_CODE}));
    let (status, done) = send(app, Method::POST, "/auth/device/token", "", body, None).await;
    assert_eq!(status, 200, "{done}");
    let token = |name: &str| done[name].as_str().unwrap().to_owned();
    (token("access_token"), token("refresh_token"))
}

/// Signs in to the dashboard with a key pair (sending [`AGENT`]); returns
/// the status and the session cookie's token, if one was set.
pub(crate) async fn dashboard_sign_in(
    app: &TestApp,
    key_id: &str,
    secret: &str,
) -> (u16, Option<String>) {
    let http = no_redirects();
    let page = http
        .get(format!("{}/dashboard/login", app.url))
        .send()
        .await
        .unwrap();
    let csrf = cookie_value(&page, "fal_csrf").unwrap();
    let done = http
        .post(format!("{}/dashboard/login", app.url))
        .header(COOKIE, format!("fal_csrf={csrf}"))
        .header(USER_AGENT, AGENT)
        .form(&[
            ("csrf", csrf.as_str()),
            ("key_id", key_id),
            ("key_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    (done.status().as_u16(), cookie_value(&done, "fal_session"))
}

pub(crate) fn cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
        .filter(|c| !c.is_empty())
}

/// The dashboard's CSRF token for the session `token` (from the keys page).
pub(crate) async fn page_csrf(app: &TestApp, token: &str) -> String {
    let html = no_redirects()
        .get(format!("{}/dashboard/keys", app.url))
        .header(COOKIE, format!("fal_session={token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// Posts a dashboard form with the session's CSRF token and [`AGENT`].
pub(crate) async fn dashboard_post(
    app: &TestApp,
    token: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> u16 {
    let csrf = page_csrf(app, token).await;
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    no_redirects()
        .post(format!("{}{path}", app.url))
        .header(COOKIE, format!("fal_session={token}"))
        .header(USER_AGENT, AGENT)
        .form(&form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn key_and_app_actions_record_their_events_with_actor_address_and_agent() {
    let app = spawn_app().await;
    let auth = app.admin_auth();
    let body = json!({"scope": "API", "alias": "ci"});
    let (status, made) = send(&app, Method::POST, "/keys", &auth, Some(body), None).await;
    assert_eq!(status, 201);
    let id = made["key_id"].as_str().unwrap().to_owned();
    let path = format!("/keys/{id}");
    assert_eq!(
        send(&app, Method::DELETE, &path, &auth, None, None).await.0,
        204
    );
    // Revoking it again changes nothing and records nothing.
    assert_eq!(
        send(&app, Method::DELETE, &path, &auth, None, None).await.0,
        204
    );
    let body = json!({"owner": "admin", "name": "echo2", "upstream": "http://93.184.215.14:9"});
    assert_eq!(
        send(&app, Method::POST, "/apps", &auth, Some(body), None)
            .await
            .0,
        201
    );
    let path = "/apps/admin/echo2";
    assert_eq!(
        send(&app, Method::DELETE, path, &auth, None, None).await.0,
        204
    );

    let all = events(&app, &auth, "").await;
    let want = ["app.removed", "app.added", "key.revoked", "key.generated"];
    assert_eq!(kinds(&all), want);
    for e in &all {
        assert_eq!(e["actor"]["key_id"], app.admin_id.as_str(), "{e}");
        assert_eq!(e["source"], "127.0.0.1", "{e}");
        assert_eq!(e["user_agent"], AGENT, "{e}");
    }
    let (generated, removed) = (&all[3], &all[0]);
    assert_eq!(generated["key_id"], id.as_str());
    assert_eq!(generated["detail"], json!({"scope": "API", "alias": "ci"}));
    assert_eq!(removed["app"], "admin/echo2");
    assert_eq!(removed["object"], "app admin/echo2");

    // Filters, and pages that follow the cursor.
    assert_eq!(
        kinds(&events(&app, &auth, "kind=key.revoked").await),
        ["key.revoked"]
    );
    let by_key = events(&app, &auth, &format!("key_id={id}")).await;
    assert_eq!(kinds(&by_key), ["key.revoked", "key.generated"]);
    let (status, body) = send(
        &app,
        Method::GET,
        "/audit?kind=key.stolen",
        &auth,
        None,
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("key.generated"),
        "{body}"
    );
    let mut paged = Vec::new();
    let mut query = "limit=1".to_owned();
    loop {
        let (_, page) = send(
            &app,
            Method::GET,
            &format!("/audit?{query}"),
            &auth,
            None,
            None,
        )
        .await;
        paged.extend(page["events"].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, all);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_source_is_the_forwarded_client() {
    let proxies = vec!["127.0.0.1".parse().unwrap()];
    let app = spawn_app_with(
        |c| c.throttle.trusted_proxies = fal_server::throttle::TrustedProxies::new(proxies),
        Arc::new(fal_core::SystemClock),
    )
    .await;
    let auth = app.admin_auth();
    let body = Some(json!({"scope": "API"}));
    let (status, _) = send(
        &app,
        Method::POST,
        "/keys",
        &auth,
        body,
        Some("203.0.113.9"),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(events(&app, &auth, "").await[0]["source"], "203.0.113.9");
}

#[tokio::test]
async fn another_users_events_are_invisible() {
    let app = spawn_app().await;
    let mallory = app.github_user_auth("mallory", 77, Scope::Admin).await;
    let body = Some(json!({"scope": "API", "alias": "admins"}));
    let admin = app.admin_auth();
    assert_eq!(
        send(&app, Method::POST, "/keys", &admin, body, None)
            .await
            .0,
        201
    );
    let id = events(&app, &admin, "").await[0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(events(&app, &mallory, "").await.is_empty());
    assert!(
        events(&app, &mallory, &format!("key_id={id}"))
            .await
            .is_empty()
    );
    // Nor does revoking someone else's key record anything anywhere.
    let path = format!("/keys/{id}");
    assert_eq!(
        send(&app, Method::DELETE, &path, &mallory, None, None)
            .await
            .0,
        404
    );
    assert!(events(&app, &mallory, "").await.is_empty());
    assert_eq!(kinds(&events(&app, &admin, "").await), ["key.generated"]);
}

#[tokio::test]
async fn retention_prunes_events_past_it_when_the_clock_moves() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::config(dir.path());
    config.audit_retention = std::time::Duration::from_secs(3600);
    let mut built = App::build(config, clock.clone(), Arc::new(OsRandom))
        .await
        .unwrap();
    let key = built.take_bootstrap_key().unwrap();
    let audit = built.audit();
    let server = built.spawn().await.unwrap();
    let auth = format!("Key {}:{}", key.key_id, key.secret.expose());
    let http = fal_client::http_client();
    let keys = format!("{}/keys", server.url());
    let made = http
        .post(&keys)
        .header("authorization", &auth)
        .json(&json!({"scope": "API"}));
    assert_eq!(made.send().await.unwrap().status(), 201);
    clock.advance_millis(59 * 60 * 1000);
    let made = http
        .post(&keys)
        .header("authorization", &auth)
        .json(&json!({"scope": "API"}));
    assert_eq!(made.send().await.unwrap().status(), 201);
    assert_eq!(audit.prune().await.unwrap(), 0, "both are within the hour");
    clock.advance_millis(2 * 60 * 1000);
    assert_eq!(audit.prune().await.unwrap(), 1, "the first is past it");
    let listed: Value = http
        .get(format!("{}/audit", server.url()))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn disabling_a_user_records_each_key_it_revoked_in_their_log() {
    let app = spawn_app().await;
    let mallory = app.github_user_auth("mallory", 77, Scope::Admin).await;
    let (status, me) = send(&app, Method::GET, "/users/current", &mallory, None, None).await;
    assert_eq!(status, 200);
    let key_id = me["credential"]["key_id"].as_str().unwrap().to_owned();
    let user_id = fal_core::UserId::from_stored(me["user_id"].as_str().unwrap().to_owned());
    let path = "/admin/users/mallory/disable";
    let (status, body) = send(&app, Method::POST, path, &app.admin_auth(), None, None).await;
    assert_eq!(status, 200, "{body}");
    let store = app.store().await;
    let page = fal_store::AuditStore::list_audit(&store, &user_id, &Default::default(), 10, None)
        .await
        .unwrap();
    store.close().await;
    let events: Vec<_> = page.events.iter().map(|e| &e.event).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, fal_core::AuditKind::KeyRevoked);
    assert_eq!(events[0].key_id.map(|k| k.to_string()), Some(key_id));
    assert_eq!(events[0].detail["reason"], "user_disabled");
    let operator_key = events[0].actor.key_id.map(|k| k.to_string());
    assert_eq!(operator_key.as_deref(), Some(app.admin_id.as_str()));
    assert_eq!(
        events[0].user_agent.as_ref().map(|u| u.as_str()),
        Some(AGENT)
    );
}
