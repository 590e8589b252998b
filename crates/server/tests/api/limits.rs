//! What one client may hold, over raw sockets: request bodies bounded in time
//! (408) and size (413, our JSON shape), and the connection cap (503 with
//! `retry-after`, established connections unharmed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use fal_server::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_app_with};
use crate::upstream;

const BODY_TIMEOUT: Duration = Duration::from_millis(300);

async fn app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with(tweak, Arc::new(fal_core::SystemClock)).await
}

fn host_of(app: &TestApp) -> String {
    app.url.trim_start_matches("http://").to_owned()
}

/// A connection that has sent `raw`.
async fn sent(app: &TestApp, raw: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(host_of(app)).await.unwrap();
    s.write_all(raw).await.unwrap();
    s
}

/// Everything the server sends until it closes `s` (at most 10 s).
async fn until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server must close the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// One response with a `content-length`, read off a kept-alive connection.
async fn one_response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if out.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed early: {text}");
        out.extend_from_slice(&chunk[..n]);
    }
}

/// The status and JSON body of a whole response.
fn status_and_json(response: &str) -> (u16, Value) {
    let status = response[9..12].parse().unwrap();
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let json = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {response}"));
    (status, json)
}

fn assert_error(response: &str, status: u16, code: &str) {
    let (got, json) = status_and_json(response);
    assert_eq!(got, status, "{response}");
    assert_eq!(json["code"], code, "{response}");
    assert!(
        json["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{response}"
    );
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{response}"
    );
}

#[tokio::test]
async fn a_stalled_login_or_refresh_body_is_answered_408_and_closed() {
    let app = app_with(|c| c.body_timeout = BODY_TIMEOUT).await;
    for (path, kind) in [
        ("/dashboard/login", "application/x-www-form-urlencoded"),
        ("/auth/refresh", "application/json"),
        ("/keys", "application/json"),
    ] {
        let started = Instant::now();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {kind}\r\ncontent-length: 100\r\n\r\ncsrf="
        );
        let mut s = sent(&app, head.as_bytes()).await;
        let response = until_closed(&mut s).await;
        assert!(started.elapsed() >= BODY_TIMEOUT, "{path}");
        assert_error(&response, 408, "body_timeout");
        // A chunked body that stops between chunks, too.
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {kind}\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{{\r\n"
        );
        let mut s = sent(&app, head.as_bytes()).await;
        assert_error(&until_closed(&mut s).await, 408, "body_timeout");
    }
}

/// An app whose upstream reads the whole body (and says how many bytes),
/// with a timeout far beyond the body timeout; returns the app and an API
/// key's header.
async fn run_setup() -> (TestApp, upstream::Upstream, String) {
    let app = app_with(|c| c.body_timeout = BODY_TIMEOUT).await;
    let (base, u) = upstream::start().await;
    let admin = app.admin();
    admin
        .create_app("acme/count", &format!("{base}/count"), Some(20_000))
        .await
        .unwrap();
    let k = admin.create_key("API", "raw").await.unwrap();
    (app, u, format!("Key {}:{}", k.key_id, k.key_secret))
}

#[tokio::test]
async fn a_stalled_run_body_is_cut_off_on_both_paths() {
    let (app, _u, auth) = run_setup().await;
    let heads = [
        // The hand-written path: a length, then chunks.
        format!(
            "POST /run/acme/count HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\ncontent-length: 100\r\n\r\nabc"
        ),
        format!(
            "POST /run/acme/count HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"
        ),
        // hyper's path (HTTP/1.0 and `Expect` go there).
        format!(
            "POST /run/acme/count HTTP/1.0\r\nhost: x\r\nauthorization: {auth}\r\ncontent-length: 100\r\n\r\nabc"
        ),
        format!(
            "POST /run/acme/count HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\nexpect: 100-continue\r\ncontent-length: 100\r\n\r\nabc"
        ),
    ];
    for head in heads {
        let started = Instant::now();
        let mut s = sent(&app, head.as_bytes()).await;
        let response = until_closed(&mut s).await;
        let elapsed = started.elapsed();
        // Skip an interim `100 Continue`.
        let response = match response.strip_prefix("HTTP/1.1 100 Continue\r\n\r\n") {
            Some(rest) => rest.to_owned(),
            None => response,
        };
        assert!(elapsed >= BODY_TIMEOUT, "{head}: {response}");
        assert!(
            elapsed < Duration::from_secs(10),
            "{head}: the app's timeout hit first"
        );
        assert_error(&response, 408, "body_timeout");
    }
}

#[tokio::test]
async fn a_slow_run_upload_that_keeps_moving_is_not_cut_off() {
    let (app, _u, auth) = run_setup().await;
    let pieces = 6;
    let head = format!(
        "POST /run/acme/count HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\nconnection: close\r\ncontent-length: {pieces}\r\n\r\n"
    );
    let mut s = sent(&app, head.as_bytes()).await;
    let started = Instant::now();
    for _ in 0..pieces {
        // Pauses shorter than the body timeout, adding up to more.
        tokio::time::sleep(BODY_TIMEOUT / 3).await;
        s.write_all(b"x").await.unwrap();
    }
    assert!(started.elapsed() > BODY_TIMEOUT);
    let response = until_closed(&mut s).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(status_and_json(&response).1["bytes"], pieces, "{response}");
}

#[tokio::test]
async fn oversized_bodies_are_413_in_our_json_shape() {
    let app = app_with(|c| c.max_body_size = 1024).await;
    let auth = app.admin_auth();
    let big_json = format!("{{\"alias\":\"{}\",\"scope\":\"API\"}}", "a".repeat(2000));
    let big_form = format!("csrf=x&key_id=y&key_secret={}", "s".repeat(2000));
    let cases = [
        ("/keys", "application/json", &big_json),
        ("/apps", "application/json", &big_json),
        (
            "/dashboard/login",
            "application/x-www-form-urlencoded",
            &big_form,
        ),
    ];
    for (path, kind, body) in cases {
        // Declared up front: refused before it is read.
        let raw = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut s = sent(&app, raw.as_bytes()).await;
        assert_error(&until_closed(&mut s).await, 413, "body_too_large");
        // Chunked: refused once past the limit.
        let raw = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\ncontent-type: {kind}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        let mut s = sent(&app, raw.as_bytes()).await;
        assert_error(&until_closed(&mut s).await, 413, "body_too_large");
    }
    // Through an ordinary client, and a body within the limit still works.
    let (status, _, json) = app
        .call(reqwest::Method::POST, "/keys", Some(&auth), Some(&big_json))
        .await;
    assert_eq!(
        (status, json["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let (status, _, _) = app
        .call(
            reqwest::Method::POST,
            "/keys",
            Some(&auth),
            Some(r#"{"alias":"small","scope":"API"}"#),
        )
        .await;
    assert_eq!(status, 201);
}

fn whoami(auth: &str) -> String {
    format!("GET /users/current HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\r\n")
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_politely() {
    let app = app_with(|c| c.max_connections = 3).await;
    let auth = app.admin_auth();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = sent(&app, whoami(&auth).as_bytes()).await;
        assert!(one_response(&mut s).await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // The fourth is answered 503 and closed.
    let mut extra = sent(&app, whoami(&auth).as_bytes()).await;
    let response = until_closed(&mut extra).await;
    assert_error(&response, 503, "too_many_connections");
    let lower = response.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1\r\n"), "{response}");
    assert!(lower.contains("connection: close\r\n"), "{response}");
    // The established ones keep working.
    for s in &mut held {
        s.write_all(whoami(&auth).as_bytes()).await.unwrap();
        assert!(one_response(s).await.starts_with("HTTP/1.1 200"));
    }
    // One closes: its place is free again (as soon as the server sees it).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = sent(&app, whoami(&auth).as_bytes()).await;
        let response = one_response(&mut s).await;
        if response.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(response.starts_with("HTTP/1.1 503"), "{response}");
        assert!(
            Instant::now() < deadline,
            "the freed place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_server_still_answers_after_many_stalled_sockets() {
    let app = app_with(|c| {
        c.body_timeout = BODY_TIMEOUT;
        c.max_connections = 20;
    })
    .await;
    let stall = b"POST /dashboard/login HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n";
    let mut stalled = Vec::new();
    for _ in 0..60 {
        stalled.push(sent(&app, stall).await);
    }
    let mut statuses = Vec::new();
    for s in &mut stalled {
        let response = until_closed(s).await;
        statuses.push(status_and_json(&response).0);
    }
    assert!(
        statuses.iter().all(|s| [408, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&408) && statuses.contains(&503),
        "{statuses:?}"
    );
    // All cut off or turned away: the server answers again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = sent(&app, whoami(&app.admin_auth()).as_bytes()).await;
        let response = one_response(&mut s).await;
        if response.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "{response}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
