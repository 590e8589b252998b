//! `/metrics` of servers sharing PostgreSQL: change notifications are
//! counted as they arrive, by kind; the pools are PostgreSQL's. Without `FAL_TEST_DATABASE_URL`
//! this skips loudly (and fails under CI), as without Prometheus' parser.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fal_core::SystemClock;
use fal_server::RunningServer;

use crate::helpers::creds;
use crate::metrics::{Scrape, parse, python};
use crate::postgres::Db;

async fn scrape(server: &RunningServer, auth: &str, python: &std::path::Path) -> Scrape {
    let resp = reqwest::Client::new()
        .get(format!("{}/metrics", server.url()))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    parse(python, &resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_notifications_received_are_counted_by_kind() {
    let Some(python) = python() else { return };
    let Some(db) = Db::new("metrics of change notifications").await else {
        return;
    };
    let minute = Duration::from_secs(60);
    let (a, boot) = db.server("a", &db.url, minute, Arc::new(SystemClock)).await;
    let (b, _) = db.server("b", &db.url, minute, Arc::new(SystemClock)).await;
    let (id, secret) = boot.unwrap();
    let auth = format!("Key {id}:{secret}");
    let kind = |k| [("kind", k)];
    let before = scrape(&b, &auth, &python).await;

    let on_a = fal_client::Client::new(&a.url(), Some(creds(&id, &secret)));
    let key = on_a.create_key("API", "noted").await.unwrap();
    on_a.revoke_key(&key.key_id).await.unwrap();
    on_a.create_app("admin/noted", "http://127.0.0.1:9", Some(500))
        .await
        .unwrap();

    // B hears of both changes (the key's creation and revocation are one
    // notification each, or more: at least the revocation).
    let started = Instant::now();
    let after = loop {
        let s = scrape(&b, &auth, &python).await;
        let keys = s.count("fal_change_notifications_total", &kind("key"));
        let apps = s.count("fal_change_notifications_total", &kind("app"));
        if keys > before.count("fal_change_notifications_total", &kind("key"))
            && apps > before.count("fal_change_notifications_total", &kind("app"))
        {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "B heard nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        after.get("fal_change_notifications_interruptions_total", &[]),
        Some(0.0)
    );
    // PostgreSQL's pools: the main one, and the queue's own (the default
    // `--queue-sync normal` gives it `synchronous_commit = off`).
    assert_eq!(
        after.get("fal_db_pool_max_connections", &[("pool", "main")]),
        Some(16.0)
    );
    assert_eq!(
        after.get("fal_db_pool_max_connections", &[("pool", "queue")]),
        Some(8.0)
    );
    a.stop().await;
    b.stop().await;
    db.drop().await;
}
