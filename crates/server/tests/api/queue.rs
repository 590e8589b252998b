//! The queue API as fal's clients use it: submit, status (with and
//! without logs), the status stream, the stored answer, cancel in each
//! state, ownership, webhooks with retries, retention (the status stream
//! is in `queue_stream`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fal_core::{ManualClock, Scope, SystemClock, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::upstream;

pub(crate) async fn submit(app: &TestApp, auth: &str, path: &str, body: Value) -> Value {
    let (status, _, json) = app
        .call(Method::POST, path, Some(auth), Some(&body.to_string()))
        .await;
    assert_eq!(status, 200, "{json}");
    json
}

async fn status_of(app: &TestApp, auth: &str, id: &str, query: &str) -> (u16, Value) {
    let path = format!("/queue/fal-ai/echo/requests/{id}/status{query}");
    let (status, _, json) = app.call(Method::GET, &path, Some(auth), None).await;
    (status, json)
}

/// Polls until the request is `COMPLETED`.
async fn completed(app: &TestApp, auth: &str, owner_name: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let path = format!("/queue/{owner_name}/requests/{id}/status");
        let (code, _, s) = app.call(Method::GET, &path, Some(auth), None).await;
        if s["status"] == "COMPLETED" {
            assert_eq!(code, 200);
            return s;
        }
        assert_eq!(code, 202, "{s}");
        assert!(started.elapsed() < Duration::from_secs(15), "still {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn demo() -> TestApp {
    spawn_app_with(|c| c.demo = true, Arc::new(SystemClock)).await
}

#[tokio::test]
async fn a_submitted_request_runs_and_its_answer_is_kept() {
    let app = demo().await;
    let auth = app.admin_auth();
    let s = submit(
        &app,
        &auth,
        "/queue/fal-ai/echo",
        json!({"prompt": "a cat"}),
    )
    .await;
    assert_eq!(s["status"], "IN_QUEUE");
    assert!(s["queue_position"].is_u64());
    let id = s["request_id"].as_str().unwrap().to_owned();
    let at = format!("{}/queue/fal-ai/echo/requests/{id}", app.url);
    assert_eq!(s["response_url"], at.as_str());
    assert_eq!(s["status_url"], format!("{at}/status"));
    assert_eq!(s["cancel_url"], format!("{at}/cancel"));

    let done = completed(&app, &auth, "fal-ai/echo", &id).await;
    assert_eq!(done["logs"], Value::Null, "logs only when asked");
    assert!(done["metrics"]["inference_time"].is_f64());
    assert!(done.get("error").is_none());
    for q in ["?logs=1", "?logs=true"] {
        let (code, with_logs) = status_of(&app, &auth, &id, q).await;
        assert_eq!(code, 200);
        let logs = with_logs["logs"].as_array().unwrap();
        assert_eq!(logs.len(), 2, "{with_logs}");
        assert!(
            logs.iter()
                .all(|l| l["timestamp"].is_string() && l["message"].is_string())
        );
    }
    let (code, headers, answer) = app
        .call(
            Method::GET,
            &format!("/queue/fal-ai/echo/requests/{id}"),
            Some(&auth),
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(answer["prompt"], "a cat");
    assert_eq!(answer["fal_key_id"], app.admin_id.as_str());
    assert_eq!(headers["x-fal-request-id"], id.as_str());
    // A path after the app's name reaches the model's same path.
    let s = submit(&app, &auth, "/queue/fal-ai/echo/stream", json!({})).await;
    assert!(
        s["response_url"]
            .as_str()
            .unwrap()
            .contains("/queue/fal-ai/echo/requests/")
    );
}

#[tokio::test]
async fn requests_are_seen_by_their_owner_only() {
    let app = demo().await;
    let auth = app.admin_auth();
    let id = submit(&app, &auth, "/queue/fal-ai/echo", json!({})).await["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    completed(&app, &auth, "fal-ai/echo", &id).await;
    // Another key of the same user sees it.
    let users = app
        .call(Method::GET, "/users/current", Some(&auth), None)
        .await
        .2;
    let same_user = app
        .key_for(users["user_id"].as_str().unwrap(), Scope::Api)
        .await;
    assert_eq!(status_of(&app, &same_user, &id, "").await.0, 200);
    // Another user gets what an unknown id gets.
    let (mid, msecret) = app.other_user_key(Scope::Api).await;
    let other = format!("Key {mid}:{msecret}");
    let base = format!("/queue/fal-ai/echo/requests/{id}");
    let unknown = "/queue/fal-ai/echo/requests/00000000-0000-4000-8000-000000000000";
    for (method, suffix) in [
        (Method::GET, "/status"),
        (Method::GET, ""),
        (Method::PUT, "/cancel"),
    ] {
        let theirs = app
            .call(
                method.clone(),
                &format!("{base}{suffix}"),
                Some(&other),
                None,
            )
            .await;
        let none = app
            .call(method, &format!("{unknown}{suffix}"), Some(&auth), None)
            .await;
        assert_eq!((theirs.0, &theirs.2["code"]), (404, &json!("not_found")));
        assert_eq!(theirs.0, none.0);
    }
    // No credentials, no queue.
    assert_eq!(
        app.call(Method::GET, &format!("{base}/status"), None, None)
            .await
            .0,
        401
    );
    // An unknown app is refused at submit.
    let (code, _, _) = app
        .call(Method::POST, "/queue/acme/none", Some(&auth), Some("{}"))
        .await;
    assert_eq!(code, 404);
}

/// An app on the holding upstream, run one request at a time.
pub(crate) async fn held_app() -> (TestApp, upstream::Upstream, String) {
    let app = spawn_app_with(|c| c.queue_concurrency = 1, Arc::new(SystemClock)).await;
    let (base, u) = upstream::start().await;
    app.admin()
        .create_app("acme/hold", &format!("{base}/hold"), Some(20_000))
        .await
        .unwrap();
    let auth = app.admin_auth();
    (app, u, auth)
}

pub(crate) async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waited for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cancels_stop_a_waiting_or_running_request_and_not_a_completed_one() {
    let (app, u, auth) = held_app().await;
    let first = submit(&app, &auth, "/queue/acme/hold", json!({"n": 1})).await;
    let second = submit(&app, &auth, "/queue/acme/hold", json!({"n": 2})).await;
    let (first, second) = (
        first["request_id"].as_str().unwrap(),
        second["request_id"].as_str().unwrap(),
    );
    wait_for("the first request to reach the model", || {
        u.held.load(Ordering::SeqCst) == 1
    })
    .await;
    let status = |id: &str| format!("/queue/acme/hold/requests/{id}/status");
    let (code, _, s) = app
        .call(Method::GET, &status(second), Some(&auth), None)
        .await;
    assert_eq!(
        (code, s["status"].as_str(), s["queue_position"].as_u64()),
        (202, Some("IN_QUEUE"), Some(0))
    );
    let (code, _, s) = app
        .call(Method::GET, &status(first), Some(&auth), None)
        .await;
    assert_eq!(
        (s["status"].as_str(), &s["logs"]),
        (Some("IN_PROGRESS"), &Value::Null)
    );
    assert_eq!(code, 202);

    // Waiting: cancelled at once, and never reaches the model.
    let cancel = |id: &str| format!("/queue/acme/hold/requests/{id}/cancel");
    let (code, _, c) = app
        .call(Method::PUT, &cancel(second), Some(&auth), None)
        .await;
    assert_eq!(
        (code, c),
        (202, json!({"status": "CANCELLATION_REQUESTED"}))
    );
    let done = completed(&app, &auth, "acme/hold", second).await;
    assert_eq!(done["error_type"], "cancelled");
    // Running: the call is dropped.
    let (code, _, _) = app
        .call(Method::PUT, &cancel(first), Some(&auth), None)
        .await;
    assert_eq!(code, 202);
    let done = completed(&app, &auth, "acme/hold", first).await;
    assert_eq!(done["error_type"], "cancelled");
    // The worker did not wait for the model to answer.
    assert_eq!(u.held.load(Ordering::SeqCst), 1);
    assert_eq!(
        u.hits.load(Ordering::SeqCst),
        1,
        "the waiting one never reached the model"
    );
    // Completed: too late.
    let (code, _, c) = app
        .call(Method::PUT, &cancel(first), Some(&auth), None)
        .await;
    assert_eq!((code, c), (400, json!({"status": "ALREADY_COMPLETED"})));
    let (code, _, r) = app
        .call(
            Method::GET,
            &format!("/queue/acme/hold/requests/{first}"),
            Some(&auth),
            None,
        )
        .await;
    assert_eq!((code, r["code"].as_str()), (499, Some("cancelled")));
}

#[tokio::test]
async fn normal_requests_run_before_low_ones_and_the_answer_waits_for_completion() {
    let (app, u, auth) = held_app().await;
    let blocker = submit(&app, &auth, "/queue/acme/hold", json!({"n": 0})).await;
    wait_for("the blocker to run", || u.held.load(Ordering::SeqCst) == 1).await;
    let body = json!({"n": "low"}).to_string();
    let low = app
        .http
        .post(format!("{}/queue/acme/hold", app.url))
        .header("authorization", &auth)
        .header("x-fal-queue-priority", "low")
        .header("x-fal-runner-hint", "any")
        .body(body)
        .send()
        .await
        .unwrap();
    let low: Value = low.json().await.unwrap();
    let normal = submit(&app, &auth, "/queue/acme/hold", json!({"n": "normal"})).await;
    let pos = |id: &Value| {
        let id = id["request_id"].as_str().unwrap().to_owned();
        let app = &app;
        let auth = &auth;
        async move {
            let (_, _, s) = app
                .call(
                    Method::GET,
                    &format!("/queue/acme/hold/requests/{id}/status"),
                    Some(auth),
                    None,
                )
                .await;
            s["queue_position"].as_u64().unwrap()
        }
    };
    assert_eq!((pos(&normal).await, pos(&low).await), (0, 1));
    let id = blocker["request_id"].as_str().unwrap();
    let (code, _, early) = app
        .call(
            Method::GET,
            &format!("/queue/acme/hold/requests/{id}"),
            Some(&auth),
            None,
        )
        .await;
    assert_eq!((code, early["code"].as_str()), (400, Some("not_completed")));
    u.release_held.add_permits(3);
    for (r, n) in [(&normal, "normal"), (&low, "low")] {
        let id = r["request_id"].as_str().unwrap();
        completed(&app, &auth, "acme/hold", id).await;
        let (_, _, answer) = app
            .call(
                Method::GET,
                &format!("/queue/acme/hold/requests/{id}"),
                Some(&auth),
                None,
            )
            .await;
        assert_eq!(answer["input"]["n"], n);
    }
    let bad = app
        .http
        .post(format!("{}/queue/acme/hold", app.url))
        .header("authorization", &auth)
        .header("x-fal-queue-priority", "urgent")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

/// A webhook receiver that fails its first `fail` deliveries.
async fn receiver(fail: usize) -> (String, Arc<std::sync::Mutex<Vec<(u16, Value)>>>) {
    let seen: Arc<std::sync::Mutex<Vec<(u16, Value)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = seen.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let mut seen = s.lock().unwrap();
                let code = if seen.len() < fail { 500 } else { 200 };
                seen.push((code, serde_json::from_slice(&body).unwrap()));
                axum::http::StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

#[tokio::test]
async fn webhooks_are_retried_until_delivered_and_refused_where_upstreams_are() {
    let app = demo().await;
    let auth = app.admin_auth();
    let (hook, seen) = receiver(1).await;
    let enc: String = hook.bytes().map(|b| format!("%{b:02X}")).collect();
    let s = submit(
        &app,
        &auth,
        &format!("/queue/fal-ai/echo?fal_webhook={enc}"),
        json!({"x": 1}),
    )
    .await;
    let id = s["request_id"].as_str().unwrap();
    let started = Instant::now();
    while seen.lock().unwrap().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [500, 200]);
    let body = &seen[1].1;
    assert_eq!(
        (body["request_id"].as_str(), body["status"].as_str()),
        (Some(id), Some("OK"))
    );
    assert_eq!(body["gateway_request_id"], id);
    assert_eq!(body["payload"]["x"], 1);
    // A user who is not an operator may not point a webhook inside.
    let (mid, msecret) = app.other_user_key(Scope::Api).await;
    let other = format!("Key {mid}:{msecret}");
    let path = format!("/queue/fal-ai/echo?fal_webhook={enc}");
    let (code, _, e) = app
        .call(Method::POST, &path, Some(&other), Some("{}"))
        .await;
    assert_eq!((code, e["code"].as_str()), (403, Some("webhook_refused")));
    let (code, _, _) = app
        .call(
            Method::POST,
            "/queue/fal-ai/echo?fal_webhook=ftp://x",
            Some(&auth),
            Some("{}"),
        )
        .await;
    assert_eq!(code, 422);
}

#[tokio::test]
async fn answers_are_deleted_after_retention() {
    let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::config(dir.path());
    config.demo = true;
    config.queue_retention = Duration::from_secs(3600);
    let mut built = fal_server::App::build(config, clock.clone(), Arc::new(fal_core::OsRandom))
        .await
        .unwrap();
    let key = built.take_bootstrap_key().unwrap();
    let queue = built.queue().unwrap();
    let server = built.spawn().await.unwrap();
    let app = TestApp {
        url: server.url(),
        server: Some(server),
        admin_id: key.key_id.to_string(),
        admin_secret: key.secret.expose().to_owned(),
        dir,
        http: fal_client::http_client(),
    };
    let auth = app.admin_auth();
    let id = submit(&app, &auth, "/queue/fal-ai/echo", json!({})).await["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    completed(&app, &auth, "fal-ai/echo", &id).await;
    assert_eq!(queue.prune().await.unwrap(), 0, "kept for an hour");
    clock.advance_millis(3_600_001);
    assert_eq!(queue.prune().await.unwrap(), 1);
    assert_eq!(status_of(&app, &auth, &id, "").await.0, 404);
}

#[tokio::test]
async fn an_app_token_queues_for_its_apps_only() {
    let app = demo().await;
    let auth = app.admin_auth();
    let body = json!({"allowed_apps": ["echo"], "token_expiration": 60}).to_string();
    let (code, _, token) = app
        .call(Method::POST, "/tokens/", Some(&auth), Some(&body))
        .await;
    assert_eq!(code, 201, "{token}");
    let token = token.as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let s = submit(&app, &bearer, "/queue/fal-ai/echo", json!({"t": 1})).await;
    let id = s["request_id"].as_str().unwrap();
    completed(&app, &bearer, "fal-ai/echo", id).await;
    // In the query too.
    let path = format!("/queue/fal-ai/echo?fal_jwt_token={token}&keep=1");
    let (code, _, s) = app.call(Method::POST, &path, None, Some("{}")).await;
    assert_eq!(code, 200, "{s}");
    let id = s["request_id"].as_str().unwrap();
    completed(&app, &auth, "fal-ai/echo", id).await;
    // Another app: refused.
    app.admin()
        .create_app("acme/other", "http://127.0.0.1:9", Some(1_000))
        .await
        .unwrap();
    let (code, _, e) = app
        .call(Method::POST, "/queue/acme/other", Some(&bearer), Some("{}"))
        .await;
    assert_eq!((code, e["code"].as_str()), (403, Some("app_not_allowed")));
}
