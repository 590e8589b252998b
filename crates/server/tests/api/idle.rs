//! What an idle connection holds: once quiet for a second, no buffers; a
//! busy one keeps its set between requests. Counted by
//! `fal_server::front::buffers_held`, per thread: `#[tokio::test]` serves
//! every connection on the test's own thread.

use std::time::Duration;

use fal_server::front::buffers_held;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app;
use crate::upstream;

/// Reads one answer with a `content-length` from `s`; returns its head.
async fn read_answer(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + length {
                return head.to_owned();
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed before a whole answer");
        got.extend_from_slice(&chunk[..n]);
    }
}

/// Lets the server's tasks (on this thread) run until they wait.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Past the server's grace (1 s) for a quiet connection.
async fn quiet() {
    tokio::time::sleep(Duration::from_millis(1_500)).await;
}

#[tokio::test]
async fn quiet_connections_hold_no_buffers() {
    let app = spawn_app().await;
    let (base, _u) = upstream::start().await;
    let admin = app.admin();
    admin
        .create_app("acme/reporter", &format!("{base}/headers"), Some(5_000))
        .await
        .unwrap();
    let k = admin.create_key("API", "idle").await.unwrap();
    let host = app.url.trim_start_matches("http://").to_owned();
    let request = format!(
        "GET /run/acme/reporter HTTP/1.1\r\nhost: x\r\nauthorization: Key {}:{}\r\n\r\n",
        k.key_id, k.key_secret
    );

    // Connected, nothing sent yet: no buffers.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(TcpStream::connect(&host).await.unwrap());
    }
    settle().await;
    assert_eq!(buffers_held(), 0, "before any request");

    // Half a head: that connection holds a set until the rest comes.
    let (first, rest) = request.split_at(20);
    conns[0].write_all(first.as_bytes()).await.unwrap();
    settle().await;
    assert_eq!(buffers_held(), 1, "while a head is arriving");
    conns[0].write_all(rest.as_bytes()).await.unwrap();
    assert!(read_answer(&mut conns[0]).await.starts_with("HTTP/1.1 200"));

    // One call on each, twice: kept right after, given back once quiet.
    for round in 0..2 {
        for c in &mut conns {
            c.write_all(request.as_bytes()).await.unwrap();
            let head = read_answer(c).await;
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        }
        settle().await;
        assert_eq!(buffers_held(), 3, "just after round {round}");
        quiet().await;
        assert_eq!(buffers_held(), 0, "quiet after round {round}");
    }
}
