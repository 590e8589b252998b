//! Key expiry and roll: keys created with an expiry and listed with it;
//! an expired, revoked or rolled key refused on `/run` (both forwarding
//! paths), `/queue`, the REST API and through the tokens it minted, with
//! its reason told only to the holder of its right secret; rolls with and
//! without grace, twice, and the ones refused; a dashboard session that
//! ends when its ADMIN key expires. The clock is moved, never slept on.

use std::sync::Arc;

use fal_core::{ManualClock, Scope, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

const START: i64 = 1_800_000_000_000;
pub(crate) const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

pub(crate) async fn demo(hand_path: bool) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp(START)));
    let app = spawn_app_with(
        |c| {
            c.demo = true;
            c.hand_path = hand_path;
        },
        clock.clone(),
    )
    .await;
    (app, clock)
}

fn at(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

/// `POST /keys` as the admin with `body`: status and JSON.
async fn create(app: &TestApp, body: Value) -> (u16, Value) {
    let auth = app.admin_auth();
    let (status, _, v) = app
        .call(Method::POST, "/keys", Some(&auth), Some(&body.to_string()))
        .await;
    (status, v)
}

/// A new key's `Key id:secret` header, and its id.
pub(crate) async fn key(app: &TestApp, body: Value) -> (String, String) {
    let (status, v) = create(app, body).await;
    assert_eq!(status, 201, "{v}");
    (
        format!("Key {}", v["key"].as_str().unwrap()),
        v["key_id"].as_str().unwrap().to_owned(),
    )
}

/// The same id with a wrong (well-formed) secret.
pub(crate) fn wrong_secret(id: &str) -> String {
    format!("Key {id}:fal_sk_{}", "0".repeat(64) + "00000000")
}

pub(crate) async fn run(app: &TestApp, auth: &str) -> (u16, Value) {
    let (status, _, v) = app
        .call(Method::POST, "/run/fal-ai/echo", Some(auth), Some("{}"))
        .await;
    (status, v)
}

pub(crate) async fn roll(app: &TestApp, id: &str, body: Option<&str>) -> (u16, Value) {
    let auth = app.admin_auth();
    let (status, _, v) = app
        .call(Method::POST, &format!("/keys/{id}/roll"), Some(&auth), body)
        .await;
    (status, v)
}

/// The key `id` as `GET /keys` lists it.
async fn listed(app: &TestApp, id: &str) -> Value {
    let auth = app.admin_auth();
    let (_, _, v) = app.call(Method::GET, "/keys", Some(&auth), None).await;
    let keys = v["keys"].as_array().unwrap();
    keys.iter()
        .find(|k| k["key_id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_key_is_made_with_an_expiry_listed_with_it_and_a_bad_one_is_a_422() {
    let (app, _clock) = demo(false).await;
    let (status, v) = create(&app, json!({"scope": "API", "expires_in": "30d"})).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["expires_at"], at(START + 30 * DAY));
    assert_eq!(v["expires_in"], "30d");
    let life = v["key_id"].as_str().unwrap().to_owned();
    let date = "2027-01-15T12:00:00Z";
    let (status, v) = create(&app, json!({"scope": "ADMIN", "expires_at": date})).await;
    assert_eq!(status, 201, "{v}");
    let dated = v["key_id"].as_str().unwrap().to_owned();
    assert_eq!(
        listed(&app, &life).await["expires_at"],
        at(START + 30 * DAY)
    );
    assert_eq!(listed(&app, &life).await["expires_in"], "30d");
    assert_eq!(
        listed(&app, &dated).await["expires_at"],
        "2027-01-15T12:00:00.000Z"
    );
    assert_eq!(listed(&app, &dated).await["expires_in"], Value::Null);
    assert_eq!(listed(&app, &app.admin_id).await["expires_at"], Value::Null);

    for (body, says) in [
        (
            json!({"scope": "API", "expires_at": date, "expires_in": "1d"}),
            "not both",
        ),
        (
            json!({"scope": "API", "expires_at": at(START)}),
            "not in the future",
        ),
        (
            json!({"scope": "API", "expires_at": "2020-01-01T00:00:00Z"}),
            "later date",
        ),
        (
            json!({"scope": "API", "expires_at": "next week"}),
            "RFC 3339",
        ),
        (json!({"scope": "API", "expires_in": "30 days"}), "30d"),
        (json!({"scope": "API", "expires_in": "0"}), "more than 0"),
    ] {
        let (status, v) = create(&app, body.clone()).await;
        assert_eq!(status, 422, "{body}: {v}");
        assert_eq!(v["code"], "invalid_value");
        assert!(v["detail"].as_str().unwrap().contains(says), "{body}: {v}");
    }
}

#[tokio::test]
async fn an_expired_key_is_refused_everywhere_and_only_its_secret_learns_why() {
    for hand_path in [true, false] {
        let (app, clock) = demo(hand_path).await;
        let (api, api_id) = key(&app, json!({"scope": "API", "expires_in": "1h"})).await;
        let (admin, admin_id) = key(&app, json!({"scope": "ADMIN", "expires_in": "1h"})).await;
        assert_eq!(run(&app, &api).await.0, 200, "hand path {hand_path}");
        let (status, _, _) = app.call(Method::GET, "/keys", Some(&admin), None).await;
        assert_eq!(status, 200);

        clock.advance_millis(HOUR - 1);
        assert_eq!(run(&app, &api).await.0, 200, "a millisecond before");
        // A token minted now outlives its key by two minutes.
        let (status, _, token) = app
            .call(
                Method::POST,
                "/tokens/",
                Some(&api),
                Some(r#"{"allowed_apps":["fal-ai/echo"]}"#),
            )
            .await;
        assert_eq!(status, 201, "{token}");
        let bearer = format!("Bearer {}", token.as_str().unwrap());
        assert_eq!(run(&app, &bearer).await.0, 200);
        clock.advance_millis(1);
        let unknown = run(&app, &wrong_secret(&uuid_like())).await;
        assert_eq!(unknown.0, 401);
        let (status, v) = run(&app, &api).await;
        assert_eq!((status, &v["code"]), (401, &json!("key_expired")), "{v}");
        assert!(
            v["detail"].as_str().unwrap().contains(&at(START + HOUR)),
            "{v}"
        );
        // Without the right secret: the body of an unknown id.
        assert_eq!(run(&app, &wrong_secret(&api_id)).await, unknown);
        // The token it minted (still unexpired itself) dies with it.
        let (status, v) = run(&app, &bearer).await;
        assert_eq!((status, &v["code"]), (401, &json!("key_expired")), "{v}");
        // The queue.
        let (status, _, v) = app
            .call(Method::POST, "/queue/fal-ai/echo", Some(&api), Some("{}"))
            .await;
        assert_eq!((status, &v["code"]), (401, &json!("key_expired")), "{v}");
        // The REST API, with an ADMIN key.
        let (status, _, v) = app.call(Method::GET, "/keys", Some(&admin), None).await;
        assert_eq!((status, &v["code"]), (401, &json!("key_expired")), "{v}");
        let (status, _, v) = app
            .call(Method::GET, "/keys", Some(&wrong_secret(&admin_id)), None)
            .await;
        assert_eq!((status, v), (401, unknown.1.clone()));
    }
}

fn uuid_like() -> String {
    fal_core::KeyId::generate(&fal_core::OsRandom)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_revoked_key_says_so_only_to_its_right_secret() {
    let (app, _clock) = demo(true).await;
    let (api, id) = key(&app, json!({"scope": "API"})).await;
    app.admin().revoke_key(&id).await.unwrap();
    let (status, v) = run(&app, &api).await;
    assert_eq!((status, &v["code"]), (401, &json!("key_revoked")), "{v}");
    let unknown = run(&app, &wrong_secret(&uuid_like())).await;
    assert_eq!(run(&app, &wrong_secret(&id)).await, unknown);
    assert_ne!(unknown.1["code"], "key_revoked");
}

#[tokio::test]
async fn a_roll_makes_a_like_key_and_the_old_stops_at_once_or_after_its_grace() {
    let (app, clock) = demo(true).await;
    let (old, old_id) = key(
        &app,
        json!({"scope": "API", "alias": "deploy", "rate_limit": "100/min", "expires_in": "30d"}),
    )
    .await;
    clock.advance_millis(DAY);
    // Without grace: the old pair stops at once.
    let (status, v) = roll(&app, &old_id, None).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["old_key_id"], old_id.as_str());
    assert_eq!(v["old_expires_at"], at(START + DAY));
    assert_eq!(
        (&v["alias"], &v["scope"], &v["rate_limit"]),
        (&json!("deploy"), &json!("API"), &json!("100/min"))
    );
    assert_eq!(
        v["expires_at"],
        at(START + DAY + 30 * DAY),
        "the same lifetime from now"
    );
    let new = format!("Key {}", v["key"].as_str().unwrap());
    let new_id = v["key_id"].as_str().unwrap().to_owned();
    assert_eq!(run(&app, &new).await.0, 200);
    let (status, v) = run(&app, &old).await;
    assert_eq!((status, &v["code"]), (401, &json!("key_rolled")), "{v}");
    assert_eq!(listed(&app, &old_id).await["rolled_to"], new_id.as_str());

    // With a grace of an hour: the old pair works until it ends.
    let (status, v) = roll(&app, &new_id, Some(r#"{"grace":"1h"}"#)).await;
    assert_eq!(status, 201, "{v}");
    let third = format!("Key {}", v["key"].as_str().unwrap());
    let third_id = v["key_id"].as_str().unwrap().to_owned();
    assert_eq!(v["old_expires_at"], at(START + DAY + HOUR));
    clock.advance_millis(30 * 60_000);
    assert_eq!(run(&app, &new).await.0, 200, "within the grace");
    assert_eq!(run(&app, &third).await.0, 200);
    // Rolled again within that grace: the second pair keeps its deadline.
    let (status, v) = roll(&app, &third_id, Some(r#"{"grace":"7d"}"#)).await;
    assert_eq!(status, 201, "{v}");
    let fourth = format!("Key {}", v["key"].as_str().unwrap());
    assert_eq!(
        listed(&app, &new_id).await["expires_at"],
        at(START + DAY + HOUR)
    );
    assert_eq!(listed(&app, &old_id).await["expires_at"], at(START + DAY));
    clock.advance_millis(30 * 60_000);
    let (status, v) = run(&app, &new).await;
    assert_eq!((status, &v["code"]), (401, &json!("key_rolled")), "{v}");
    assert_eq!(run(&app, &third).await.0, 200, "its own grace is a week");
    assert_eq!(run(&app, &fourth).await.0, 200);
}

#[tokio::test]
async fn rolls_of_dead_unknown_or_rolled_keys_and_too_long_graces_are_refused() {
    let (app, clock) = demo(true).await;
    let (_, revoked) = key(&app, json!({"scope": "API"})).await;
    app.admin().revoke_key(&revoked).await.unwrap();
    let (_, expiring) = key(&app, json!({"scope": "API", "expires_in": "1h"})).await;
    let (_, live) = key(&app, json!({"scope": "API"})).await;
    for (grace, says) in [
        (r#"{"grace":"8d"}"#, "at most 7d"),
        (r#"{"grace":"soon"}"#, "whole number"),
        (r#"{"wait":"1h"}"#, "grace"),
    ] {
        let (status, v) = roll(&app, &live, Some(grace)).await;
        assert_eq!(status, 422, "{grace}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{grace}: {v}");
    }
    let (status, v) = roll(&app, &revoked, None).await;
    assert_eq!((status, &v["code"]), (409, &json!("key_revoked")), "{v}");
    assert_eq!(roll(&app, &uuid_like(), None).await.0, 404);
    clock.advance_millis(HOUR);
    let (status, v) = roll(&app, &expiring, None).await;
    assert_eq!((status, &v["code"]), (409, &json!("key_expired")), "{v}");
    assert_eq!(roll(&app, &live, None).await.0, 201);
    let (status, v) = roll(&app, &live, None).await;
    assert_eq!((status, &v["code"]), (409, &json!("key_rolled")), "{v}");
    // Only an ADMIN caller rolls, even its own API key.
    let (api, api_id) = key(&app, json!({"scope": "API"})).await;
    let (status, _, v) = app
        .call(
            Method::POST,
            &format!("/keys/{api_id}/roll"),
            Some(&api),
            None,
        )
        .await;
    assert_eq!(status, 403, "{v}");
    // Another user's key is not found.
    let (other, _) = app.other_user_key(Scope::Admin).await;
    assert_eq!(roll(&app, &other, None).await.0, 404);
}

#[tokio::test]
async fn a_dashboard_session_ends_when_its_admin_key_expires_or_its_grace_does() {
    let (app, clock) = demo(true).await;
    let http = crate::github_web::no_redirects();
    let page = |cookie: String| {
        let (http, url) = (http.clone(), app.url.clone());
        async move {
            let r = http
                .get(format!("{url}/dashboard/keys"))
                .header(reqwest::header::COOKIE, cookie)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    };
    let (status, v) = create(&app, json!({"scope": "ADMIN", "expires_in": "2h"})).await;
    assert_eq!(status, 201);
    let (id, secret) = (
        v["key_id"].as_str().unwrap(),
        v["key_secret"].as_str().unwrap(),
    );
    let expiring = format!(
        "fal_session={}",
        crate::sessions::dashboard_sign_in(&app, id, secret).await
    );
    let (status, v) = create(&app, json!({"scope": "ADMIN"})).await;
    assert_eq!(status, 201);
    let (rid, rsecret) = (
        v["key_id"].as_str().unwrap(),
        v["key_secret"].as_str().unwrap(),
    );
    let rolled = format!(
        "fal_session={}",
        crate::sessions::dashboard_sign_in(&app, rid, rsecret).await
    );
    assert_eq!(page(expiring.clone()).await, 200);
    assert_eq!(roll(&app, rid, Some(r#"{"grace":"1h"}"#)).await.0, 201);
    clock.advance_millis(HOUR - 1);
    assert_eq!(page(rolled.clone()).await, 200, "within the grace");
    clock.advance_millis(1);
    assert_eq!(page(rolled).await, 303, "ended with the old pair");
    assert_eq!(page(expiring.clone()).await, 200);
    clock.advance_millis(HOUR);
    assert_eq!(page(expiring).await, 303, "ended with its key");
    // Signing in again with it is refused, saying why (its right secret).
    let login = http
        .get(format!("{}/dashboard/login", app.url))
        .send()
        .await
        .unwrap();
    let csrf = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            let v = v.to_str().ok()?;
            v.strip_prefix("fal_csrf=")?
                .split(';')
                .next()
                .map(str::to_owned)
        })
        .unwrap();
    let refused = http
        .post(format!("{}/dashboard/login", app.url))
        .header(reqwest::header::COOKIE, format!("fal_csrf={csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("key_id", id),
            ("key_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body = refused.text().await.unwrap();
    assert!(body.contains("This key expired at"), "{body}");
}

#[tokio::test]
async fn the_dashboard_generates_with_an_expiry_shows_it_and_rolls() {
    let (app, _clock) = demo(true).await;
    let browser = crate::dashboard::Browser::sign_in(&app).await;
    let fields = [("scope", "API"), ("alias", "month"), ("expiry", "30d")];
    let done = browser.post("/dashboard/keys", &fields).await;
    assert_eq!(done.status(), 303);
    let page = browser.get("/dashboard/keys").await.text().await.unwrap();
    assert!(
        page.contains(&at(START + 30 * DAY)),
        "the date in the table"
    );
    let month = app.admin().list_all_keys().await.unwrap();
    let month = month.iter().find(|k| k.alias == "month").unwrap();
    // A custom date in the past, or none, is refused with what to fix.
    for (day, says) in [
        ("2020-01-01", "not in the future"),
        ("", "choose the expiry date"),
    ] {
        let fields = [("scope", "API"), ("expiry", "custom"), ("expires_on", day)];
        let r = browser.post("/dashboard/keys", &fields).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains(says), "{day:?}");
    }
    let fields = [
        ("scope", "API"),
        ("expiry", "custom"),
        ("expires_on", "2027-03-01"),
    ];
    assert_eq!(browser.post("/dashboard/keys", &fields).await.status(), 303);
    let page = browser.get("/dashboard/keys").await.text().await.unwrap();
    assert!(page.contains("2027-03-01T00:00:00.000Z"));

    // Roll, with a day's grace: the new pair is shown once, like a new key.
    let path = format!("/dashboard/keys/{}/roll", month.key_id);
    let rolled = browser.post(&path, &[("grace", "1d")]).await;
    assert_eq!(rolled.status(), 303);
    let link = rolled.headers()["location"].to_str().unwrap().to_owned();
    let shown = browser.get(&link).await.text().await.unwrap();
    assert!(shown.contains("This is the only time the secret will be visible."));
    let keys = app.admin().list_all_keys().await.unwrap();
    let old = keys.iter().find(|k| k.key_id == month.key_id).unwrap();
    let new_id = old.rolled_to.clone().expect("rolled");
    assert!(shown.contains(&new_id));
    assert_eq!(old.expires_at.as_deref(), Some(at(START + DAY).as_str()));
    // Rolled again: refused, saying why.
    let again = browser.post(&path, &[("grace", "0")]).await;
    assert_eq!(again.status(), 409);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("roll that key instead")
    );
    let long = browser.post(&path, &[("grace", "30d")]).await;
    assert_eq!(long.status(), 422);
}

#[tokio::test]
async fn a_request_whose_key_expires_before_it_runs_never_reaches_the_model() {
    use std::sync::atomic::Ordering;
    let clock = Arc::new(ManualClock::new(Timestamp(START)));
    let app = spawn_app_with(
        |c| {
            c.queue_concurrency = 1;
            c.queue_lease = std::time::Duration::from_secs(3600);
        },
        clock.clone(),
    )
    .await;
    let (base, u) = crate::upstream::start().await;
    app.admin()
        .create_app("acme/hold", &format!("{base}/hold"), Some(20_000))
        .await
        .unwrap();
    let auth = app.admin_auth();
    crate::queue::submit(&app, &auth, "/queue/acme/hold", json!({"n": 0})).await;
    crate::queue::wait_for("the first to run", || u.held.load(Ordering::SeqCst) == 1).await;
    let (short, _) = key(&app, json!({"scope": "API", "expires_in": "1m"})).await;
    let s = crate::queue::submit(&app, &short, "/queue/acme/hold", json!({"n": 1})).await;
    let id = s["request_id"].as_str().unwrap();
    clock.advance_millis(60_000);
    u.release_held.add_permits(2);
    let done = crate::queue::completed(&app, &auth, "acme/hold", id).await;
    assert_eq!(done["error_type"], "key_expired", "{done}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        u.hits.load(Ordering::SeqCst),
        1,
        "only the first reached the model"
    );
}
