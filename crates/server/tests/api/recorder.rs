//! A hand-written model upstream that records every request it receives,
//! byte for byte, and answers by the path's last segment with framings a
//! framework would not send (both framings at once, a `gzip` coding, broken
//! chunks, trailers, a 304 with a length).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Which of the upstream's connections it came on.
    pub conn: usize,
    /// The head, as sent.
    pub head: String,
    /// The body bytes, framing included, as sent.
    pub body: Vec<u8>,
}

/// A hand-written upstream that records every request it receives, byte
/// for byte, and answers by path with framings a framework would not send.
#[derive(Clone)]
pub struct Recorder {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Bytes received on every connection, complete requests or not.
    pub received: Arc<AtomicUsize>,
}

impl Recorder {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Where a chunked body that starts `buf` ends, if all of it is there.
fn chunked_end(buf: &[u8]) -> Option<usize> {
    let line_end = |from: usize| {
        buf[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| from + p)
    };
    let mut pos = 0;
    loop {
        let end = line_end(pos)?;
        let line = String::from_utf8_lossy(&buf[pos..end]);
        let size = line
            .split([';', ' ', '\t'])
            .next()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .unwrap_or(0);
        pos = end + 2;
        if size == 0 {
            // Trailer lines, then an empty one.
            loop {
                let end = line_end(pos)?;
                let empty = end == pos;
                pos = end + 2;
                if empty {
                    return Some(pos);
                }
            }
        }
        pos += size + 2;
        if pos > buf.len() {
            return None;
        }
    }
}

/// What the upstream answers to any `HEAD` request: the default answer's
/// head, as a well-behaved server sends it.
const HEAD_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";

/// What the upstream answers to `head`.
fn answer_for(head: &str) -> &'static [u8] {
    let line = head.lines().next().unwrap_or_default();
    let path = line.split(' ').nth(1).unwrap_or_default();
    let path = path.rsplit('/').next().unwrap_or_default();
    match path {
        "both" => {
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n"
        }
        "gzip" => {
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        }
        "no-content" => b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
        "not-modified" => b"HTTP/1.1 304 Not Modified\r\ncontent-length: 42\r\netag: \"x\"\r\n\r\n",
        "broken" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n",
        "trailer" => {
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-up-trailer\r\n\r\n\
              5\r\nhello\r\n0\r\nx-up-trailer: secret\r\n\r\n"
        }
        "nosniff" => {
            b"HTTP/1.1 200 OK\r\nX-Content-Type-Options: nosniff\r\ncontent-length: 2\r\n\r\nok"
        }
        "ratelimit" => {
            b"HTTP/1.1 200 OK\r\nRateLimit-Limit: 5\r\nratelimit-remaining: 4\r\n\
              RateLimit-Reset: 9\r\ncontent-length: 2\r\n\r\nok"
        }
        "slow" => b"",
        _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    }
}

pub async fn start() -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = Recorder {
        base: format!("http://{}", listener.local_addr().unwrap()),
        seen: Arc::default(),
        received: Arc::default(),
    };
    let (seen, received) = (r.seen.clone(), r.received.clone());
    tokio::spawn(async move {
        for conn in 0.. {
            let (mut s, _) = listener.accept().await.unwrap();
            let (seen, received) = (seen.clone(), received.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // A whole request: head, then its body.
                    let request = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                            let lower = head.to_ascii_lowercase();
                            let rest = &buf[end + 4..];
                            let body_len = if lower.contains("transfer-encoding: chunked") {
                                chunked_end(rest)
                            } else {
                                let n = lower
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .map_or(0, |v| v.trim().parse().unwrap_or(0));
                                (rest.len() >= n).then_some(n)
                            };
                            if let Some(n) = body_len {
                                let body = rest[..n].to_vec();
                                buf.drain(..end + 4 + n);
                                break Seen { conn, head, body };
                            }
                        }
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                received.fetch_add(n, Ordering::SeqCst);
                                buf.extend_from_slice(&chunk[..n]);
                            }
                        }
                    };
                    let answer = if request.head.starts_with("HEAD ") {
                        // A HEAD answer has no body, whatever its length says.
                        HEAD_ANSWER
                    } else {
                        answer_for(&request.head)
                    };
                    seen.lock().unwrap().push(request);
                    if answer.is_empty() {
                        // Never answers (the app's timeout is tested).
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    r
}
