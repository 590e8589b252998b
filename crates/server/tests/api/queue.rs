//! The queue API as fal's clients use it: submit, status (with and
//! without logs), the status stream, the stored answer, cancel in each
//! state, ownership, webhooks with retries, retention.

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

pub(crate) async fn status_of(app: &TestApp, auth: &str, id: &str, query: &str) -> (u16, Value) {
    let path = format!("/queue/fal-ai/echo/requests/{id}/status{query}");
    let (status, _, json) = app.call(Method::GET, &path, Some(auth), None).await;
    (status, json)
}

/// Polls until the request is `COMPLETED`.
pub(crate) async fn completed(app: &TestApp, auth: &str, owner_name: &str, id: &str) -> Value {
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

pub(crate) async fn demo() -> TestApp {
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
async fn the_status_stream_sends_each_change_and_ends_with_completed() {
    let (app, u, auth) = held_app().await;
    let id = submit(&app, &auth, "/queue/acme/hold", json!({})).await["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!(
        "{}/queue/acme/hold/requests/{id}/status/stream?logs=1",
        app.url
    );
    let resp = app
        .http
        .get(url)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    wait_for("the request to run", || u.held.load(Ordering::SeqCst) == 1).await;
    // Long enough in progress for the stream (which looks every 100 ms).
    tokio::time::sleep(Duration::from_millis(400)).await;
    u.release_held.add_permits(1);
    let text = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .unwrap()
        .unwrap();
    let statuses: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("COMPLETED"),
        "{text}"
    );
    assert!(statuses.contains(&"IN_PROGRESS".to_owned()), "{text}");
    // One event per change: never the same JSON twice in a row.
    let data: Vec<&str> = text.lines().filter(|l| l.starts_with("data: ")).collect();
    assert!(data.windows(2).all(|w| w[0] != w[1]), "{text}");
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
async fn a_large_answer_is_kept_in_a_file_and_replayed_whole() {
    let app = demo().await;
    let auth = app.admin_auth();
    let big = "x".repeat(400 * 1024);
    let s = submit(&app, &auth, "/queue/fal-ai/echo", json!({ "big": big })).await;
    let id = s["request_id"].as_str().unwrap();
    completed(&app, &auth, "fal-ai/echo", id).await;
    let file = app
        .dir
        .path()
        .join("queue-results")
        .join(format!("{id}.bin"));
    let meta = std::fs::metadata(&file).expect("kept as a file");
    assert!(meta.len() > 400 * 1024);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let (code, _, answer) = app
        .call(
            Method::GET,
            &format!("/queue/fal-ai/echo/requests/{id}"),
            Some(&auth),
            None,
        )
        .await;
    assert_eq!(
        (code, answer["big"].as_str().map(str::len)),
        (200, Some(big.len()))
    );
}
