//! What leaves for an upstream and what comes back, on both forwarding
//! paths (the hand-written one, and hyper's, which a request with `Expect`
//! takes), seen from raw sockets on both sides: our cookies stay home, paths
//! stay under the app, framing is strict and trailers go nowhere, and every
//! gateway answer says `nosniff`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_app};
use crate::recorder::{self, Recorder};

/// Which forwarding path a request takes.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// The hand-written path (plain HTTP/1.1 with `Authorization`).
    Hand,
    /// hyper's path (`Expect: 100-continue` sends it there).
    Hyper,
}

const BOTH: [Via; 2] = [Via::Hand, Via::Hyper];

impl Via {
    /// A request head; `extra` holds whole header lines.
    fn head(self, method: &str, target: &str, auth: &str, extra: &str) -> String {
        let expect = match self {
            Via::Hand => "",
            Via::Hyper => "expect: 100-continue\r\n",
        };
        format!(
            "{method} {target} HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n{expect}{extra}\r\n"
        )
    }
}

async fn setup() -> (TestApp, Recorder, String) {
    let app = spawn_app().await;
    let r = recorder::start().await;
    let admin = app.admin();
    admin
        .create_app("acme/rec", &format!("{}/base", r.base), Some(2_000))
        .await
        .unwrap();
    admin
        .create_app("acme/slow", &format!("{}/slow", r.base), Some(300))
        .await
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    admin
        .create_app("acme/gone", &format!("http://{closed}"), Some(2_000))
        .await
        .unwrap();
    let k = admin.create_key("API", "raw").await.unwrap();
    (app, r, format!("Key {}:{}", k.key_id, k.key_secret))
}

/// Sends `raw` on a fresh connection; returns what came back before the
/// server closed it, or `None` if it kept it open for 3 s.
async fn exchange(app: &TestApp, raw: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&out).into_owned()),
        Ok(Err(_)) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

/// The statuses of the answers in `out`, interim `100`s left out.
fn statuses(out: &str) -> Vec<u16> {
    out.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| out.get(i + 9..i + 12)?.parse().ok())
        .filter(|s| *s != 100)
        .collect()
}

/// The last answer's status, head (lowercase) and body.
fn last_answer(out: &str) -> (u16, String, String) {
    let start = out
        .rfind("HTTP/1.1 ")
        .unwrap_or_else(|| panic!("no answer: {out:?}"));
    let answer = &out[start..];
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let status = answer[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn our_cookies_never_reach_an_upstream() {
    let (app, r, auth) = setup().await;
    for via in BOTH {
        let before = r.seen().len();
        let raw = via.head(
            "GET",
            "/run/acme/rec/c",
            &auth,
            "cookie: a=1; fal_session=tok1; b=2\r\n\
             cookie: __Host-fal_session=tok2\r\n\
             cookie: theme=dark\r\n\
             cookie: __Secure-fal_csrf=c; fal_oauth=o;__Host-fal_oauth=p\r\n\
             connection: close\r\n",
        );
        let out = exchange(&app, raw.as_bytes()).await.unwrap();
        assert_eq!(statuses(&out), [200], "{via:?}: {out}");
        let seen = r.seen();
        assert_eq!(seen.len(), before + 1, "{via:?}");
        let head = seen[before].head.to_ascii_lowercase();
        assert!(
            !head.contains("fal_"),
            "{via:?}: our cookie went up: {head}"
        );
        assert!(!head.contains("tok") && !head.contains("authorization"));
        let cookies: Vec<&str> = head
            .lines()
            .filter_map(|l| l.strip_prefix("cookie: "))
            .collect();
        assert_eq!(cookies, ["a=1; b=2", "theme=dark"], "{via:?}: {head}");
    }
}

#[tokio::test]
async fn every_gateway_answer_says_nosniff_once() {
    let (app, _r, auth) = setup().await;
    let bad = format!(
        "Key {}:{}",
        app.admin_id,
        "fal_sk_".to_owned() + &"0".repeat(72)
    );
    for via in BOTH {
        for (target, auth, status) in [
            ("/run/acme/rec/plain", auth.as_str(), 200),
            ("/run/acme/rec/nosniff", &auth, 200),
            ("/run/acme/rec/no-content", &auth, 204),
            ("/run/acme/rec/x", &bad, 401),
            ("/run/acme/missing", &auth, 404),
            ("/run/acme", &auth, 404),
            ("/run/", &auth, 404),
            ("/run/acme/gone", &auth, 502),
            ("/run/acme/slow", &auth, 504),
        ] {
            let raw = via.head("GET", target, auth, "connection: close\r\n");
            let out = exchange(&app, raw.as_bytes()).await.unwrap();
            let (got, head, _) = last_answer(&out);
            assert_eq!(got, status, "{via:?} {target}: {out}");
            assert_eq!(
                head.matches("x-content-type-options: nosniff").count(),
                1,
                "{via:?} {target}: {out}"
            );
        }
    }
}

#[tokio::test]
async fn dot_segments_never_leave_the_apps_base_path() {
    let (app, r, auth) = setup().await;
    for via in BOTH {
        for target in [
            "/run/acme/rec/../../../admin",
            "/run/acme/rec/..",
            "/run/acme/rec/./x",
            "/run/acme/rec/%2e%2e/x",
            "/run/acme/rec/%2E%2E/x",
            "/run/acme/rec/.%2e/x",
            "/run/acme/rec/..%2fadmin",
            "/run/acme/rec/x%2F..%2F..%2Fadmin",
            "/run/acme/rec/..%5cadmin",
            "/run/acme/rec/..\\admin",
            "/run/acme/rec/..;/admin?x=1",
        ] {
            let raw = via.head("GET", target, &auth, "connection: close\r\n");
            let out = exchange(&app, raw.as_bytes()).await.unwrap();
            let (status, _, body) = last_answer(&out);
            assert_eq!(status, 400, "{via:?} {target}: {out}");
            assert!(
                body.contains("\"bad_request\"") && body.contains("%2e%2e"),
                "{via:?} {target}: {body}"
            );
        }
    }
    assert!(r.seen().is_empty(), "{:?}", r.seen());
    // An ordinary path with dots in names still goes through.
    let raw = Via::Hand.head(
        "GET",
        "/run/acme/rec/.well-known/a..b.json",
        &auth,
        "connection: close\r\n",
    );
    let out = exchange(&app, raw.as_bytes()).await.unwrap();
    assert_eq!(statuses(&out), [200], "{out}");
    assert!(
        r.seen()[0]
            .head
            .starts_with("GET /base/.well-known/a..b.json ")
    );
}

#[tokio::test]
async fn trailers_are_dropped_both_ways() {
    let (app, r, auth) = setup().await;
    for via in BOTH {
        let before = r.seen().len();
        let mut raw = via.head(
            "POST",
            "/run/acme/rec/trailer",
            &auth,
            "transfer-encoding: chunked\r\nte: trailers\r\nconnection: close\r\n",
        );
        raw.push_str("5\r\nhello\r\n0\r\nx-client-trailer: secret\r\n\r\n");
        let out = exchange(&app, raw.as_bytes()).await.unwrap();
        let (status, head, body) = last_answer(&out);
        assert_eq!(status, 200, "{via:?}: {out}");
        assert!(head.contains("transfer-encoding: chunked"), "{out}");
        assert_eq!(body, "5\r\nhello\r\n0\r\n\r\n", "{via:?}: {out}");
        assert!(
            !out.to_ascii_lowercase().contains("trailer"),
            "{via:?}: {out}"
        );
        let seen = &r.seen()[before];
        assert_eq!(
            String::from_utf8_lossy(&seen.body),
            "5\r\nhello\r\n0\r\n\r\n",
            "{via:?}"
        );
        assert!(!seen.head.to_ascii_lowercase().contains("trailer:"));
    }
}

#[tokio::test]
async fn loose_chunk_lines_and_lengths_are_refused_and_the_connection_closed() {
    let (app, r, auth) = setup().await;
    let chunked = "transfer-encoding: chunked\r\n";
    // The last field: whether hyper's decoder refuses it too. It does not
    // refuse control bytes in an extension; it drops extensions and frames
    // the body anew, so they never reach the upstream (checked below).
    for via in BOTH {
        for (extra, body, hyper_refuses) in [
            (chunked, "5 xyz\r\nhello\r\n0\r\n\r\n", true),
            (chunked, "5 3\r\nhello\r\n0\r\n\r\n", true),
            (chunked, "5;a=\0\r\nhello\r\n0\r\n\r\n", false),
            (chunked, "5;a\x01b\r\nhello\r\n0\r\n\r\n", false),
            (chunked, "5;a\x7f\r\nhello\r\n0\r\n\r\n", false),
            ("content-length: +5\r\n", "hello", true),
            ("content-length: 0x5\r\n", "hello", true),
            ("content-length: 5 5\r\n", "hello", true),
        ] {
            let mut raw = via.head("POST", "/run/acme/rec/x", &auth, extra);
            raw.push_str(body);
            if matches!(via, Via::Hyper) && !hyper_refuses {
                let before = r.seen().len();
                raw = raw.replacen("\r\n\r\n", "\r\nconnection: close\r\n\r\n", 1);
                let out = exchange(&app, raw.as_bytes()).await.unwrap();
                assert_eq!(statuses(&out), [200], "{via:?} {body:?}: {out}");
                let seen = &r.seen()[before];
                assert_eq!(seen.body, b"5\r\nhello\r\n0\r\n\r\n", "{body:?}");
                continue;
            }
            // No `Connection: close`: the server must close by itself.
            let received = r.received.load(Ordering::SeqCst);
            let out = exchange(&app, raw.as_bytes())
                .await
                .unwrap_or_else(|| panic!("{via:?} {extra:?} {body:?}: still open"));
            assert_eq!(statuses(&out), [400], "{via:?} {extra:?} {body:?}: {out}");
            if matches!(via, Via::Hand) {
                // Broken in the bytes that came with the head: refused
                // before the upstream saw any of it.
                assert_eq!(r.received.load(Ordering::SeqCst), received, "{body:?}");
            }
        }
    }
}

#[tokio::test]
async fn upstream_framing_faults_are_a_502_and_the_connection_is_not_reused() {
    let (app, r, auth) = setup().await;
    for via in BOTH {
        for fault in ["both", "gzip", "broken"] {
            let before = r.seen().len();
            let raw = via.head(
                "GET",
                &format!("/run/acme/rec/{fault}"),
                &auth,
                "connection: close\r\n",
            );
            let out = exchange(&app, raw.as_bytes()).await.unwrap();
            let (status, head, body) = last_answer(&out);
            assert_eq!(status, 502, "{via:?} {fault}: {out}");
            assert!(head.contains("x-fal-request-id"), "{via:?} {fault}: {out}");
            assert!(
                body.contains("upstream_unreachable"),
                "{via:?} {fault}: {out}"
            );
            assert!(!out.contains("hello"), "{via:?} {fault}: {out}");
            // The next call does not get the faulty connection back.
            let raw = via.head("GET", "/run/acme/rec/ok", &auth, "connection: close\r\n");
            let out = exchange(&app, raw.as_bytes()).await.unwrap();
            assert_eq!(statuses(&out), [200], "{via:?} after {fault}: {out}");
            let seen = r.seen();
            assert_eq!(seen.len(), before + 2);
            assert_ne!(
                seen[before].conn,
                seen[before + 1].conn,
                "{via:?}: the connection that sent {fault} was used again"
            );
        }
    }
}

#[tokio::test]
async fn no_content_and_not_modified_pass_on_no_framing() {
    let (app, _r, auth) = setup().await;
    for via in BOTH {
        for (path, status) in [("no-content", 204), ("not-modified", 304)] {
            let target = format!("/run/acme/rec/{path}");
            // Twice on one connection: the answer must leave it in step.
            let one = via.head("GET", &target, &auth, "");
            let two = via.head("GET", &target, &auth, "connection: close\r\n");
            let out = exchange(&app, format!("{one}{two}").as_bytes())
                .await
                .unwrap();
            assert_eq!(statuses(&out), [status, status], "{via:?}: {out}");
            let lower = out.to_ascii_lowercase();
            assert!(
                !lower.contains("content-length") && !lower.contains("transfer-encoding"),
                "{via:?} {path}: {out}"
            );
        }
    }
}

#[tokio::test]
async fn connect_is_refused_with_405() {
    let (app, r, auth) = setup().await;
    // First on a connection (the front sees it), then after a request that
    // went to hyper (hyper and the router see it).
    let connect = |target: &str| {
        format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\nauthorization: {auth}\r\n\r\n")
    };
    for target in ["example.com:443", "/run/acme/rec/x"] {
        let out = exchange(&app, connect(target).as_bytes()).await.unwrap();
        assert_eq!(statuses(&out), [405], "{target}: {out}");
        assert!(out.contains("\"method_not_allowed\""), "{out}");
        let first = format!(
            "GET /run/acme/rec/x HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\nauthorization: {auth}\r\n\r\n"
        );
        let out = exchange(&app, format!("{first}{}", connect(target)).as_bytes())
            .await
            .unwrap();
        assert_eq!(statuses(&out), [200, 405], "{target}: {out}");
        assert!(out.contains("\"method_not_allowed\""), "{out}");
    }
    assert_eq!(r.seen().len(), 2, "only the GETs went up");
}

#[tokio::test]
async fn a_refusal_honours_the_clients_connection_close() {
    let (app, _r, auth) = setup().await;
    let bad = format!(
        "Key {}:{}",
        app.admin_id,
        "fal_sk_".to_owned() + &"0".repeat(72)
    );
    for via in BOTH {
        for (target, auth, status) in [
            ("/run/acme/x", bad.as_str(), 401),
            ("/run/acme/missing", &auth, 404),
        ] {
            let raw = via.head("GET", target, auth, "connection: close\r\n");
            let out = exchange(&app, raw.as_bytes())
                .await
                .unwrap_or_else(|| panic!("{via:?} {status}: connection left open"));
            let (got, head, _) = last_answer(&out);
            assert_eq!(got, status, "{via:?}: {out}");
            assert!(head.contains("connection: close"), "{via:?}: {out}");
        }
    }
}
