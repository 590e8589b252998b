//! `GET /healthz` and `GET /readyz`: unauthenticated, JSON, and readiness
//! that follows the database, its schema and (PostgreSQL) the change
//! notifications.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fal_core::SystemClock;
use serde_json::{Value, json};

use crate::helpers::spawn_app;
use crate::postgres::Db;

async fn get(http: &reqwest::Client, url: &str, auth: Option<&str>) -> (u16, Value) {
    let mut req = http.get(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls `/readyz` until `want` holds for its answer, or 10 s pass.
async fn readyz_until(
    http: &reqwest::Client,
    base: &str,
    want: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let start = Instant::now();
    loop {
        let (status, body) = get(http, &format!("{base}/readyz"), None).await;
        if want(status, &body) || start.elapsed() > Duration::from_secs(10) {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn both_endpoints_answer_without_credentials_on_sqlite() {
    let app = spawn_app().await;
    let (status, body) = get(&app.http, &format!("{}/healthz", app.url), None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = get(&app.http, &format!("{}/readyz", app.url), None).await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
    // With credentials too (a request the hand-written path looks at first).
    let auth = app.admin_auth();
    let (status, body) = get(&app.http, &format!("{}/readyz", app.url), Some(&auth)).await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
    let (status, _) = get(&app.http, &format!("{}/healthz", app.url), Some("Key x:y")).await;
    assert_eq!(status, 200, "a bad key does not matter to /healthz");
}

#[tokio::test]
async fn a_schema_newer_than_this_binary_is_not_ready() {
    let app = spawn_app().await;
    // A newer fal migrated the shared database under this one.
    let store = app.store().await;
    sqlx::query("INSERT INTO fal_schema_version (version, applied_at) VALUES (999999, 0)")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let (status, body) = get(&app.http, &format!("{}/readyz", app.url), None).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"status": "not_ready", "failing": ["migrations"]})
    );
    let (status, _) = get(&app.http, &format!("{}/healthz", app.url), None).await;
    assert_eq!(status, 200, "alive all the same");
}

/// The database's backends that are listening for change notifications.
async fn listeners(base: &str, url: &str) -> i64 {
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let admin = sqlx::AnyPool::connect(base).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(name)
    .fetch_one(&admin)
    .await
    .unwrap();
    admin.close().await;
    n
}

async fn admin_sql(base: &str, sql: String) {
    let admin = sqlx::AnyPool::connect(base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_ready_only_while_subscribed_and_not_once_the_database_is_gone() {
    let Some(db) = Db::new("readiness on PostgreSQL").await else {
        return;
    };
    let minute = Duration::from_secs(60);
    let (server, _) = db.server("a", &db.url, minute, Arc::new(SystemClock)).await;
    let base = server.url();
    let http = fal_client::http_client();
    let name = db
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();

    let (status, body) = readyz_until(&http, &base, |s, _| s == 200).await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
    assert_eq!(
        listeners(&db.base, &db.url).await,
        1,
        "ready, so subscribed"
    );

    // The notification connection is cut and cannot come back: not ready,
    // though the pool's own connections still answer.
    admin_sql(
        &db.base,
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
    )
    .await;
    admin_sql(
        &db.base,
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND query LIKE 'LISTEN%'"
        ),
    )
    .await;
    let (status, body) = readyz_until(&http, &base, |s, _| s == 503).await;
    assert_eq!(status, 503, "{body}");
    let failing = body["failing"].as_array().unwrap();
    assert!(failing.contains(&json!("change_notifications")), "{body}");
    assert_eq!(body["status"], "not_ready");

    // Connections allowed again: the follower resubscribes, and only then ready.
    admin_sql(
        &db.base,
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"),
    )
    .await;
    let (status, body) = readyz_until(&http, &base, |s, _| s == 200).await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
    assert_eq!(listeners(&db.base, &db.url).await, 1);

    // The database is dropped under the running server.
    admin_sql(&db.base, format!("DROP DATABASE {name} WITH (FORCE)")).await;
    let (status, body) = readyz_until(&http, &base, |s, b| {
        s == 503
            && b["failing"]
                .as_array()
                .is_some_and(|f| f.contains(&json!("database")))
    })
    .await;
    assert_eq!(status, 503, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("does not exist") && !text.contains(&name),
        "no internal error text: {text}"
    );
    let (status, body) = get(&http, &format!("{base}/healthz"), None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    server.stop().await;
    db.drop().await;
}
