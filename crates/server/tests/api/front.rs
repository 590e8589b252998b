//! The hand-written HTTP/1.1 path for model calls, spoken to byte by byte:
//! pipelining, keep-alive after a refusal, the requests it passes on to the
//! general path (HTTP/1.0, `Expect`), every way an upstream can frame a
//! response, and a client that breaks chunked framing.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::upstream;

fn host_of(app: &TestApp) -> String {
    app.url.trim_start_matches("http://").to_owned()
}

/// Sends `raw` on a fresh connection and reads until the server closes it.
async fn exchange(app: &TestApp, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(host_of(app)).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

async fn setup() -> (TestApp, upstream::Upstream, String) {
    let app = spawn_app().await;
    let (base, u) = upstream::start().await;
    let admin = app.admin();
    admin
        .create_app("acme/reporter", &format!("{base}/headers"), Some(5_000))
        .await
        .unwrap();
    admin
        .create_app("acme/count", &format!("{base}/count"), Some(5_000))
        .await
        .unwrap();
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    admin
        .create_app("acme/gone", &format!("http://{closed}"), Some(2_000))
        .await
        .unwrap();
    let k = admin.create_key("API", "raw").await.unwrap();
    let auth = format!("Key {}:{}", k.key_id, k.key_secret);
    (app, u, auth)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (app, u, auth) = setup().await;
    let raw = format!(
        "GET /run/acme/reporter/first HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\r\n\
         POST /run/acme/reporter/second HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
         content-length: 2\r\n\r\n{{}}\
         GET /run/acme/reporter/third HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
         connection: close\r\n\r\n"
    );
    let out = exchange(&app, raw.as_bytes()).await;
    assert_eq!(out.matches("HTTP/1.1 200").count(), 3, "{out}");
    let at = |p: &str| out.find(p).unwrap_or_else(|| panic!("{p} missing: {out}"));
    assert!(at("/headers/first") < at("/headers/second"));
    assert!(at("/headers/second") < at("/headers/third"));
    assert!(out.contains("\"content-length\":\"2\""), "{out}");
    assert_eq!(u.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refused_call_leaves_the_connection_usable() {
    let (app, u, auth) = setup().await;
    let bad = format!(
        "Key {}:{}",
        app.admin_id,
        "fal_sk_".to_owned() + &"0".repeat(72)
    );
    let raw = format!(
        "POST /run/acme/reporter HTTP/1.1\r\nhost: x\r\nauthorization: {bad}\r\n\
         content-type: application/json\r\ncontent-length: 9\r\n\r\n{{\"a\": 1}}\
         GET /run/acme/missing HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\r\n\
         GET /run/acme/reporter HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
         connection: close\r\n\r\n"
    );
    let out = exchange(&app, raw.as_bytes()).await;
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["401", "404", "200"], "{out}");
    assert!(out.contains("No user found for Key ID and Secret"));
    assert!(out.contains("www-authenticate: Key"));
    assert_eq!(
        u.hits.load(Ordering::SeqCst),
        1,
        "only the valid call went up"
    );
}

#[tokio::test]
async fn http_1_0_and_expect_continue_take_the_general_path() {
    let (app, _u, auth) = setup().await;
    let out = exchange(
        &app,
        format!("GET /run/acme/reporter/old HTTP/1.0\r\nauthorization: {auth}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(out.starts_with("HTTP/1.0 200"), "{out}");
    assert!(out.contains("/headers/old"));
    // The general path answers an unreachable upstream alike: 502 JSON
    // with the request id.
    let out = exchange(
        &app,
        format!("GET /run/acme/gone HTTP/1.0\r\nauthorization: {auth}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(out.starts_with("HTTP/1.0 502"), "{out}");
    assert!(out.contains("x-fal-request-id: ") && out.contains("upstream_unreachable"));

    let mut s = TcpStream::connect(host_of(&app)).await.unwrap();
    s.write_all(
        format!(
            "POST /run/acme/count HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
             expect: 100-continue\r\ncontent-length: 5\r\nconnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut interim))
        .await
        .expect("100 Continue came before the body was sent")
        .unwrap();
    assert!(interim.starts_with(b"HTTP/1.1 100 Continue"));
    s.write_all(b"hello").await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.contains("200 OK") && out.contains("{\"bytes\":5}"),
        "{out}"
    );
}

#[tokio::test]
async fn a_broken_chunked_body_closes_the_connection() {
    let (app, _u, auth) = setup().await;
    let out = exchange(
        &app,
        format!(
            "POST /run/acme/count HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
             transfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(!out.contains("200 OK"), "{out}");
}

/// An upstream written by hand, to answer with framings a framework would
/// not choose: a body ended by closing, chunks with a trailer, and `HEAD`.
async fn raw_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut served = 0;
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    served += 1;
                    if line.contains("/drop-second") {
                        // Drops a kept connection as its second request
                        // arrives, as an upstream closing idle ones would.
                        if served > 1 {
                            return;
                        }
                        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await
                            .unwrap();
                    } else if line.starts_with("HEAD ") {
                        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
                            .await
                            .unwrap();
                    } else if line.contains("/until-close") {
                        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello ")
                            .await
                            .unwrap();
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        s.write_all(b"until close").await.unwrap();
                        return;
                    } else if line.contains("/chunked") {
                        s.write_all(
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                              4\r\nchun\r\n3;x=y\r\nked\r\n0\r\nx-trailer: 1\r\n\r\n",
                        )
                        .await
                        .unwrap();
                    } else {
                        s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                            .await
                            .unwrap();
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// A call to `acme/raw` (the hand-written upstream) at `path`.
fn call_raw(
    app: &TestApp,
    auth: &str,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    app.http
        .request(method, format!("{}/run/acme/raw{path}", app.url))
        .header("authorization", auth)
}

#[tokio::test]
async fn every_upstream_framing_reaches_the_client_intact() {
    let (app, _u, auth) = setup().await;
    let base = raw_upstream().await;
    app.admin()
        .create_app("acme/raw", &base, Some(5_000))
        .await
        .unwrap();
    // One reqwest client: each answer must leave the connection in step.
    let get = |path: &str| call_raw(&app, &auth, reqwest::Method::GET, path);
    for _ in 0..2 {
        let r = get("/until-close").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("x-fal-request-id"));
        assert_eq!(r.text().await.unwrap(), "hello until close");

        let r = get("/chunked").send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "chunked");

        let r = call_raw(&app, &auth, reqwest::Method::HEAD, "/x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"], "5");

        let r = get("/empty").send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(r.text().await.unwrap(), "");
    }
}

/// Whether the server closes `s` within `within`, reading (and discarding)
/// whatever it sends first.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut sink = Vec::new();
    matches!(
        tokio::time::timeout(within, s.read_to_end(&mut sink)).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed() {
    let app = spawn_app_with(
        |c| c.idle_timeout = Duration::from_millis(300),
        std::sync::Arc::new(fal_core::SystemClock),
    )
    .await;
    let (base, _u) = upstream::start().await;
    app.admin()
        .create_app("acme/reporter", &format!("{base}/headers"), Some(5_000))
        .await
        .unwrap();
    let auth = app.admin_auth();
    let started = std::time::Instant::now();

    // A connection that has sent `raw`.
    let sent = |raw: String| {
        let host = host_of(&app);
        async move {
            let mut s = TcpStream::connect(host).await.unwrap();
            s.write_all(raw.as_bytes()).await.unwrap();
            s
        }
    };
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\r\n");
    // Says nothing at all.
    let mut silent = sent(String::new()).await;
    // Starts a head and stalls.
    let mut slow = sent("GET /run/acme/reporter HTTP/1.1\r\nhost: x\r\n".into()).await;
    // A model call answered, then nothing more (the hand-written path).
    let mut after_call = sent(get("/run/acme/reporter")).await;
    // An API call answered, then nothing more (hyper's path).
    let mut after_api = sent(get("/users/current")).await;
    for (name, s) in [
        ("silent", &mut silent),
        ("slow head", &mut slow),
        ("idle after a model call", &mut after_call),
        ("idle after an API call", &mut after_api),
    ] {
        assert!(
            closed_within(s, Duration::from_secs(5)).await,
            "{name}: connection still open"
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A connection in use is not cut: requests 200 ms apart, past 300 ms in all.
    let mut busy = TcpStream::connect(host_of(&app)).await.unwrap();
    for _ in 0..3 {
        busy.write_all(get("/run/acme/reporter").as_bytes())
            .await
            .unwrap();
        let mut got = [0u8; 12];
        busy.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"HTTP/1.1 200");
        // Drain the rest of this answer before waiting.
        let mut rest = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(50), busy.read(&mut rest)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_kept_connection_closed_unanswered_is_retried_only_when_safe() {
    let (app, _u, auth) = setup().await;
    let base = raw_upstream().await;
    app.admin()
        .create_app("acme/raw", &base, Some(5_000))
        .await
        .unwrap();
    let call = |method| call_raw(&app, &auth, method, "/drop-second").body("{}");
    // Opens the connection that will be kept.
    let r = call(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The kept connection is dropped unanswered: a GET goes again on a new one.
    let r = call(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    // A POST is not repeated: the upstream may have acted on it.
    let r = call(reqwest::Method::POST).send().await.unwrap();
    assert_eq!(r.status(), 502);
    // And the next call works again.
    let r = call(reqwest::Method::GET).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
