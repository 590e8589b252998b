//! Per-key rate limits as a caller meets them: a 429 with `Retry-After` and
//! our JSON body once a key's calls in the window are used up, on both
//! forwarding paths and the REST API; `RateLimit-*` headers on every answer
//! to a limited key, none for others, and never an upstream's own; a
//! changed limit applies without a restart; several servers sharing
//! PostgreSQL hold a limit for the cluster within 10% over 10 s.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fal_core::{Clock, ManualClock, RateLimit, SystemClock, Timestamp};
use fal_store::{KeyAdmin, SqlStore};
use reqwest::Method;
use reqwest::header::HeaderMap;

use crate::helpers::{TestApp, spawn_app_with};
use crate::postgres::Db;
use crate::recorder;

/// A whole minute: windows of every period start here.
const START: i64 = 1_800_000_000_000;

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).map(|v| v.to_str().unwrap())
}

fn quota(h: &HeaderMap) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        header(h, "ratelimit-limit"),
        header(h, "ratelimit-remaining"),
        header(h, "ratelimit-reset"),
    )
}

async fn run(app: &TestApp, auth: &str) -> (u16, HeaderMap, serde_json::Value) {
    let body = Some(r#"{"prompt": "a cat"}"#);
    app.call(Method::POST, "/run/fal-ai/echo", Some(auth), body)
        .await
}

async fn demo_app(hand_path: bool, clock: Arc<dyn Clock>) -> TestApp {
    spawn_app_with(
        |c| {
            c.demo = true;
            c.hand_path = hand_path;
        },
        clock,
    )
    .await
}

#[tokio::test]
async fn a_used_up_limit_is_a_429_with_retry_after_on_both_paths() {
    for hand_path in [true, false] {
        let clock = Arc::new(ManualClock::new(Timestamp(START)));
        let app = demo_app(hand_path, clock.clone()).await;
        let (auth, _) = app.limited_key("ada", "3/min").await;
        for remaining in ["2", "1", "0"] {
            let (status, h, _) = run(&app, &auth).await;
            assert_eq!(status, 200, "hand path: {hand_path}");
            assert_eq!(quota(&h), (Some("3"), Some(remaining), Some("60")));
        }
        clock.advance_millis(15_000);
        let (status, h, body) = run(&app, &auth).await;
        assert_eq!(status, 429, "hand path: {hand_path}");
        assert_eq!(header(&h, "retry-after"), Some("45"));
        assert_eq!(quota(&h), (Some("3"), Some("0"), Some("45")));
        assert_eq!(body["code"], "rate_limited");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("3/min") && detail.contains("45 s"),
            "{detail}"
        );
        // The REST API counts against the same limit.
        let (status, h, _) = app
            .call(Method::GET, "/users/current", Some(&auth), None)
            .await;
        assert_eq!((status, header(&h, "retry-after")), (429, Some("45")));
        // The next window starts afresh.
        clock.advance_millis(45_000);
        let (status, h, _) = run(&app, &auth).await;
        assert_eq!(status, 200);
        assert_eq!(quota(&h), (Some("3"), Some("2"), Some("60")));
        let (status, h, _) = app
            .call(Method::GET, "/users/current", Some(&auth), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(quota(&h), (Some("3"), Some("1"), Some("60")));
    }
}

/// A call whose answer may not be JSON: its status and headers.
async fn post(app: &TestApp, path: &str, auth: &str) -> (u16, HeaderMap) {
    let resp = app
        .http
        .post(format!("{}{path}", app.url))
        .header("authorization", auth)
        .body("{}")
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}

#[tokio::test]
async fn rate_limit_headers_are_ours_alone_on_both_paths() {
    let upstream = recorder::start().await;
    for hand_path in [true, false] {
        let app = spawn_app_with(|c| c.hand_path = hand_path, Arc::new(SystemClock)).await;
        let admin = app.admin();
        let url = format!("{}/ratelimit", upstream.base);
        admin
            .create_app("acme/limits", &url, Some(2_000))
            .await
            .unwrap();
        let unlimited = admin.create_key("API", "free").await.unwrap();
        let unlimited = format!("Key {}:{}", unlimited.key_id, unlimited.key_secret);
        let (limited, _) = app.limited_key("bo", "1000/h").await;

        let (status, h) = post(&app, "/run/acme/limits", &unlimited).await;
        assert_eq!(status, 200);
        assert_eq!(
            quota(&h),
            (None, None, None),
            "the upstream's are not passed on"
        );
        let (status, h) = post(&app, "/run/acme/limits", &limited).await;
        assert_eq!(status, 200);
        let (limit, remaining, reset) = quota(&h);
        assert_eq!((limit, remaining), (Some("1000"), Some("999")));
        let reset: u32 = reset.unwrap().parse().unwrap();
        assert!((1..=3600).contains(&reset));
        assert_eq!(h.get_all("ratelimit-limit").iter().count(), 1);
        // Errors after authentication carry them too.
        let (status, h) = post(&app, "/run/acme/none", &limited).await;
        assert_eq!((status, quota(&h).1), (404, Some("998")));
    }
}

#[tokio::test]
async fn a_limit_changed_in_storage_applies_without_a_restart() {
    let app = demo_app(true, Arc::new(SystemClock)).await;
    let (auth, user) = app.limited_key("cy", "1000/h").await;
    let (status, h, _) = run(&app, &auth).await;
    assert_eq!((status, quota(&h).0), (200, Some("1000")));
    let key_id = auth
        .strip_prefix("Key ")
        .and_then(|k| k.split_once(':'))
        .map(|(id, _)| id.parse().unwrap())
        .unwrap();
    let store = app.store().await;
    let now = Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let lowered = RateLimit::parse("1/h").ok();
    assert!(
        store
            .set_rate_limit(&user, &key_id, lowered, now)
            .await
            .unwrap()
    );
    // The change log reaches the server's cache within its interval.
    let started = Instant::now();
    loop {
        let (status, h, _) = run(&app, &auth).await;
        if status == 429 {
            assert_eq!(quota(&h).0, Some("1"));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still {h:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Lifted: no limit, no headers.
    assert!(
        store
            .set_rate_limit(&user, &key_id, None, now)
            .await
            .unwrap()
    );
    store.close().await;
    let started = Instant::now();
    loop {
        let (status, h, _) = run(&app, &auth).await;
        if status == 200 {
            assert_eq!(quota(&h), (None, None, None));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls `url` as fast as `tasks` connections allow until `until`;
/// returns how many were admitted (200) and refused (429).
async fn hammer(url: String, auth: String, tasks: usize, until: Instant) -> (u64, u64) {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (url, auth) = (url.clone(), auth.clone());
        handles.push(tokio::spawn(async move {
            let http = fal_client::http_client();
            let (mut ok, mut refused) = (0u64, 0u64);
            while Instant::now() < until {
                let sent = http
                    .post(&url)
                    .header("authorization", &auth)
                    .body("{}")
                    .send()
                    .await
                    .unwrap();
                match sent.status().as_u16() {
                    200 => ok += 1,
                    429 => refused += 1,
                    other => panic!("status {other}"),
                }
                sent.bytes().await.unwrap();
            }
            (ok, refused)
        }));
    }
    let mut total = (0, 0);
    for h in handles {
        let (ok, refused) = h.await.unwrap();
        total = (total.0 + ok, total.1 + refused);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_on_postgresql_hold_a_limit_within_a_tenth_over_ten_seconds() {
    let Some(db) = Db::new("three_servers_hold_a_rate_limit").await else {
        return;
    };
    let mut servers = Vec::new();
    let mut admin = None;
    for name in ["a", "b", "c"] {
        let mut config = db.config(name, &db.url, Duration::from_secs(5));
        config.demo = true;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut app = fal_server::App::build(config, clock, Arc::new(fal_core::OsRandom))
            .await
            .unwrap();
        if let Some(k) = app.take_bootstrap_key() {
            admin = Some((k.key_id.to_string(), k.secret.expose().to_owned()));
        }
        servers.push(app.spawn().await.unwrap());
    }
    let (admin_id, admin_secret) = admin.unwrap();
    let client = fal_client::Client::new(
        &servers[0].url(),
        Some(crate::helpers::creds(&admin_id, &admin_secret)),
    );
    let key = client.create_key("API", "limited").await.unwrap();
    let store = SqlStore::open(&db.url, Timestamp(0)).await.unwrap();
    let owner = fal_store::MetaStore::bootstrap_user(&store)
        .await
        .unwrap()
        .unwrap();
    let limit = RateLimit::parse("100/s").ok();
    let id = key.key_id.parse().unwrap();
    assert!(
        store
            .set_rate_limit(&owner, &id, limit, Timestamp(1))
            .await
            .unwrap()
    );
    store.close().await;
    let auth = format!("Key {}:{}", key.key_id, key.key_secret);

    // Ten whole windows, from a second's start.
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let to_next = Duration::from_secs(1) - Duration::from_nanos(since_epoch.subsec_nanos().into());
    tokio::time::sleep(to_next + Duration::from_secs(1)).await;
    let until = Instant::now() + Duration::from_secs(10);
    let runs: Vec<_> = servers
        .iter()
        .map(|s| {
            hammer(
                format!("{}/run/fal-ai/echo", s.url()),
                auth.clone(),
                4,
                until,
            )
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for (o, r) in futures_util::future::join_all(runs).await {
        ok += o;
        refused += r;
    }
    eprintln!("three servers, 100/s for 10 s: {ok} admitted, {refused} refused");
    assert!(refused > ok, "the servers were not hammered past the limit");
    assert!((900..=1100).contains(&ok), "{ok} admitted of 1000");
    for s in servers {
        s.stop().await;
    }
    db.drop().await;
}
