//! Authentication replies, scopes and isolation between users.

use fal_core::Scope;
use reqwest::Method;

use crate::helpers::spawn_app;

const NO_USER: &str = "No user found for Key ID and Secret";

#[tokio::test]
async fn no_credentials_is_401() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/keys"),
        (Method::POST, "/keys"),
        (Method::GET, "/users/current"),
    ] {
        let (status, headers, body) = app.call(method, path, None, None).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["code"], "missing_credentials");
        assert_eq!(headers["www-authenticate"], "Key");
    }
}

#[tokio::test]
async fn a_malformed_header_gets_fals_message() {
    let app = spawn_app().await;
    for header in ["Key abc", "Key ", "Key :", "Key id-only:"] {
        let (status, _, body) = app
            .call(Method::GET, "/users/current", Some(header), None)
            .await;
        assert_eq!(status, 401, "{header}");
        assert_eq!(
            body["detail"],
            "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'.",
            "{header}"
        );
        assert_eq!(body["code"], "malformed_authorization");
    }
    let (status, _, body) = app
        .call(
            Method::GET,
            "/users/current",
            Some("Basic Zm9vOmJhcg=="),
            None,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unsupported_scheme");
}

#[tokio::test]
async fn unknown_wrong_mistyped_and_revoked_keys_all_get_one_answer_without_the_right_secret() {
    let app = spawn_app().await;
    let admin = app.admin();
    let other = admin.create_key("API", "").await.unwrap();
    let revoked = admin.create_key("API", "").await.unwrap();
    admin.revoke_key(&revoked.key_id).await.unwrap();
    let mut typo = app.admin_secret.clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'0' { b'1' } else { b'0' };
    let typo = String::from_utf8(typo).unwrap();
    let headers = [
        // unknown id, well-formed secret
        format!(
            "Key 6f1c3a3e-8f7e-4a3a-9c53-0d7e2b1f6a11:{}",
            app.admin_secret
        ),
        // right id, another key's secret
        format!("Key {}:{}", app.admin_id, other.key_secret),
        // right id, secret with a typo (fails its checksum)
        format!("Key {}:{typo}", app.admin_id),
        // id that is not a UUID
        format!("Key admin:{}", app.admin_secret),
        // revoked key, another key's secret (its own secret learns why:
        // see the end)
        format!("Key {}:{}", revoked.key_id, other.key_secret),
    ];
    let mut bodies = Vec::new();
    for h in &headers {
        let (status, _, body) = app.call(Method::GET, "/users/current", Some(h), None).await;
        assert_eq!(status, 401, "{h}");
        assert_eq!(body["detail"], NO_USER);
        assert_eq!(body["code"], "invalid_credentials");
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "identical bodies");
    // Only the holder of a revoked key's right secret learns it is revoked.
    let own = format!("Key {}:{}", revoked.key_id, revoked.key_secret);
    let (status, _, body) = app
        .call(Method::GET, "/users/current", Some(&own), None)
        .await;
    assert_eq!(
        (status, &body["code"]),
        (401, &serde_json::json!("key_revoked"))
    );
}

#[tokio::test]
async fn an_api_key_calls_nothing_but_models_and_cannot_escalate() {
    let app = spawn_app().await;
    let api = app.admin().create_key("API", "models only").await.unwrap();
    let auth = format!("Key {}:{}", api.key_id, api.key_secret);
    let attempts = [
        (
            Method::POST,
            "/keys".to_owned(),
            Some(r#"{"scope":"ADMIN"}"#),
        ),
        (Method::POST, "/keys".to_owned(), Some(r#"{"scope":"API"}"#)),
        (Method::GET, "/keys".to_owned(), None),
        (Method::DELETE, format!("/keys/{}", api.key_id), None),
        (Method::DELETE, format!("/keys/{}", app.admin_id), None),
    ];
    for (method, path, body) in attempts {
        let (status, _, resp) = app.call(method.clone(), &path, Some(&auth), body).await;
        assert_eq!(status, 403, "{method} {path}");
        assert_eq!(resp["code"], "insufficient_scope");
        let detail = resp["detail"].as_str().unwrap();
        assert!(
            detail.contains("ADMIN") && detail.contains("API"),
            "{detail}"
        );
    }
    // Nothing changed: still one API key and the bootstrap key, both valid.
    assert_eq!(app.admin().list_all_keys().await.unwrap().len(), 2);
    let me = app
        .client(&api.key_id, &api.key_secret)
        .current_user()
        .await
        .unwrap();
    assert_eq!(me.credential.scope, "API");
    assert_eq!(me.credential.key_id.as_deref(), Some(api.key_id.as_str()));
}

#[tokio::test]
async fn users_current_says_who_and_by_which_key() {
    let app = spawn_app().await;
    let me = app.admin().current_user().await.unwrap();
    assert_eq!(me.nickname, "admin");
    assert_eq!(me.credential.kind, "key");
    assert_eq!(me.credential.key_id.as_deref(), Some(app.admin_id.as_str()));
    assert_eq!(me.credential.scope, "ADMIN");
}

#[tokio::test]
async fn a_user_sees_and_revokes_only_their_own_keys() {
    let app = spawn_app().await;
    let (other_id, other_secret) = app.other_user_key(Scope::Admin).await;
    let other = app.client(&other_id, &other_secret);
    // The other user sees only their key, not the bootstrap admin's.
    let theirs = other.list_all_keys().await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].key_id, other_id);
    // Revoking someone else's key answers as for an unknown one, and changes nothing.
    let (status, _, body) = app
        .call(
            Method::DELETE,
            &format!("/keys/{}", app.admin_id),
            Some(&format!("Key {other_id}:{other_secret}")),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");
    app.admin().current_user().await.unwrap();
    let mine = app.admin().list_all_keys().await.unwrap();
    assert!(mine.iter().all(|k| k.key_id != other_id));
}
