//! The demo app `fal-ai/echo` (`--demo`): `sleep_ms`, and `/stream`'s
//! server-sent events passed through unbuffered on both forwarding paths.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

async fn demo_app(hand_path: bool) -> TestApp {
    spawn_app_with(
        |c| {
            c.demo = true;
            c.hand_path = hand_path;
        },
        Arc::new(fal_core::SystemClock),
    )
    .await
}

/// Reads a `text/event-stream` body as it arrives: each event's JSON and
/// when it arrived.
async fn events_as_they_arrive(mut resp: reqwest::Response) -> Vec<(Value, Instant)> {
    let mut events = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the stream went on")
        .unwrap()
    {
        let at = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            let text = std::str::from_utf8(&event).unwrap();
            let data = text
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {text:?}"));
            events.push((serde_json::from_str(data.trim_end()).unwrap(), at));
        }
    }
    assert!(buf.is_empty(), "a partial event at the end: {buf:?}");
    events
}

#[tokio::test]
async fn the_demo_stream_arrives_event_by_event_on_both_paths() {
    const SLEEP_MS: u64 = 300;
    for hand_path in [true, false] {
        let app = demo_app(hand_path).await;
        let k = app.admin().create_key("API", "").await.unwrap();
        let started = Instant::now();
        let resp = app
            .http
            .post(format!("{}/run/fal-ai/echo/stream", app.url))
            .header(
                "authorization",
                format!("Key {}:{}", k.key_id, k.key_secret),
            )
            .json(&json!({"prompt": "a cat", "sleep_ms": SLEEP_MS}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "hand path: {hand_path}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert!(resp.headers().contains_key("x-fal-request-id"));
        let events = events_as_they_arrive(resp).await;
        let data: Vec<&Value> = events.iter().map(|(v, _)| v).collect();
        assert_eq!(
            data,
            [
                &json!({"partial": true, "index": 0, "of": 3}),
                &json!({"partial": true, "index": 1, "of": 3}),
                &json!({"partial": true, "index": 2, "of": 3}),
                &json!({"prompt": "a cat", "sleep_ms": SLEEP_MS, "fal_key_id": k.key_id}),
            ],
            "hand path: {hand_path}"
        );
        // The app waits `sleep_ms` between two events, so the last is sent
        // at least 3 × SLEEP_MS after the first: a gateway that held the
        // body back would deliver them together.
        let first = events[0].1;
        let last = events[3].1;
        assert!(
            last - first >= Duration::from_millis(3 * SLEEP_MS - 50),
            "hand path {hand_path}: first event at {:?}, last at {:?}",
            first - started,
            last - started
        );
    }
}

#[tokio::test]
async fn sleep_ms_delays_the_answer_and_is_checked() {
    let app = demo_app(true).await;
    let auth = app.admin_auth();
    let started = Instant::now();
    let (status, _, body) = app
        .call(
            Method::POST,
            "/run/fal-ai/echo",
            Some(&auth),
            Some(r#"{"n": 1, "sleep_ms": 400}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(body["n"], 1);
    assert_eq!(body["sleep_ms"], 400);

    for bad in [
        r#"{"sleep_ms": -1}"#,
        r#"{"sleep_ms": "5"}"#,
        r#"{"sleep_ms": 60001}"#,
    ] {
        for path in ["/run/fal-ai/echo", "/run/fal-ai/echo/stream"] {
            let (status, _, body) = app.call(Method::POST, path, Some(&auth), Some(bad)).await;
            assert_eq!(status, 422, "{path} {bad}");
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains("sleep_ms must be"), "{detail}");
        }
    }
}

#[tokio::test]
async fn the_demo_stream_refuses_a_revoked_key_with_our_detail() {
    let app = demo_app(true).await;
    let k = app.admin().create_key("API", "").await.unwrap();
    app.admin().revoke_key(&k.key_id).await.unwrap();
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/run/fal-ai/echo/stream",
            Some(&format!("Key {}:{}", k.key_id, k.key_secret)),
            Some("{}"),
        )
        .await;
    assert_eq!(status, 401);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        body["detail"],
        "This key was revoked: use another key, or generate a new one"
    );
    assert_eq!(body["code"], "key_revoked");
}
