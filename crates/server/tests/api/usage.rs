//! Per-key usage: calls accepted and refused by reason, per hour, counted
//! in memory on both forwarding paths and written back in batches (on the
//! flush interval and at graceful shutdown), adding up across servers;
//! `GET /keys/{id}/usage` shows a user only their own keys.

use std::sync::Arc;
use std::time::Duration;

use fal_core::usage::{HOUR_MS, Hour, retained_since};
use fal_core::{KeyId, ManualClock, OsRandom, Scope, Timestamp, UsageCounts, UserId};
use fal_server::App;
use fal_store::{KeyAdmin, SqlStore};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, creds, spawn_app_with};
use crate::recorder;

/// Which forwarding path a request takes.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// The hand-written path (plain HTTP/1.1 with `Authorization`).
    Hand,
    /// hyper's path (`Expect: 100-continue` sends it there).
    Hyper,
}

/// One model call on a fresh connection; the answer's status.
async fn call(app: &TestApp, via: Via, auth: &str) -> u16 {
    let expect = match via {
        Via::Hand => "",
        Via::Hyper => "expect: 100-continue\r\n",
    };
    let raw = format!(
        "GET /run/acme/rec/x HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n{expect}\
         connection: close\r\n\r\n"
    );
    let mut s = TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    out.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| out.get(i + 9..i + 12)?.parse::<u16>().ok())
        .filter(|s| *s != 100)
        .last()
        .unwrap_or_else(|| panic!("no answer: {out:?}"))
}

/// `GET /keys/{id}/usage` as the admin, once its totals say `accepted`
/// and `refused` calls (the write-back runs every 50 ms in tests).
async fn usage_once(app: &TestApp, id: &str, accepted: u64, refused: u64) -> Value {
    let auth = app.admin_auth();
    let path = format!("/keys/{id}/usage");
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, _, body) = app
            .call(reqwest::Method::GET, &path, Some(&auth), None)
            .await;
        assert_eq!(status, 200, "{body}");
        if body["totals"]["accepted"] == accepted && body["totals"]["refused"] == refused {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("usage never reached {accepted} accepted, {refused} refused: {last}");
}

#[tokio::test]
async fn accepted_and_each_refusal_are_counted_on_both_forwarding_paths() {
    let app = spawn_app_with(|c| c.throttle.failures = 0, Arc::new(fal_core::SystemClock)).await;
    let r = recorder::start().await;
    let admin = app.admin();
    admin
        .create_app("acme/rec", &format!("{}/base", r.base), Some(2_000))
        .await
        .unwrap();
    let other = admin.create_key("API", "other").await.unwrap();
    for via in [Via::Hand, Via::Hyper] {
        let k = admin
            .create_key_with_rate_limit("API", "counted", Some("3/h"))
            .await
            .unwrap();
        let good = format!("Key {}:{}", k.key_id, k.key_secret);
        for _ in 0..3 {
            assert_eq!(call(&app, via, &good).await, 200, "{via:?}");
        }
        for _ in 0..2 {
            assert_eq!(call(&app, via, &good).await, 429, "{via:?}");
        }
        // A well-formed secret, but another key's.
        let wrong = format!("Key {}:{}", k.key_id, other.key_secret);
        assert_eq!(call(&app, via, &wrong).await, 401, "{via:?}");
        admin.revoke_key(&k.key_id).await.unwrap();
        assert_eq!(call(&app, via, &good).await, 401, "{via:?}");

        let usage = usage_once(&app, &k.key_id, 3, 4).await;
        let totals = &usage["totals"];
        assert_eq!(totals["rate_limited"], 2, "{via:?}: {usage}");
        assert_eq!(totals["revoked"], 1, "{via:?}: {usage}");
        assert_eq!(totals["wrong_secret"], 1, "{via:?}: {usage}");
        assert_eq!(totals["expired"], 0, "{via:?}: {usage}");
        let hours = usage["hours"].as_array().unwrap();
        assert!(!hours.is_empty() && hours.len() <= 2, "{usage}");
        assert!(hours[0]["hour"].as_str().unwrap().ends_with(":00:00.000Z"));
    }
}

#[tokio::test]
async fn a_wrong_secret_for_a_known_key_is_counted_against_it() {
    let app = spawn_app_with(|c| c.throttle.failures = 0, Arc::new(fal_core::SystemClock)).await;
    let k = app.admin().create_key("API", "guessed").await.unwrap();
    let good = app.client(&k.key_id, &k.key_secret);
    good.current_user().await.unwrap();
    // A well-formed secret that is not the key's.
    let other = app.admin().create_key("API", "other").await.unwrap();
    let guess = app.client(&k.key_id, &other.key_secret);
    assert!(guess.current_user().await.is_err());
    assert!(guess.current_user().await.is_err());
    let usage = usage_once(&app, &k.key_id, 1, 2).await;
    assert_eq!(usage["totals"]["wrong_secret"], 2, "{usage}");
}

/// The admin's user id.
async fn admin_user(app: &TestApp) -> UserId {
    UserId::from_stored(app.admin().current_user().await.unwrap().user_id)
}

async fn stored_usage(store: &SqlStore, user: &UserId, key: &str) -> Vec<(Hour, UsageCounts)> {
    let id: KeyId = key.parse().unwrap();
    let since = Hour::of(Timestamp(0));
    store.key_usage(user, &id, since).await.unwrap().unwrap()
}

#[tokio::test]
async fn counts_are_written_in_batches_by_hour_and_at_graceful_shutdown() {
    // No periodic write-back within the test: only shutdown writes.
    let clock = ManualClock::new(Timestamp(1_796_119_200_000 + 30 * 60 * 1000));
    let mut app = spawn_app_with(
        |c| c.usage_flush_interval = Duration::from_secs(3600),
        Arc::new(clock.clone()),
    )
    .await;
    let user = admin_user(&app).await;
    let k = app.admin().create_key("API", "batched").await.unwrap();
    let c = app.client(&k.key_id, &k.key_secret);
    for _ in 0..5 {
        c.current_user().await.unwrap();
    }
    clock.advance_millis(HOUR_MS);
    c.current_user().await.unwrap();
    // Six calls, and not one write for them yet.
    let store = app.store().await;
    assert_eq!(stored_usage(&store, &user, &k.key_id).await, vec![]);
    app.stop().await;
    let hours = stored_usage(&store, &user, &k.key_id).await;
    let first = Hour::of(Timestamp(1_796_119_200_000));
    let second = Hour::of(Timestamp(1_796_119_200_000 + HOUR_MS));
    let accepted: Vec<(Hour, u64)> = hours.iter().map(|(h, c)| (*h, c.accepted)).collect();
    assert_eq!(accepted, vec![(first, 5), (second, 1)]);
    store.close().await;
}

#[tokio::test]
async fn another_users_key_is_not_found_and_bad_input_is_explained() {
    let app = spawn_app_with(|_| {}, Arc::new(fal_core::SystemClock)).await;
    let auth = app.admin_auth();
    let (theirs, secret) = app.other_user_key(Scope::Admin).await;
    app.client(&theirs, &secret).current_user().await.unwrap();
    let get = |path: String| {
        let auth = auth.clone();
        let app = &app;
        async move {
            app.call(reqwest::Method::GET, &path, Some(&auth), None)
                .await
        }
    };
    let (status, _, body) = get(format!("/keys/{theirs}/usage")).await;
    assert_eq!(status, 404, "{body}");
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, _, unknown_body) = get(format!("/keys/{unknown}/usage")).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], unknown_body["code"]);
    let (status, _, _) = get("/keys/not-a-key/usage".into()).await;
    assert_eq!(status, 404);
    // The owner sees their own.
    let own = format!("Key {theirs}:{secret}");
    let path = format!("/keys/{theirs}/usage?since=2026-01-01");
    let (status, _, body) = app
        .call(reqwest::Method::GET, &path, Some(&own), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key_id"], theirs.as_str());
    let (status, _, body) = get(format!("/keys/{}/usage?since=yesterday", app.admin_id)).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("since"), "{body}");
    // An API key may not read usage.
    let (api_id, api_secret) = app.user_key("apiuser", None, Scope::Api).await;
    let api = format!("Key {api_id}:{api_secret}");
    let path = format!("/keys/{api_id}/usage");
    let (status, _, _) = app
        .call(reqwest::Method::GET, &path, Some(&api), None)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_listing_shows_requests_accepted_in_the_last_30_days() {
    let app = spawn_app_with(|_| {}, Arc::new(fal_core::SystemClock)).await;
    let k = app.admin().create_key("API", "listed").await.unwrap();
    let c = app.client(&k.key_id, &k.key_secret);
    for _ in 0..4 {
        c.current_user().await.unwrap();
    }
    usage_once(&app, &k.key_id, 4, 0).await;
    let keys = app.admin().list_all_keys().await.unwrap();
    let row = keys.iter().find(|x| x.key_id == k.key_id).unwrap();
    assert_eq!(row.requests, 4);
    // Usage older than the retention is not in the count.
    let store = app.store().await;
    let old = fal_store::HourlyUsage {
        key_id: k.key_id.parse().unwrap(),
        hour: Hour::of(
            retained_since(fal_core::Clock::now(&fal_core::SystemClock))
                .start()
                .plus_millis(-HOUR_MS),
        ),
        counts: UsageCounts {
            accepted: 1000,
            ..UsageCounts::default()
        },
    };
    fal_store::KeyLookup::add_key_usage(&store, &[old])
        .await
        .unwrap();
    store.close().await;
    let keys = app.admin().list_all_keys().await.unwrap();
    let row = keys.iter().find(|x| x.key_id == k.key_id).unwrap();
    assert_eq!(row.requests, 4);
}

#[tokio::test]
async fn two_servers_on_one_postgres_add_their_counts_up() {
    let Some(db) =
        crate::postgres::Db::new("two_servers_on_one_postgres_add_their_counts_up").await
    else {
        return;
    };
    let clock = Arc::new(fal_core::SystemClock);
    let mut servers = Vec::new();
    let mut boot = None;
    for name in ["a", "b"] {
        let mut config = db.config(name, &db.url, Duration::from_secs(5));
        // Only shutdown writes, so both servers write the same hour's row.
        config.usage_flush_interval = Duration::from_secs(3600);
        let mut app = App::build(config, clock.clone(), Arc::new(OsRandom))
            .await
            .unwrap();
        if let Some(k) = app.take_bootstrap_key() {
            boot = Some((k.key_id.to_string(), k.secret.expose().to_owned()));
        }
        servers.push(app.spawn().await.unwrap());
    }
    let (boot_id, boot_secret) = boot.unwrap();
    let on = |i: usize, id: &str, secret: &str| {
        fal_client::Client::new(&servers[i].url(), Some(creds(id, secret)))
    };
    let admin = on(0, &boot_id, &boot_secret);
    let user = UserId::from_stored(admin.current_user().await.unwrap().user_id);
    let k = admin.create_key("API", "shared").await.unwrap();
    for _ in 0..3 {
        on(0, &k.key_id, &k.key_secret)
            .current_user()
            .await
            .unwrap();
    }
    for _ in 0..4 {
        on(1, &k.key_id, &k.key_secret)
            .current_user()
            .await
            .unwrap();
    }
    for s in servers {
        s.stop().await;
    }
    let store = SqlStore::open(&db.url, Timestamp(0)).await.unwrap();
    let hours = stored_usage(&store, &user, &k.key_id).await;
    let accepted: u64 = hours.iter().map(|(_, c)| c.accepted).sum();
    assert_eq!(accepted, 7, "{hours:?}");
    store.close().await;
    db.drop().await;
}

#[tokio::test]
async fn hours_older_than_30_days_are_pruned_by_a_background_task() {
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &std::path::Path| {
        let config = crate::helpers::config(dir);
        async move {
            let app = App::build(config, Arc::new(fal_core::SystemClock), Arc::new(OsRandom));
            let mut app = app.await.unwrap();
            let boot = app.take_bootstrap_key();
            (app.spawn().await.unwrap(), boot)
        }
    };
    let (server, boot) = start(dir.path()).await;
    let boot = boot.unwrap();
    let store = SqlStore::open_sqlite(&dir.path().join("fal.db"), Timestamp(0))
        .await
        .unwrap();
    let key_id = boot.key_id;
    let now = fal_core::Clock::now(&fal_core::SystemClock);
    let row = |hour: Hour| fal_store::HourlyUsage {
        key_id,
        hour,
        counts: UsageCounts {
            accepted: 1,
            ..UsageCounts::default()
        },
    };
    let old = Hour::of(retained_since(now).start().plus_millis(-HOUR_MS));
    let recent = Hour::of(now.plus_millis(-HOUR_MS));
    fal_store::KeyLookup::add_key_usage(&store, &[row(old), row(recent)])
        .await
        .unwrap();
    server.stop().await;
    // The next start prunes (and so does every server, hourly).
    let (server, _) = start(dir.path()).await;
    let user = fal_client::Client::new(
        &server.url(),
        Some(creds(&key_id.to_string(), boot.secret.expose())),
    )
    .current_user()
    .await
    .unwrap()
    .user_id;
    let user = UserId::from_stored(user);
    let mut kept = Vec::new();
    for _ in 0..100 {
        let hours = stored_usage(&store, &user, &key_id.to_string()).await;
        kept = hours.iter().map(|(h, _)| *h).collect::<Vec<Hour>>();
        if !kept.contains(&old) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!kept.contains(&old), "{kept:?}");
    assert!(kept.contains(&recent), "{kept:?}");
    server.stop().await;
    store.close().await;
}
