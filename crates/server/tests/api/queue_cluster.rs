//! Two servers on one PostgreSQL share one queue: a new request wakes an
//! idle server through LISTEN/NOTIFY (not its sweep), and when a server
//! dies mid-request every request still completes exactly once, the dead
//! server's being taken over once its lease runs out. Skips loudly without
//! `FAL_TEST_DATABASE_URL` (fails under CI).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use fal_client::Client;
use fal_core::{OsRandom, SystemClock};
use fal_server::{App, RunningServer};
use serde_json::{Value, json};
use sqlx::Row;
use tokio::sync::Notify;

use crate::helpers::creds;
use crate::postgres::Db;

/// The app behind the queue: counts the calls of each request (`n` in its
/// body), notes when each arrived, holds those with `"hold": true` until
/// released, and answers `{"n": n}` after `sleep_ms`.
#[derive(Clone, Default)]
struct Counter {
    hits: Arc<Mutex<HashMap<u64, usize>>>,
    arrived: Arc<Mutex<HashMap<u64, Instant>>>,
    release: Arc<Notify>,
}

async fn count(State(c): State<Counter>, Json(body): Json<Value>) -> Json<Value> {
    let n = body["n"].as_u64().unwrap_or(u64::MAX);
    *c.hits.lock().unwrap().entry(n).or_default() += 1;
    c.arrived
        .lock()
        .unwrap()
        .entry(n)
        .or_insert_with(Instant::now);
    if body["hold"] == true {
        c.release.notified().await;
    }
    let ms = body["sleep_ms"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"n": n}))
}

async fn start_counter() -> (String, Counter) {
    let c = Counter::default();
    let router = axum::Router::new()
        .fallback(axum::routing::post(count))
        .with_state(c.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, c)
}

/// A server on a runtime of its own, so it can be killed as a process
/// is: every task of it (listener, queue workers, the calls they make,
/// database connections) dropped at once, nothing completed or released.
struct Killable {
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<RunningServer>,
    url: String,
}

impl Killable {
    async fn start(
        db: &Db,
        name: &str,
        concurrency: usize,
    ) -> (Killable, Option<(String, String)>) {
        let mut config = db.config(name, &db.url, Duration::from_secs(5));
        config.queue_lease = Duration::from_secs(1);
        config.queue_concurrency = concurrency;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (server, boot) = runtime
            .spawn(async move {
                let mut app = App::build(config, Arc::new(SystemClock), Arc::new(OsRandom))
                    .await
                    .unwrap();
                let boot = app
                    .take_bootstrap_key()
                    .map(|k| (k.key_id.to_string(), k.secret.expose().to_owned()));
                (app.spawn().await.unwrap(), boot)
            })
            .await
            .unwrap();
        let url = server.url();
        let k = Killable {
            runtime: Some(runtime),
            server: Some(server),
            url,
        };
        (k, boot)
    }

    /// Drops every task at once, like `kill -9`.
    fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        self.server.take();
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Killable {
    /// A failing test must not drop a runtime where blocking is refused.
    fn drop(&mut self) {
        self.kill();
    }
}

/// Submits `body` to acme/count on `url`; returns the request id.
async fn submit(http: &reqwest::Client, url: &str, auth: &str, body: &Value) -> String {
    let r = http
        .post(format!("{url}/queue/acme/count"))
        .header("authorization", auth)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["request_id"].as_str().unwrap().to_owned()
}

/// Polls `url` until the request is COMPLETED; returns its answer.
async fn answer(http: &reqwest::Client, url: &str, auth: &str, id: &str) -> (u16, Value) {
    let base = format!("{url}/queue/acme/count/requests/{id}");
    let started = Instant::now();
    loop {
        let s: Value = http
            .get(format!("{base}/status"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["status"] == "COMPLETED" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{id}: still {s}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let r = http
        .get(&base)
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_queue_and_survive_one_dying() {
    let Some(db) = Db::new("queue across servers").await else {
        return;
    };
    let (upstream, counter) = start_counter().await;
    // A runs one request of an app at a time; B two.
    let (a, boot) = Killable::start(&db, "a", 1).await;
    let (id, secret) = boot.unwrap();
    let auth = format!("Key {id}:{secret}");
    Client::new(&a.url, Some(creds(&id, &secret)))
        .create_app("acme/count", &upstream, Some(30_000))
        .await
        .unwrap();
    let http = fal_client::http_client();

    // A's one slot is taken by a held request before B exists; from then
    // on only B can run acme/count's requests. B sweeps every 2 s: only
    // A's notification can get a request submitted to A to B within the
    // bound below, every time.
    let held = submit(&http, &a.url, &auth, &json!({"n": 1000, "hold": true})).await;
    let t = Instant::now();
    while !counter.hits.lock().unwrap().contains_key(&1000) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "A did not run the held request"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut b, _) = Killable::start(&db, "b", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut latencies = Vec::new();
    for n in 2000..2010u64 {
        let sent = Instant::now();
        let rid = submit(&http, &a.url, &auth, &json!({"n": n})).await;
        let (code, v) = answer(&http, &a.url, &auth, &rid).await;
        assert_eq!((code, v["n"].as_u64()), (200, Some(n)));
        let arrived = counter.arrived.lock().unwrap()[&n];
        latencies.push(arrived.duration_since(sent));
        // Off any rhythm a sweep might have.
        tokio::time::sleep(Duration::from_millis(37 * (n % 7) + 50)).await;
    }
    latencies.sort();
    eprintln!("submit on A → upstream via B: {latencies:?}");
    let worst = *latencies.last().unwrap();
    assert!(
        worst < Duration::from_millis(500),
        "B was not woken by A's notification (worst {worst:?} of 10; the sweep is every 2 s)"
    );
    counter.release.notify_waiters();
    let (code, v) = answer(&http, &a.url, &auth, &held).await;
    assert_eq!((code, v["n"].as_u64()), (200, Some(1000)));

    // 40 requests through both servers, 300 ms each; B dies while it runs
    // some.
    let mut ids = Vec::new();
    for n in 0..40u64 {
        let url = if n % 2 == 0 { &a.url } else { &b.url };
        let rid = submit(&http, url, &auth, &json!({"n": n, "sleep_ms": 300})).await;
        ids.push((n, rid));
    }
    let t = Instant::now();
    while counter
        .hits
        .lock()
        .unwrap()
        .keys()
        .filter(|k| **k < 40)
        .count()
        < 8
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the requests did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
    b.kill();
    for (n, rid) in &ids {
        let (code, v) = answer(&http, &a.url, &auth, rid).await;
        assert_eq!(code, 200, "{n}: {v}");
        assert_eq!(
            v["n"].as_u64(),
            Some(*n),
            "{rid} answered another request's"
        );
    }

    // Every one completed once, by one claimer; those B held were taken
    // over (a second attempt) after the lease.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let rows = sqlx::query(
        "SELECT request_id, status, attempts, claimed_by FROM queue_requests
         WHERE owner = 'acme' AND name = 'count'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 51);
    let mut retried = 0;
    for r in &rows {
        assert_eq!(r.get::<String, _>("status"), "COMPLETED");
        assert!(r.get::<Option<String>, _>("claimed_by").is_none());
        let attempts: i64 = r.get("attempts");
        assert!((1..=2).contains(&attempts), "{attempts} attempts");
        retried += usize::from(attempts == 2);
    }
    pool.close().await;
    let hits = counter.hits.lock().unwrap().clone();
    let twice: Vec<u64> = hits
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    eprintln!(
        "B killed; {retried} request(s) taken over after the lease; reached the upstream twice: {twice:?}"
    );
    assert!(
        retried >= 1,
        "B was killed while running none: nothing was taken over"
    );
    assert!(
        twice.len() <= retried,
        "only a taken-over request may run twice"
    );
    assert!((0..40).all(|n| hits.get(&n).is_some_and(|c| *c >= 1)));
    b.stop().await;
    a.stop().await;
    db.drop().await;
}
