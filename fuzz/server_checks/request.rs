//! `fal_server::h1::request::classify` over any bytes, and the upstream
//! head `h1::write::upstream_head` writes for what it forwards.
//!
//! Properties: no panic; a head it forwards is a `/run/…` request with one
//! `Authorization`, a plain target and a framing it could read, and the
//! head written for the upstream is a well-formed HTTP/1.1 request that
//! keeps our credentials, `Host`, hop-by-hop and `Connection`-named headers
//! and the client's identity headers behind, says who is calling exactly
//! once, and frames the body as the client did.

use fal_core::{KeyId, Principal, Scope, UserId};
use fal_server::h1::request::{Head, classify};
use fal_server::h1::target::{is_plain_target, split_upstream};
use fal_server::h1::{Framing, header_slots, write};

/// Header names the upstream must never get from the client.
const NEVER_FORWARDED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The check.
pub fn check(data: &[u8]) {
    let mut slots = header_slots();
    let run = match classify(data, &mut slots) {
        Head::Partial | Head::HandOff => return,
        Head::Refuse { head_len, .. } => {
            assert!(head_len <= data.len());
            return;
        }
        Head::Run(run) => run,
    };
    assert!(run.head_len <= data.len());
    assert!(run.path.starts_with("/run/"), "{:?}", run.path);
    assert!(!run.path.contains('?'));
    assert!(run.query.is_empty() || run.query.starts_with('?'));
    assert!(is_plain_target(&format!("{}{}", run.path, run.query)));
    let named = |n: &str| {
        run.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(n))
            .count()
    };
    assert_eq!(named("authorization"), 1);
    assert!(named("expect") == 0 && named("upgrade") == 0);
    match run.body {
        Framing::Chunked => assert_eq!(named("content-length"), 0),
        Framing::Length(n) => assert!(n > 0 && named("transfer-encoding") == 0),
        Framing::Empty => assert_eq!(named("transfer-encoding"), 0),
        Framing::UntilClose => panic!("a request never ends by closing"),
    }

    let upstream = split_upstream("http://127.0.0.1:9/base").expect("a plain upstream");
    let principal = Principal {
        user_id: UserId::from_stored("user-1".into()),
        key_id: "00000000-0000-0000-0000-000000000007".parse::<KeyId>().ok(),
        session_id: None,
        scope: Scope::Api,
        quota: None,
        apps: None,
    };
    let tail = run
        .path
        .splitn(5, '/')
        .nth(4)
        .map_or(String::new(), |t| format!("/{t}"));
    let mut out = Vec::new();
    write::upstream_head(&mut out, &run, &upstream, &tail, &principal, &[b'r'; 36]);

    let mut headers = [httparse::EMPTY_HEADER; 80];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(&out);
    assert!(
        matches!(parsed, Ok(httparse::Status::Complete(n)) if n == out.len()),
        "the upstream head does not parse: {parsed:?}\n{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(req.method, Some(run.method));
    let sent_path = req.path.expect("a path");
    assert!(sent_path.starts_with("/base"), "{sent_path}");
    assert!(sent_path.ends_with(run.query), "{sent_path}");
    let count = |n: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(n))
            .count()
    };
    for name in NEVER_FORWARDED {
        let ours = usize::from(*name == "transfer-encoding" && run.body == Framing::Chunked);
        assert_eq!(count(name), ours, "{name} reached the upstream");
    }
    assert_eq!(count("host"), 1);
    for name in ["x-fal-user-id", "x-fal-key-id", "x-fal-request-id"] {
        assert_eq!(count(name), 1, "{name}");
    }
    let value = |n: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(n))
            .map(|h| h.value)
    };
    assert_eq!(value("x-fal-user-id"), Some(&b"user-1"[..]));
    match run.body {
        Framing::Length(n) => {
            assert_eq!(count("content-length"), 1);
            assert_eq!(value("content-length"), Some(n.to_string().as_bytes()));
        }
        _ => assert_eq!(count("content-length"), 0),
    }
    // Every header the client's `Connection` named stays behind too.
    for h in run
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
    {
        for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if let Ok(name) = std::str::from_utf8(token)
                && !name.is_empty()
                && !name.eq_ignore_ascii_case("close")
                && !name.eq_ignore_ascii_case("transfer-encoding")
            {
                assert_eq!(
                    count(name),
                    0,
                    "{name}, named in Connection, reached the upstream"
                );
            }
        }
    }
}
