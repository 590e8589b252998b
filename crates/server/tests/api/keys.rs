//! `/keys`: create, list, revoke, and the input errors around them.

use fal_client::ClientError;
use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn creating_a_key_returns_the_secret_once_in_fals_shape() {
    let app = spawn_app().await;
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/keys",
            Some(&app.admin_auth()),
            Some(r#"{"scope": "API", "alias": "ci runner"}"#),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(headers["cache-control"], "no-store");
    let id = body["key_id"].as_str().unwrap();
    let secret = body["key_secret"].as_str().unwrap();
    assert!(
        id.parse::<fal_core::KeyId>().is_ok(),
        "key id is a UUID: {id}"
    );
    assert!(fal_core::KeySecret::parse(secret).is_ok());
    assert_eq!(body["key"], format!("{id}:{secret}"));
    assert_eq!(body["scope"], "API");
    assert_eq!(body["alias"], "ci runner");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));

    // The new key works, and nothing afterwards shows its secret again.
    let me = app.client(id, secret).current_user().await.unwrap();
    assert_eq!(me.credential.scope, "API");
    let (_, _, listed) = app
        .call(Method::GET, "/keys", Some(&app.admin_auth()), None)
        .await;
    let text = listed.to_string();
    assert!(!text.contains(secret));
    assert!(!text.contains("hash"));
    assert!(text.contains(id));
}

#[tokio::test]
async fn listing_is_newest_first_and_pages_with_a_cursor() {
    let app = spawn_app().await;
    let admin = app.admin();
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(
            admin
                .create_key("API", &format!("k{i}"))
                .await
                .unwrap()
                .key_id,
        );
    }
    let first = admin.list_keys(2, None).await.unwrap();
    assert_eq!(first.keys.len(), 2);
    assert!(first.has_more);
    assert_eq!(first.keys[0].key_id, made[4]);
    assert_eq!(first.keys[1].key_id, made[3]);
    let all = admin.list_all_keys().await.unwrap();
    let ids: Vec<_> = all.iter().map(|k| k.key_id.clone()).collect();
    // Five new keys, newest first, then the bootstrap key.
    assert_eq!(ids.len(), 6);
    assert_eq!(
        &ids[..5],
        &[&made[4], &made[3], &made[2], &made[1], &made[0]].map(|s| s.clone())
    );
    assert_eq!(ids[5], app.admin_id);
    let last = admin.list_keys(100, None).await.unwrap();
    assert!(!last.has_more);
    assert!(last.next_cursor.is_none());
}

#[tokio::test]
async fn listing_refuses_bad_paging_with_a_message() {
    let app = spawn_app().await;
    let auth = app.admin_auth();
    for (q, needle) in [
        ("/keys?limit=0", "limit must be between 1 and 100"),
        ("/keys?limit=1000", "limit must be between 1 and 100"),
        ("/keys?limit=abc", "limit"),
        ("/keys?cursor=garbage", "cursor"),
    ] {
        let (status, _, body) = app.call(Method::GET, q, Some(&auth), None).await;
        assert_eq!(status, 400, "{q}");
        assert!(
            body["detail"].as_str().unwrap().contains(needle),
            "{q}: {body}"
        );
        assert_eq!(body["code"], "bad_request");
    }
}

#[tokio::test]
async fn revoking_is_idempotent_and_takes_effect_on_the_next_request() {
    let app = spawn_app().await;
    let admin = app.admin();
    let k = admin.create_key("API", "doomed").await.unwrap();
    let user = app.client(&k.key_id, &k.key_secret);
    user.current_user().await.unwrap(); // now cached
    let path = format!("/keys/{}", k.key_id);
    let (status, _, _) = app
        .call(Method::DELETE, &path, Some(&app.admin_auth()), None)
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .call(Method::DELETE, &path, Some(&app.admin_auth()), None)
        .await;
    assert_eq!(status, 204, "revoking twice is not an error");
    match user.current_user().await.unwrap_err() {
        ClientError::Api { status, detail, .. } => {
            assert_eq!(status, 401);
            // Its holder (the right secret) learns why.
            assert!(detail.starts_with("This key was revoked"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let listed = admin.list_all_keys().await.unwrap();
    assert!(listed.iter().all(|key| key.key_id != k.key_id));
}

#[tokio::test]
async fn revoking_an_unknown_key_is_404() {
    let app = spawn_app().await;
    for id in ["6f1c3a3e-8f7e-4a3a-9c53-0d7e2b1f6a11", "not-a-uuid"] {
        let (status, _, body) = app
            .call(
                Method::DELETE,
                &format!("/keys/{id}"),
                Some(&app.admin_auth()),
                None,
            )
            .await;
        assert_eq!(status, 404);
        assert_eq!(body["code"], "not_found");
    }
}

#[tokio::test]
async fn bad_bodies_get_a_4xx_that_says_what_to_fix() {
    let app = spawn_app().await;
    let auth = app.admin_auth();
    let long = "x".repeat(256);
    let cases = [
        (r#"{"scope": "ADMIN""#.to_owned(), 400, "".to_owned()),
        (
            r#"{"scope": "ROOT"}"#.to_owned(),
            422,
            "scope must be \"ADMIN\" or \"API\"".to_owned(),
        ),
        (
            r#"{"alias": "no scope"}"#.to_owned(),
            422,
            "scope".to_owned(),
        ),
        (
            json!({"scope": "API", "alias": long}).to_string(),
            422,
            "limit is 255".to_owned(),
        ),
        (
            json!({"scope": "API", "alias": "evil\u{202E}gpj.exe"}).to_string(),
            422,
            "U+202E (a bidirectional override or embedding), which can disguise text: remove it"
                .to_owned(),
        ),
        (
            json!({"scope": "API", "alias": "a\u{FEFF}b"}).to_string(),
            422,
            "U+FEFF".to_owned(),
        ),
        (
            r#"{"scope": "API", "extra": 1}"#.to_owned(),
            422,
            "extra".to_owned(),
        ),
        (r#"[1,2]"#.to_owned(), 422, "".to_owned()),
    ];
    for (body, want, needle) in cases {
        let (status, _, resp) = app
            .call(Method::POST, "/keys", Some(&auth), Some(&body))
            .await;
        assert_eq!(status, want, "{body}: {resp}");
        let detail = resp["detail"].as_str().unwrap();
        assert!(detail.contains(&needle), "{body}: {detail}");
        assert!(resp["code"].is_string());
    }
    // 255 characters is fine.
    let ok = json!({"scope": "API", "alias": "y".repeat(255)}).to_string();
    let (status, _, _) = app
        .call(Method::POST, "/keys", Some(&auth), Some(&ok))
        .await;
    assert_eq!(status, 201);
    // Not JSON at all.
    let resp = app
        .http
        .post(format!("{}/keys", app.url))
        .header("authorization", &auth)
        .body("scope=API")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app().await;
    let (status, _, body) = app.call(Method::GET, "/nope", None, None).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
}
