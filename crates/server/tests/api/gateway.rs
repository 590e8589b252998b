//! The model gateway: apps, forwarding, streaming, failures, header hygiene.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::upstream;

async fn add_app(app: &TestApp, owner_name: &str, upstream: &str, timeout_ms: u64) {
    app.admin()
        .create_app(owner_name, upstream, Some(timeout_ms))
        .await
        .unwrap();
}

async fn api_key(app: &TestApp) -> String {
    let k = app.admin().create_key("API", "models").await.unwrap();
    format!("Key {}:{}", k.key_id, k.key_secret)
}

#[tokio::test]
async fn both_scopes_call_models_and_the_upstream_sees_who_called() {
    let app = spawn_app().await;
    let (base, _u) = upstream::start().await;
    add_app(&app, "acme/reporter", &format!("{base}/headers"), 5_000).await;
    let api = api_key(&app).await;
    for auth in [api.clone(), app.admin_auth()] {
        let resp = app
            .http
            .post(format!("{}/run/acme/reporter/v1/predict?steps=4", app.url))
            .header("authorization", &auth)
            .header("x-fal-user-id", "spoofed")
            .header("connection", "keep-alive, x-client-private")
            .header("x-client-private", "1")
            .header("x-client-public", "1")
            .json(&json!({"prompt": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let rid = resp.headers()["x-fal-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            resp.headers().get("x-upstream-private").is_none(),
            "hop-by-hop header came back"
        );
        assert_eq!(resp.headers()["x-upstream-public"], "1");
        let seen: Value = resp.json().await.unwrap();
        assert_eq!(seen["method"], "POST");
        assert_eq!(seen["path"], "/headers/v1/predict");
        assert_eq!(seen["query"], "steps=4");
        let h = &seen["headers"];
        assert!(
            h.get("authorization").is_none(),
            "Authorization reached the upstream"
        );
        assert!(
            h.get("x-client-private").is_none(),
            "a Connection-named header was forwarded"
        );
        assert_eq!(h["x-client-public"], "1");
        assert_eq!(h["x-fal-request-id"], rid.as_str());
        let key_id = auth
            .strip_prefix("Key ")
            .unwrap()
            .split(':')
            .next()
            .unwrap();
        assert_eq!(h["x-fal-key-id"], key_id);
        assert_ne!(h["x-fal-user-id"], "spoofed");
        let me = app.admin().current_user().await.unwrap();
        assert_eq!(h["x-fal-user-id"], me.user_id.as_str());
    }
}

#[tokio::test]
async fn unauthenticated_calls_never_reach_an_upstream() {
    let app = spawn_app().await;
    let (base, u) = upstream::start().await;
    add_app(&app, "acme/reporter", &format!("{base}/headers"), 5_000).await;
    let bad = format!(
        "Key {}:{}",
        app.admin_id,
        "fal_sk_".to_owned() + &"0".repeat(72)
    );
    for auth in [None, Some("Key nonsense"), Some(bad.as_str())] {
        let (status, _, _) = app
            .call(Method::POST, "/run/acme/reporter", auth, Some("{}"))
            .await;
        assert_eq!(status, 401);
    }
    assert_eq!(u.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_api_key_cannot_manage_apps() {
    let app = spawn_app().await;
    add_app(&app, "acme/kept", "http://127.0.0.1:9", 1_000).await;
    let api = api_key(&app).await;
    let body = r#"{"owner":"acme","name":"new","upstream":"http://127.0.0.1:9"}"#;
    for (method, path, body) in [
        (Method::POST, "/apps", Some(body)),
        (Method::GET, "/apps", None),
        (Method::GET, "/apps/acme/kept", None),
        (Method::DELETE, "/apps/acme/kept", None),
    ] {
        let (status, _, resp) = app.call(method.clone(), path, Some(&api), body).await;
        assert_eq!(status, 403, "{method} {path}");
        assert!(resp["detail"].as_str().unwrap().contains("ADMIN"));
    }
    let apps = app.admin().list_apps().await.unwrap();
    assert_eq!(apps.len(), 1);
}

#[tokio::test]
async fn apps_are_validated_listed_shown_and_removed() {
    let app = spawn_app().await;
    let auth = app.admin_auth();
    for (body, needle) in [
        (
            json!({"owner": "acme", "name": "x", "upstream": "ftp://host"}),
            "http or https",
        ),
        (
            json!({"owner": "acme", "name": "x", "upstream": "localhost:80"}),
            "scheme",
        ),
        (
            json!({"owner": "acme", "name": "x", "upstream": "http://h/?q=1"}),
            "query",
        ),
        (
            json!({"owner": "Acme!", "name": "x", "upstream": "http://h"}),
            "owner",
        ),
        (
            json!({"owner": "acme", "name": "", "upstream": "http://h"}),
            "name",
        ),
        (
            json!({"owner": "acme", "name": "x", "upstream": "http://h", "timeout_ms": 0}),
            "timeout_ms",
        ),
    ] {
        let (status, _, resp) = app
            .call(Method::POST, "/apps", Some(&auth), Some(&body.to_string()))
            .await;
        assert_eq!(status, 422, "{body}");
        assert!(
            resp["detail"].as_str().unwrap().contains(needle),
            "{body}: {resp}"
        );
    }
    let good =
        json!({"owner": "acme", "name": "x", "upstream": "http://127.0.0.1:9/base/"}).to_string();
    let (status, _, created) = app
        .call(Method::POST, "/apps", Some(&auth), Some(&good))
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["upstream"], "http://127.0.0.1:9/base");
    assert_eq!(created["timeout_ms"], 60_000);
    let (status, _, resp) = app
        .call(Method::POST, "/apps", Some(&auth), Some(&good))
        .await;
    assert_eq!(status, 409);
    assert_eq!(resp["code"], "conflict");
    let (status, _, shown) = app
        .call(Method::GET, "/apps/acme/x", Some(&auth), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["app"], "acme/x");
    let (status, _, _) = app
        .call(Method::DELETE, "/apps/acme/x", Some(&auth), None)
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = app
        .call(Method::DELETE, "/apps/acme/x", Some(&auth), None)
        .await;
    assert_eq!(status, 404);
    let (status, _, resp) = app
        .call(Method::POST, "/run/acme/x", Some(&auth), Some("{}"))
        .await;
    assert_eq!(
        status, 404,
        "a removed app is gone from the gateway at once"
    );
    assert_eq!(resp["code"], "not_found");
}

#[tokio::test]
async fn unknown_apps_unreachable_and_slow_upstreams_answer_json() {
    let app = spawn_app().await;
    let (base, _u) = upstream::start().await;
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    add_app(&app, "acme/gone", &format!("http://{closed}"), 2_000).await;
    add_app(&app, "acme/slow", &format!("{base}/slow"), 300).await;
    let auth = app.admin_auth();

    let (status, _, body) = app
        .call(Method::POST, "/run/acme/missing", Some(&auth), Some("{}"))
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    let (status, headers, body) = app
        .call(Method::POST, "/run/acme/gone", Some(&auth), Some("{}"))
        .await;
    assert_eq!(status, 502);
    assert!(headers.contains_key("x-fal-request-id"));
    assert_eq!(body["code"], "upstream_unreachable");
    assert!(body["detail"].is_string());

    let started = std::time::Instant::now();
    let (status, headers, body) = app
        .call(Method::GET, "/run/acme/slow", Some(&auth), None)
        .await;
    assert_eq!(status, 504);
    assert!(headers.contains_key("x-fal-request-id"));
    assert_eq!(body["code"], "upstream_timeout");
    assert!(body["detail"].as_str().unwrap().contains("300 ms"));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the client was not left hanging"
    );
}

#[tokio::test]
async fn a_large_upload_streams_through_without_buffering() {
    let app = spawn_app().await;
    let (base, _u) = upstream::start().await;
    add_app(&app, "acme/count", &format!("{base}/count"), 60_000).await;
    // 64 MiB: far past the 2 MiB a buffering extractor would accept.
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 64;
    let chunks =
        futures_util::stream::iter((0..CHUNKS).map(|_| Ok::<_, std::io::Error>(vec![b'x'; CHUNK])));
    let resp = app
        .http
        .post(format!("{}/run/acme/count", app.url))
        .header("authorization", api_key(&app).await)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["bytes"], (CHUNK * CHUNKS) as u64);
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one() {
    let app = spawn_app().await;
    let (base, u) = upstream::start().await;
    add_app(&app, "acme/sse", &format!("{base}/sse"), 5_000).await;
    let mut resp = app
        .http
        .get(format!("{}/run/acme/sse", app.url))
        .header("authorization", api_key(&app).await)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    // The upstream holds the second event until the first has arrived here:
    // a gateway that buffered the response would never deliver the first.
    let first = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .expect("the first event arrived before the stream ended")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: first\n\n");
    u.release_second_event.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"data: second\n\n");
}

#[tokio::test]
async fn the_demo_app_echoes_with_the_callers_key_id() {
    let app = spawn_app_with(
        |c| c.demo = true,
        std::sync::Arc::new(fal_core::SystemClock),
    )
    .await;
    let k = app.admin().create_key("API", "").await.unwrap();
    let out = app
        .client(&k.key_id, &k.key_secret)
        .run("fal-ai/echo", br#"{"prompt": "a cat"}"#.to_vec())
        .await
        .unwrap();
    assert_eq!(out.status, 200);
    assert!(out.request_id.is_some());
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v, json!({"prompt": "a cat", "fal_key_id": k.key_id}));
    // Built in: listed, and not removable.
    let apps = app.admin().list_apps().await.unwrap();
    assert!(
        apps.iter()
            .any(|a| a["app"] == "fal-ai/echo" && a["builtin"] == true)
    );
    let (status, _, _) = app
        .call(
            Method::DELETE,
            "/apps/fal-ai/echo",
            Some(&app.admin_auth()),
            None,
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn auth_verify_answers_for_reverse_proxies() {
    let app = spawn_app().await;
    let api = api_key(&app).await;
    let (status, headers, _) = app
        .call(Method::GET, "/auth/verify", Some(&api), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(headers["x-fal-scope"], "API");
    assert!(headers.contains_key("x-fal-key-id"));
    let (status, _, body) = app
        .call(Method::GET, "/auth/verify", Some("Key x:y"), None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["detail"], "No user found for Key ID and Secret");
}

#[tokio::test]
async fn upstream_connections_are_reused_and_closed_ones_replaced() {
    let app = spawn_app().await;
    let (base, u) = upstream::start().await;
    add_app(&app, "acme/reporter", &format!("{base}/headers"), 5_000).await;
    add_app(&app, "acme/closer", &format!("{base}/close"), 5_000).await;
    let auth = api_key(&app).await;
    for _ in 0..20 {
        let (status, _, _) = app
            .call(Method::GET, "/run/acme/reporter", Some(&auth), None)
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(
        u.connections.lock().unwrap().len(),
        1,
        "20 sequential calls should share one upstream connection"
    );
    // An upstream that closes after each answer: every call still succeeds.
    for _ in 0..5 {
        let r = app
            .http
            .get(format!("{}/run/acme/closer", app.url))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "closing");
    }
}
