//! Upstream addresses (issue 12, finding 4): only operators' apps reach
//! loopback, private, link-local or unspecified addresses; cloud metadata
//! only with --allow-metadata-upstreams. Checked after name resolution at
//! registration, and again at every connection on both forwarding paths.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fal_core::{Scope, SystemClock, Timestamp, UserId};
use fal_store::{AppAdmin, AppRecord};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::upstream;

async fn register(app: &TestApp, auth: &str, owner: &str, upstream: &str) -> (u16, Value) {
    let body = json!({"owner": owner, "name": "m", "upstream": upstream});
    let (status, _, resp) = app
        .call(Method::POST, "/apps", Some(auth), Some(&body.to_string()))
        .await;
    if status == 201 {
        let path = format!("/apps/{owner}/m");
        let (s, _, _) = app.call(Method::DELETE, &path, Some(auth), None).await;
        assert_eq!(s, 204);
    }
    (status, resp)
}

#[tokio::test]
async fn only_operators_register_internal_upstreams() {
    let app = spawn_app().await;
    let bob = app.github_user_auth("bob", 102, Scope::Admin).await;
    let admin = app.admin_auth();
    for (url, why) in [
        ("http://127.0.0.1:9/x", "loopback"),
        ("http://[::ffff:127.0.0.1]:9", "loopback"),
        ("http://localhost:9", "loopback"),
        ("http://0.0.0.0:9", "unspecified"),
        ("http://[::]:9", "unspecified"),
        ("http://[::1]", "loopback"),
        ("http://10.0.0.5:9000", "private"),
        ("https://192.168.1.1", "private"),
        ("http://172.16.0.1", "private"),
        ("http://[fd12::1]", "unique-local"),
        ("http://169.254.1.1", "link-local"),
        ("http://100.64.0.1", "CGNAT"),
    ] {
        let (status, resp) = register(&app, &bob, "bob", url).await;
        assert_eq!(status, 403, "{url}: {resp}");
        assert_eq!(resp["code"], "upstream_refused", "{url}");
        let detail = resp["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{url}: {detail}");
        assert!(detail.contains("operators"), "{url}: {detail}");
        // The bootstrap admin user is an operator.
        assert_eq!(register(&app, &admin, "acme", url).await.0, 201, "{url}");
    }
    // Cloud metadata: nobody, operators included.
    for url in [
        "http://169.254.169.254/latest",
        "http://[fd00:ec2::254]",
        "http://100.100.100.200",
    ] {
        for (who, owner) in [(&bob, "bob"), (&admin, "acme")] {
            let (status, resp) = register(&app, who, owner, url).await;
            assert_eq!(status, 403, "{url}: {resp}");
            let detail = resp["detail"].as_str().unwrap();
            assert!(detail.contains("--allow-metadata-upstreams"), "{detail}");
        }
    }
    assert_eq!(
        register(&app, &bob, "bob", "http://93.184.215.14:9")
            .await
            .0,
        201
    );
    let (status, resp) = register(&app, &bob, "bob", "http://no-such-host.invalid").await;
    assert_eq!(status, 422, "{resp}");
}

#[tokio::test]
async fn metadata_upstreams_only_when_allowed_and_only_for_operators() {
    let app = spawn_app_with(|c| c.allow_metadata_upstreams = true, Arc::new(SystemClock)).await;
    let bob = app.github_user_auth("bob", 102, Scope::Admin).await;
    let url = "http://169.254.169.254/latest";
    assert_eq!(register(&app, &app.admin_auth(), "acme", url).await.0, 201);
    let (status, resp) = register(&app, &bob, "bob", url).await;
    assert_eq!(status, 403, "{resp}");
    assert!(resp["detail"].as_str().unwrap().contains("metadata"));
}

/// An app of a non-operator whose upstream is (or now resolves to) an
/// internal address, as a name re-pointed after registration would be.
async fn planted(app: &TestApp, upstream: &str) -> String {
    let bob = app.github_user_auth("bob", 102, Scope::Admin).await;
    let (_, _, me) = app
        .call(Method::GET, "/users/current", Some(&bob), None)
        .await;
    let store = app.store().await;
    store
        .create_app(&AppRecord {
            owner: "bob".into(),
            name: "inside".into(),
            upstream: upstream.into(),
            timeout_ms: 5_000,
            concurrency: None,
            created_by: UserId::from_stored(me["user_id"].as_str().unwrap().to_owned()),
            created_at: Timestamp(1),
        })
        .await
        .unwrap();
    store.close().await;
    bob
}

/// One request on a fresh connection (so the server's hand-written path
/// takes it for HTTP/1.1, and hyper's for HTTP/1.0); the whole answer.
async fn raw_call(app: &TestApp, version: &str, path: &str, auth: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let raw = format!(
        "POST {path} HTTP/{version}\r\nhost: x\r\nauthorization: {auth}\r\n\
         content-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn connections_to_internal_addresses_are_refused_on_both_paths() {
    let app = spawn_app().await;
    let (base, u) = upstream::start().await;
    // `localhost` resolves to loopback only when the call is made.
    let port = base.rsplit(':').next().unwrap();
    let bob = planted(&app, &format!("http://localhost:{port}/headers")).await;
    // The same upstream in an operator's app is served, and its upstream
    // connection kept: Bob's call must not reuse it.
    app.admin()
        .create_app(
            "acme/inside",
            &format!("http://localhost:{port}/headers"),
            Some(5_000),
        )
        .await
        .unwrap();
    let out = raw_call(&app, "1.1", "/run/acme/inside", &bob).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(u.hits.load(Ordering::SeqCst), 1);
    for version in ["1.1", "1.0"] {
        let out = raw_call(&app, version, "/run/bob/inside", &bob).await;
        assert!(out.contains(" 502 "), "{version}: {out}");
        assert!(out.contains("x-fal-request-id"), "{version}: {out}");
        assert!(
            out.contains("refused") && out.contains("loopback"),
            "{version}: {out}"
        );
    }
    // Through the router too (a kept client connection is hyper's).
    let (status, _, resp) = app
        .call(Method::POST, "/run/bob/inside", Some(&bob), Some("{}"))
        .await;
    assert_eq!(status, 502, "{resp}");
    assert_eq!(
        u.hits.load(Ordering::SeqCst),
        1,
        "Bob's calls reached the upstream"
    );
}

#[tokio::test]
async fn ip_literal_upstreams_are_refused_on_hypers_path_too() {
    let app = spawn_app().await;
    let (base, u) = upstream::start().await;
    let bob = planted(&app, &format!("{base}/headers")).await;
    for version in ["1.0", "1.1"] {
        let mut s = tokio::net::TcpStream::connect(app.url.trim_start_matches("http://"))
            .await
            .unwrap();
        let raw = format!(
            "GET /run/bob/inside HTTP/{version}\r\nhost: x\r\nauthorization: {bob}\r\nconnection: close\r\n\r\n"
        );
        s.write_all(raw.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains(" 502 "), "{version}: {out}");
        assert!(out.contains("loopback"), "{version}: {out}");
    }
    assert_eq!(u.hits.load(Ordering::SeqCst), 0, "the upstream was reached");
}
