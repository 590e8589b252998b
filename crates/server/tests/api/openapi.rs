//! The OpenAPI document: `docs/openapi.json` is what the code generates,
//! and `GET /openapi.json` serves it to anyone (it holds no secrets).
//!
//! After changing the API, regenerate the committed file with
//! `UPDATE_OPENAPI=1 cargo test -p fal-server --test api openapi::`.

use std::path::PathBuf;

use reqwest::Method;

use crate::helpers::spawn_app;

const FIX: &str = "UPDATE_OPENAPI=1 cargo test -p fal-server --test api openapi::";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn the_committed_document_is_what_the_code_generates() {
    let generated = fal_server::api::doc::openapi_json();
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/openapi.json differs from the document the code generates (first at line {}): \
             regenerate it with `{FIX}` and commit it",
            line + 1
        );
    }
}

#[test]
fn the_document_is_openapi_3_1_with_every_route_and_the_error_shape() {
    let doc: serde_json::Value =
        serde_json::from_str(&fal_server::api::doc::openapi_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/keys",
        "/keys/{key_id}",
        "/keys/{key_id}/roll",
        "/keys/{key_id}/usage",
        "/audit",
        "/users/current",
        "/auth/verify",
        "/apps",
        "/apps/{owner}/{name}",
        "/tokens/",
        "/admin/users",
        "/admin/users/{user}/disable",
        "/auth/github",
        "/auth/device",
        "/auth/device/token",
        "/auth/refresh",
        "/auth/logout",
        "/security/secret-scanning",
        "/queue/{owner}/{name}",
        "/queue/{owner}/{name}/requests/{request_id}",
        "/queue/{owner}/{name}/requests/{request_id}/status",
        "/queue/{owner}/{name}/requests/{request_id}/cancel",
        "/run/{owner}/{name}",
    ] {
        assert!(paths.contains_key(path), "{path} is not in the document");
    }
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], serde_json::json!(["detail", "code"]));
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["key"]["name"], "Authorization");
    assert_eq!(schemes["session"]["scheme"], "bearer");
    assert_eq!(schemes["app_token_query"]["name"], "fal_jwt_token");
    // Key management asks for a key or a session; the gateway also takes
    // a short-lived token.
    let security = |path: &str, method: &str| doc["paths"][path][method]["security"].clone();
    assert_eq!(
        security("/keys", "get"),
        serde_json::json!([{"key": []}, {"session": []}])
    );
    let queue = security("/queue/{owner}/{name}", "post");
    assert_eq!(queue.as_array().unwrap().len(), 4, "{queue}");
    assert!(security("/healthz", "get").is_null());
}

#[tokio::test]
async fn the_server_serves_the_document_without_credentials() {
    let app = spawn_app().await;
    let (status, headers, body) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let doc: serde_json::Value =
        serde_json::from_str(&fal_server::api::doc::openapi_json()).unwrap();
    assert_eq!(body, doc);
}

/// What schemathesis found, fixed: a 405 names what is allowed (and a
/// POST to a request's status is refused, not queued as a new call), a logout
/// body that is not a refresh token is refused (not answered 204 as if a
/// session ended), and GitHub sign-in on a server without it is a 4xx.
#[tokio::test]
async fn the_answers_schemathesis_found_wrong_are_right() {
    let app = spawn_app().await;
    let auth = app.admin_auth();
    for (method, path, allow) in [
        (Method::PUT, "/queue/a/b/requests/x/status", "GET"),
        (Method::POST, "/queue/a/b/requests/x/status", "GET"),
        (Method::POST, "/queue/a/b/requests/x/status/stream", "GET"),
        (Method::DELETE, "/queue/a/b/requests/x", "GET"),
        (Method::GET, "/queue/a/b/requests/x/cancel", "PUT"),
        (Method::GET, "/queue/a/b", "POST"),
        (Method::PUT, "/queue/a/b/some/path", "POST"),
    ] {
        let (status, headers, body) = app.call(method.clone(), path, Some(&auth), None).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(headers["allow"], allow, "{method} {path}");
        assert_eq!(body["code"], "method_not_allowed");
    }
    let (status, _, _) = app
        .call(
            Method::POST,
            "/queue/a/b/requests/x/other",
            Some(&auth),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let bad = Some(r#"{"refresh_token": 5}"#);
    let (status, _, body) = app
        .call(Method::POST, "/auth/logout", Some(&auth), bad)
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _, body) = app.call(Method::POST, "/auth/logout", None, bad).await;
    assert_eq!(status, 401, "without credentials: {body}");
    let (status, _, body) = app
        .call(Method::POST, "/auth/logout", Some(&auth), Some("null"))
        .await;
    assert_eq!(status, 204, "null is no refresh token: {body}");
    for path in ["/auth/device", "/auth/device/token"] {
        let body = Some(r#"{"device_code": "x"}"#);
        let (status, _, v) = app.call(Method::POST, path, None, body).await;
        assert_eq!(status, 404, "{path}: {v}");
        assert_eq!(v["code"], "github_not_configured");
    }
}
