//! The status stream as @fal-ai/client's `subscribe({mode: "streaming"})`
//! reads it: it appends each event's `logs` to what it has, so every log
//! line must come exactly once.

use std::sync::Arc;
use std::time::Duration;

use fal_core::SystemClock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app_with;

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
