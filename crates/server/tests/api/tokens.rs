//! `POST /tokens/`: short-lived app tokens, on `/run` through both
//! forwarding paths and in the query, bound to their apps, ended by
//! expiry and by revoking their key, refused on every other route, and
//! accepted by a second server on the same PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use fal_core::app_token::{decode, encode};
use fal_core::{Clock, ManualClock, Scope, SystemClock, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::postgres::Db;

async fn demo(hand_path: bool, clock: Arc<dyn Clock>) -> TestApp {
    spawn_app_with(
        |c| {
            c.demo = true;
            c.hand_path = hand_path;
        },
        clock,
    )
    .await
}

/// A new API key of the admin user: `(id, "Key id:secret")`.
async fn api_key(app: &TestApp) -> (String, String) {
    let k = app.admin().create_key("API", "").await.unwrap();
    let header = format!("Key {}:{}", k.key_id, k.key_secret);
    (k.key_id, header)
}

/// Mints a token with `auth` for `body`; panics unless it is a 201 with a
/// JSON string.
async fn mint(app: &TestApp, auth: &str, body: Value) -> String {
    let (status, headers, v) = app
        .call(
            Method::POST,
            "/tokens/",
            Some(auth),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(headers["cache-control"], "no-store");
    v.as_str().expect("a JSON string").to_owned()
}

async fn run_with(app: &TestApp, app_path: &str, token: &str) -> (u16, Value) {
    let (status, _, v) = app
        .call(
            Method::POST,
            &format!("/run/{app_path}"),
            Some(&format!("Bearer {token}")),
            Some(r#"{"prompt":"a cat"}"#),
        )
        .await;
    (status, v)
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn a_token_calls_its_app_on_both_paths_and_in_the_query() {
    for hand_path in [true, false] {
        let app = demo(hand_path, Arc::new(SystemClock)).await;
        let (key_id, key) = api_key(&app).await;
        // What fal's clients send: the app's alias alone.
        let token = mint(
            &app,
            &key,
            json!({"allowed_apps": ["echo"], "token_expiration": 120}),
        )
        .await;
        assert_eq!(token.split('.').count(), 3);
        let claims = payload(&token);
        assert_eq!(claims["key"], key_id);
        assert_eq!(claims["apps"], json!(["echo"]));
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            120
        );
        let (status, v) = run_with(&app, "fal-ai/echo", &token).await;
        assert_eq!(status, 200, "hand_path={hand_path}: {v}");
        assert_eq!(v, json!({"prompt": "a cat", "fal_key_id": key_id}));

        // ?fal_jwt_token= (how fal's realtime clients send it).
        let (status, _, v) = app
            .call(
                Method::POST,
                &format!("/run/fal-ai/echo?fal_jwt_token={token}"),
                None,
                Some(r#"{"q":1}"#),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["q"], 1);

        // OWNER/NAME works too, and /tokens without the slash.
        let (status, _, v) = app
            .call(
                Method::POST,
                "/tokens",
                Some(&key),
                Some(r#"{"allowed_apps":["fal-ai/echo"]}"#),
            )
            .await;
        assert_eq!(status, 201);
        let full = v.as_str().unwrap();
        let claims = payload(full);
        // Absent: fal's default, 120 s.
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            120
        );
        assert_eq!(run_with(&app, "fal-ai/echo", full).await.0, 200);
    }
}

#[tokio::test]
async fn a_token_is_for_its_apps_only() {
    for hand_path in [true, false] {
        let app = demo(hand_path, Arc::new(SystemClock)).await;
        let (_, key) = api_key(&app).await;
        for allowed in ["other", "acme/echo"] {
            let token = mint(&app, &key, json!({"allowed_apps": [allowed]})).await;
            let (status, v) = run_with(&app, "fal-ai/echo", &token).await;
            assert_eq!(status, 403, "{v}");
            assert_eq!(v["code"], "app_not_allowed");
            let detail = v["detail"].as_str().unwrap();
            assert!(
                detail.contains(allowed) && detail.contains("fal-ai/echo"),
                "{detail}"
            );
            let (status, _, _) = app
                .call(
                    Method::POST,
                    &format!("/run/fal-ai/echo?fal_jwt_token={token}"),
                    None,
                    None,
                )
                .await;
            assert_eq!(status, 403);
        }
    }
}

#[tokio::test]
async fn the_upstream_never_sees_the_token() {
    for hand_path in [true, false] {
        let app = demo(hand_path, Arc::new(SystemClock)).await;
        let r = crate::recorder::start().await;
        app.admin()
            .create_app("acme/rec", &format!("{}/base", r.base), Some(2_000))
            .await
            .unwrap();
        let (_, key) = api_key(&app).await;
        let token = mint(&app, &key, json!({"allowed_apps": ["acme/rec"]})).await;
        let send = |path: String, bearer: Option<&str>| {
            let mut req = app.http.post(format!("{}{path}", app.url)).body("{}");
            if let Some(t) = bearer {
                req = req.bearer_auth(t);
            }
            async move { req.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(send("/run/acme/rec/x?a=1".into(), Some(&token)).await, 200);
        let path = format!("/run/acme/rec/x?a=1&fal_jwt_token={token}&b=2");
        assert_eq!(send(path, None).await, 200);
        let seen = r.seen();
        assert_eq!(seen.len(), 2);
        assert!(
            seen[0].head.starts_with("POST /base/x?a=1 "),
            "{}",
            seen[0].head
        );
        assert!(
            seen[1].head.starts_with("POST /base/x?a=1&b=2 "),
            "{}",
            seen[1].head
        );
        for s in &seen {
            assert!(
                !s.head.contains(&token) && !s.head.contains("eyJ"),
                "{}",
                s.head
            );
        }
    }
}

#[tokio::test]
async fn bad_bodies_get_a_422_that_says_what_to_send() {
    let app = demo(true, Arc::new(SystemClock)).await;
    let (_, key) = api_key(&app).await;
    for (body, says) in [
        (json!({"allowed_apps": []}), "at least one app"),
        (json!({"token_expiration": 60}), "at least one app"),
        (
            json!({"allowed_apps": ["echo"], "token_expiration": 0}),
            "token_expiration",
        ),
        (
            json!({"allowed_apps": ["echo"], "token_expiration": -5}),
            "token_expiration",
        ),
        (json!({"allowed_apps": ["Bad App"]}), "allowed_apps entry"),
        (json!({"allowed_apps": ["a/b/c"]}), "allowed_apps entry"),
        (
            json!({"allowed_apps": ["echo"], "scope": "ADMIN"}),
            "unknown field",
        ),
    ] {
        let (status, _, v) = app
            .call(
                Method::POST,
                "/tokens/",
                Some(&key),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, 422, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{body}: {v}");
    }
}

#[tokio::test]
async fn expiration_is_capped_at_an_hour() {
    let app = demo(true, Arc::new(SystemClock)).await;
    let (_, key) = api_key(&app).await;
    let token = mint(
        &app,
        &key,
        json!({"allowed_apps": ["echo"], "token_expiration": 86_400}),
    )
    .await;
    let c = payload(&token);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3_600
    );
}

#[tokio::test]
async fn an_expired_token_gets_a_401_that_says_so() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let app = demo(true, clock.clone()).await;
    let (_, key) = api_key(&app).await;
    let token = mint(
        &app,
        &key,
        json!({"allowed_apps": ["echo"], "token_expiration": 60}),
    )
    .await;
    clock.advance_millis(59_000);
    assert_eq!(run_with(&app, "fal-ai/echo", &token).await.0, 200);
    clock.advance_millis(1_000);
    let (status, v) = run_with(&app, "fal-ai/echo", &token).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["code"], "token_expired");
    assert!(v["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn tampered_and_made_up_tokens_get_a_401() {
    let app = demo(true, Arc::new(SystemClock)).await;
    let (_, key) = api_key(&app).await;
    let token = mint(&app, &key, json!({"allowed_apps": ["other"]})).await;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    // The payload with another app in it, under the old signature.
    let forged = payload(&token);
    let mut forged = forged.as_object().unwrap().clone();
    forged.insert("apps".into(), json!(["echo"]));
    parts[1] = encode(serde_json::to_string(&forged).unwrap().as_bytes());
    let tampered = parts.join(".");
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    for bad in [tampered.as_str(), flipped.as_str(), none.as_str(), "a.b.c"] {
        let (status, v) = run_with(&app, "fal-ai/echo", bad).await;
        assert_eq!(status, 401, "{bad}: {v}");
        assert_eq!(v["code"], "invalid_credentials", "{v}");
    }
}

#[tokio::test]
async fn revoking_the_key_ends_its_tokens() {
    for hand_path in [true, false] {
        let app = demo(hand_path, Arc::new(SystemClock)).await;
        let (key_id, key) = api_key(&app).await;
        let token = mint(&app, &key, json!({"allowed_apps": ["echo"]})).await;
        assert_eq!(run_with(&app, "fal-ai/echo", &token).await.0, 200);
        app.admin().revoke_key(&key_id).await.unwrap();
        let (status, v) = run_with(&app, "fal-ai/echo", &token).await;
        assert_eq!(status, 401, "{v}");
        let (status, _, _) = app
            .call(
                Method::POST,
                &format!("/run/fal-ai/echo?fal_jwt_token={token}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, 401);
    }
}

#[tokio::test]
async fn a_token_calls_models_and_nothing_else() {
    let app = demo(true, Arc::new(SystemClock)).await;
    // Minted with an ADMIN key: still no way to the REST API.
    let token = mint(&app, &app.admin_auth(), json!({"allowed_apps": ["echo"]})).await;
    let bearer = format!("Bearer {token}");
    for (method, path, body) in [
        (Method::GET, "/keys", None),
        (Method::POST, "/keys", Some(r#"{"scope":"ADMIN"}"#)),
        (Method::GET, "/users/current", None),
        (Method::GET, "/auth/verify", None),
        (Method::GET, "/apps", None),
        (
            Method::POST,
            "/tokens/",
            Some(r#"{"allowed_apps":["echo"]}"#),
        ),
    ] {
        let (status, _, v) = app.call(method, path, Some(&bearer), body).await;
        assert_eq!(status, 403, "{path}: {v}");
        assert_eq!(v["code"], "token_not_accepted");
    }
    // In the query, it is not read off /run.
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/keys?fal_jwt_token={token}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_limited_keys_tokens_take_from_its_limit() {
    let app = demo(true, Arc::new(SystemClock)).await;
    let (key, _) = app.limited_key("lim", "3/min").await;
    // Minting is one call of the three.
    let token = mint(&app, &key, json!({"allowed_apps": ["echo"]})).await;
    assert_eq!(run_with(&app, "fal-ai/echo", &token).await.0, 200);
    assert_eq!(run_with(&app, "fal-ai/echo", &token).await.0, 200);
    let (status, v) = run_with(&app, "fal-ai/echo", &token).await;
    assert_eq!(status, 429, "{v}");
}

#[tokio::test]
async fn the_token_never_shows_in_debug() {
    let hasher =
        fal_core::SecretHasher::new(&fal_core::Pepper::generate(&fal_core::OsRandom).unwrap());
    let key = fal_core::AppTokenKey::derive(&hasher);
    let token = key.sign(&fal_core::AppTokenClaims {
        user_id: fal_core::UserId::from_stored("u".into()),
        key_id: None,
        session_id: Some("s".into()),
        scope: Scope::Admin,
        apps: fal_core::AllowedApps::parse(&["echo"]).unwrap(),
        issued_at: 0,
        expires_at: 60,
        token_id: "t".into(),
    });
    let shown = format!("{token:?} {key:?}");
    assert!(
        !shown.contains(token.expose()) && !shown.contains("eyJ"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_database_accepts_the_token() {
    let Some(db) = Db::new("a_second_server_on_the_same_database_accepts_the_token").await else {
        return;
    };
    let serve = |name: &str| {
        let mut c = db.config(name, &db.url, Duration::from_secs(1));
        c.demo = true;
        c
    };
    let mut first = fal_server::App::build(
        serve("a"),
        Arc::new(SystemClock),
        Arc::new(fal_core::OsRandom),
    )
    .await
    .unwrap();
    let boot = first.take_bootstrap_key().unwrap();
    let first = first.spawn().await.unwrap();
    let second = fal_server::App::build(
        serve("b"),
        Arc::new(SystemClock),
        Arc::new(fal_core::OsRandom),
    )
    .await
    .unwrap()
    .spawn()
    .await
    .unwrap();
    let http = fal_client::http_client();
    let auth = format!("Key {}:{}", boot.key_id, boot.secret.expose());
    let token: String = http
        .post(format!("{}/tokens/", first.url()))
        .header("authorization", &auth)
        .json(&json!({"allowed_apps": ["echo"], "token_expiration": 120}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let on_second = |token: String| {
        let http = http.clone();
        let url = format!("{}/run/fal-ai/echo", second.url());
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({"x": 1}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(on_second(token.clone()).await, 200);
    // Revoked on the first: the second refuses it within its staleness.
    let revoked = http
        .delete(format!("{}/keys/{}", first.url(), boot.key_id))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = on_second(token.clone()).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "still accepted after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.stop().await;
    second.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_cli_sessions_token_ends_with_the_session() {
    use crate::sessions::{app_with, cli_sign_in, github_config};
    let fake = crate::fake_github::FakeGithub::start();
    let app = app_with(github_config(&fake, &["octocat"], &[], &[])).await;
    let (access, _) = cli_sign_in(&app).await;
    let bearer = format!("Bearer {access}");
    let token = mint(&app, &bearer, json!({"allowed_apps": ["fal-ai/echo"]})).await;
    let claims = payload(&token);
    assert!(
        claims["sid"].is_string() && claims.get("key").is_none(),
        "{claims}"
    );
    let (status, v) = run_with(&app, "fal-ai/echo", &token).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["fal_key_id"], Value::Null);
    let (status, _, _) = app
        .call(Method::POST, "/auth/logout", Some(&bearer), None)
        .await;
    assert_eq!(status, 204);
    let (status, v) = run_with(&app, "fal-ai/echo", &token).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["code"], "invalid_session");
}
