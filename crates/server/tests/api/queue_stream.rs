//! The queue's status stream (`…/requests/ID/status/stream`): each change,
//! ending with `COMPLETED`; and, as @fal-ai/client's
//! `subscribe({mode: "streaming"})` reads it (it appends each event's
//! `logs` to what it has), every log line exactly once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fal_core::SystemClock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app_with;
use crate::queue::{held_app, submit, wait_for};

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
    // Running for longer than the stream looks (every 100 ms), so that
    // IN_PROGRESS is seen even when the stream connected while queued.
    tokio::time::sleep(Duration::from_millis(300)).await;
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
    let mut deduped = statuses.clone();
    deduped.dedup();
    assert_eq!(
        deduped.len(),
        statuses
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
}

#[tokio::test]
async fn each_log_line_is_streamed_once_and_the_stream_ends_with_completed() {
    let app = spawn_app_with(|c| c.demo = true, Arc::new(SystemClock)).await;
    let auth = app.admin_auth();
    let body = json!({"prompt": "streamed", "sleep_ms": 400}).to_string();
    let (code, _, submitted) = app
        .call(Method::POST, "/queue/fal-ai/echo", Some(&auth), Some(&body))
        .await;
    assert_eq!(code, 200, "{submitted}");
    let id = submitted["request_id"].as_str().unwrap();
    let stream = |logs: &str| {
        app.http
            .get(format!(
                "{}/queue/fal-ai/echo/requests/{id}/status/stream{logs}",
                app.url
            ))
            .header("authorization", &auth)
            .send()
    };
    let text = tokio::time::timeout(Duration::from_secs(10), async {
        stream("?logs=1").await.unwrap().text().await.unwrap()
    })
    .await
    .unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let statuses: Vec<&str> = events.iter().filter_map(|e| e["status"].as_str()).collect();
    assert_eq!(statuses.last(), Some(&"COMPLETED"), "{text}");
    assert!(statuses.contains(&"IN_PROGRESS"), "{text}");
    let lines: Vec<&str> = events
        .iter()
        .flat_map(|e| e["logs"].as_array().unwrap())
        .filter_map(|l| l["message"].as_str())
        .collect();
    assert_eq!(lines, ["Started on fal-ai/echo", "Completed"], "{text}");

    // Once completed, a new stream sends the whole story in one event; and
    // without ?logs=1, `logs` is null, as in the status answer.
    let again = stream("?logs=1").await.unwrap().text().await.unwrap();
    let data: Vec<&str> = again
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.len(), 1, "{again}");
    let last: Value = serde_json::from_str(data[0]).unwrap();
    assert_eq!(last["logs"].as_array().unwrap().len(), 2, "{again}");
    let bare = stream("").await.unwrap().text().await.unwrap();
    let data = bare.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(data).unwrap()["logs"],
        Value::Null
    );
}
