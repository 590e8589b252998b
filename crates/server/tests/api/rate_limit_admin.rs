//! A key's rate limit as managed over `/keys`: set at creation, listed,
//! changed and lifted with `PATCH /keys/{key_id}`, and the input errors
//! around it.

use fal_core::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// The listing item of `key_id` (`Null` when it is not listed).
async fn listed(app: &TestApp, key_id: &str) -> Value {
    let (status, _, body) = app
        .call(Method::GET, "/keys", Some(&app.admin_auth()), None)
        .await;
    assert_eq!(status, 200);
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id)
        .cloned()
        .unwrap_or(Value::Null)
}

async fn patch(app: &TestApp, auth: &str, key_id: &str, body: &str) -> (u16, Value) {
    let (status, _, body) = app
        .call(
            Method::PATCH,
            &format!("/keys/{key_id}"),
            Some(auth),
            Some(body),
        )
        .await;
    (status, body)
}

#[tokio::test]
async fn a_key_is_created_with_a_limit_listed_changed_and_lifted() {
    let app = spawn_app().await;
    let auth = app.admin_auth();
    let body = json!({"scope": "API", "alias": "limited", "rate_limit": "100/s"}).to_string();
    let (status, _, made) = app
        .call(Method::POST, "/keys", Some(&auth), Some(&body))
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["rate_limit"], "100/s");
    let id = made["key_id"].as_str().unwrap().to_owned();
    assert_eq!(listed(&app, &id).await["rate_limit"], "100/s");
    // Spelled out, it is stored and shown in its short form.
    let (status, item) = patch(&app, &auth, &id, r#"{"rate_limit": " 5/minute "}"#).await;
    assert_eq!(status, 200, "{item}");
    assert_eq!(item["key_id"], id.as_str());
    assert_eq!(item["rate_limit"], "5/min");
    assert_eq!(item["alias"], "limited");
    assert_eq!(item["scope"], "API");
    assert!(item["created_at"].is_string());
    assert!(item.as_object().unwrap().contains_key("last_used_at"));
    assert_eq!(listed(&app, &id).await["rate_limit"], "5/min");
    let (status, item) = patch(&app, &auth, &id, r#"{"rate_limit": null}"#).await;
    assert_eq!(status, 200, "{item}");
    assert!(item["rate_limit"].is_null(), "{item}");
    let now = listed(&app, &id).await;
    assert!(
        now.as_object().unwrap()["rate_limit"].is_null(),
        "lifted: {now}"
    );
    // Absent and null at creation are both unlimited, and listed as null.
    for body in [
        json!({"scope": "API"}),
        json!({"scope": "API", "rate_limit": null}),
    ] {
        let (status, _, made) = app
            .call(Method::POST, "/keys", Some(&auth), Some(&body.to_string()))
            .await;
        assert_eq!(status, 201);
        assert!(made.as_object().unwrap()["rate_limit"].is_null(), "{made}");
        let id = made["key_id"].as_str().unwrap();
        let item = listed(&app, id).await;
        assert!(item.as_object().unwrap()["rate_limit"].is_null(), "{item}");
    }
    // The bootstrap key has no limit either.
    let boot = listed(&app, &app.admin_id).await;
    assert!(boot.as_object().unwrap()["rate_limit"].is_null(), "{boot}");
}

#[tokio::test]
async fn invalid_limits_are_a_422_saying_what_to_write() {
    let app = spawn_app().await;
    let auth = app.admin_auth();
    let made = app.admin().create_key("API", "target").await.unwrap();
    let cases = [
        (json!("100/d"), "use s, min or h"),
        (json!("lots"), "write e.g. 100/s, 100/min or 100/h"),
        (json!("0/s"), "from 1 to"),
        (json!("-5/s"), "whole number"),
        (json!(100), "invalid type"),
    ];
    for (limit, needle) in cases {
        let create = json!({"scope": "API", "rate_limit": limit}).to_string();
        let (status, _, body) = app
            .call(Method::POST, "/keys", Some(&auth), Some(&create))
            .await;
        assert_eq!(status, 422, "{create}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{create}: {detail}");
        assert!(body["code"].is_string());
        let update = json!({ "rate_limit": limit }).to_string();
        let (status, body) = patch(&app, &auth, &made.key_id, &update).await;
        assert_eq!(status, 422, "{update}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(needle),
            "{update}: {body}"
        );
    }
    // Nothing was created by the refused bodies, nor changed.
    let keys = app.admin().list_all_keys().await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.rate_limit.is_none()), "{keys:?}");
}

#[tokio::test]
async fn a_patch_must_name_the_limit_and_nothing_else() {
    let app = spawn_app().await;
    let auth = app.admin_auth();
    let made = app.admin().create_key("API", "").await.unwrap();
    for (body, needle) in [
        ("{}", "rate_limit is required"),
        (r#"{"alias": "x"}"#, "alias"),
        (r#"{"rate_limit": "1/s", "scope": "ADMIN"}"#, "scope"),
    ] {
        let (status, resp) = patch(&app, &auth, &made.key_id, body).await;
        assert_eq!(status, 422, "{body}: {resp}");
        let detail = resp["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{body}: {detail}");
    }
    let key = app.admin().list_all_keys().await.unwrap();
    assert!(key.iter().all(|k| k.rate_limit.is_none()), "{key:?}");
}

#[tokio::test]
async fn only_the_owner_may_patch_an_unrevoked_key_with_an_admin_key() {
    let app = spawn_app().await;
    let auth = app.admin_auth();
    let body = r#"{"rate_limit": "10/h"}"#;
    // Another user's key: 404, as DELETE answers, and left as it was.
    let (other_id, other_secret) = app.other_user_key(Scope::Admin).await;
    let (status, resp) = patch(&app, &auth, &other_id, body).await;
    assert_eq!(status, 404, "{resp}");
    assert_eq!(resp["code"], "not_found");
    let other = app.client(&other_id, &other_secret);
    let theirs = other.list_all_keys().await.unwrap();
    assert!(theirs.iter().all(|k| k.rate_limit.is_none()), "{theirs:?}");
    // Unknown ids and ones that are not ids.
    for id in ["6f1c3a3e-8f7e-4a3a-9c53-0d7e2b1f6a11", "not-a-uuid"] {
        let (status, resp) = patch(&app, &auth, id, body).await;
        assert_eq!(status, 404, "{id}: {resp}");
    }
    // A revoked key.
    let admin = app.admin();
    let gone = admin.create_key("API", "gone").await.unwrap();
    admin.revoke_key(&gone.key_id).await.unwrap();
    let (status, resp) = patch(&app, &auth, &gone.key_id, body).await;
    assert_eq!(status, 404, "{resp}");
    // An API-scope key may not change limits, not even its own.
    let api = admin.create_key("API", "api").await.unwrap();
    let api_auth = format!("Key {}:{}", api.key_id, api.key_secret);
    let (status, resp) = patch(&app, &api_auth, &api.key_id, body).await;
    assert_eq!(status, 403, "{resp}");
    assert!(resp["detail"].as_str().unwrap().contains("ADMIN"), "{resp}");
    let api_item = listed(&app, &api.key_id).await;
    assert!(api_item.as_object().unwrap()["rate_limit"].is_null());
    // The owner, with an ADMIN key, may.
    let (status, resp) = patch(&app, &auth, &api.key_id, body).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(listed(&app, &api.key_id).await["rate_limit"], "10/h");
}

#[tokio::test]
async fn the_client_sets_and_lifts_a_limit() {
    let app = spawn_app().await;
    let admin = app.admin();
    let made = admin
        .create_key_with_rate_limit("API", "c", Some("7/s"))
        .await
        .unwrap();
    assert_eq!(made.rate_limit.as_deref(), Some("7/s"));
    let key = admin
        .update_key_rate_limit(&made.key_id, Some("3/h"))
        .await
        .unwrap();
    assert_eq!(key.key_id, made.key_id);
    assert_eq!(key.rate_limit.as_deref(), Some("3/h"));
    let key = admin
        .update_key_rate_limit(&made.key_id, None)
        .await
        .unwrap();
    assert_eq!(key.rate_limit, None);
    let all = admin.list_all_keys().await.unwrap();
    let listed = all.iter().find(|k| k.key_id == made.key_id).unwrap();
    assert_eq!(listed.rate_limit, None);
}
