//! The queue API, continued: cancels in each state, priority and each
//! app's concurrency, webhooks with retries and their address rules, app
//! tokens.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fal_core::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::queue::{completed, demo, held_app, submit, wait_for};

/// A submit to `acme/hold` with fal's queue headers.
async fn post_with(
    app: &TestApp,
    auth: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut post = app
        .http
        .post(format!("{}/queue/acme/hold", app.url))
        .header("authorization", auth);
    for (name, value) in headers {
        post = post.header(*name, *value);
    }
    post.body(body).send().await.unwrap()
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
    assert_eq!(
        (code, c["status"].as_str()),
        (400, Some("ALREADY_COMPLETED"))
    );
    assert_eq!(c["code"], "already_completed");
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
    let low = post_with(
        &app,
        &auth,
        &[
            ("x-fal-queue-priority", "low"),
            ("x-fal-runner-hint", "any"),
        ],
        body,
    )
    .await;
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
    let bad = post_with(&app, &auth, &[("x-fal-queue-priority", "urgent")], "{}").await;
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

#[tokio::test]
async fn a_freed_slot_runs_the_next_waiting_request_without_waiting_for_a_sweep() {
    // One at a time: each request that ends must start the next itself.
    // Were ends not to wake the workers, only the sweep (every 2 s) would
    // find the waiting ones, and three hand-offs could not fit in 1.5 s.
    let (app, u, auth) = held_app().await;
    for n in 0..4 {
        submit(&app, &auth, "/queue/acme/hold", json!({ "n": n })).await;
    }
    wait_for("the first to run", || u.hits.load(Ordering::SeqCst) == 1).await;
    let started = Instant::now();
    for next in 2..=4 {
        u.release_held.add_permits(1);
        while u.hits.load(Ordering::SeqCst) < next {
            assert!(
                started.elapsed() < Duration::from_millis(1_500),
                "request {next} did not start after the one before it ended"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    u.release_held.add_permits(1);
}

#[tokio::test]
async fn an_apps_concurrency_caps_how_many_of_its_requests_run() {
    let (app, u, auth) = held_app().await;
    let base = app.admin().list_apps().await.unwrap();
    let hold = base.iter().find(|a| a["app"] == "acme/hold").unwrap();
    let upstream = hold["upstream"].as_str().unwrap();
    let created = app
        .admin()
        .create_app_with("acme/pair", upstream, Some(20_000), Some(2))
        .await
        .unwrap();
    assert_eq!(created["concurrency"], 2);
    let mut ids = Vec::new();
    for n in 0..4 {
        let s = submit(&app, &auth, "/queue/acme/pair", json!({ "n": n })).await;
        ids.push(s["request_id"].as_str().unwrap().to_owned());
    }
    // Two run (the server's default here is 1, the app's own limit wins).
    wait_for("two to run", || u.held.load(Ordering::SeqCst) == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(u.held.load(Ordering::SeqCst), 2, "never more than two");
    u.release_held.add_permits(4);
    for id in &ids {
        completed(&app, &auth, "acme/pair", id).await;
    }
    assert_eq!(u.hits.load(Ordering::SeqCst), 4);
    let (code, _, e) = app
        .call(
            Method::POST,
            "/apps",
            Some(&auth),
            Some(
                r#"{"owner":"acme","name":"zero","upstream":"http://127.0.0.1:9","concurrency":0}"#,
            ),
        )
        .await;
    assert_eq!(code, 422, "{e}");
}

#[tokio::test]
async fn a_request_not_started_within_its_timeout_fails_without_reaching_the_model() {
    let (app, u, auth) = held_app().await;
    submit(&app, &auth, "/queue/acme/hold", json!({"n": 0})).await;
    wait_for("the first to run", || u.held.load(Ordering::SeqCst) == 1).await;
    let late = post_with(&app, &auth, &[("x-fal-request-timeout", "0.2")], "{}").await;
    let late: Value = late.json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    u.release_held.add_permits(2);
    let done = completed(
        &app,
        &auth,
        "acme/hold",
        late["request_id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(done["error_type"], "request_timeout");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        u.hits.load(Ordering::SeqCst),
        1,
        "it never reached the model"
    );
    let bad = post_with(&app, &auth, &[("x-fal-request-timeout", "soon")], "{}").await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_request_whose_key_is_revoked_before_it_runs_never_reaches_the_model() {
    let (app, u, auth) = held_app().await;
    submit(&app, &auth, "/queue/acme/hold", json!({"n": 0})).await;
    wait_for("the first to run", || u.held.load(Ordering::SeqCst) == 1).await;
    let key = app.admin().create_key("API", "short-lived").await.unwrap();
    let other = format!("Key {}:{}", key.key_id, key.key_secret);
    let s = submit(&app, &other, "/queue/acme/hold", json!({"n": 1})).await;
    let id = s["request_id"].as_str().unwrap();
    let (code, _, _) = app
        .call(
            Method::DELETE,
            &format!("/keys/{}", key.key_id),
            Some(&auth),
            None,
        )
        .await;
    assert_eq!(code, 204);
    u.release_held.add_permits(2);
    // Its owner's other key still reads the outcome.
    let done = completed(&app, &auth, "acme/hold", id).await;
    assert_eq!(done["error_type"], "key_revoked", "{done}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        u.hits.load(Ordering::SeqCst),
        1,
        "only the first reached the model"
    );
}
