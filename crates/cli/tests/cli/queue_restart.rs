//! The queue survives `kill -9`: `fal serve --demo` is killed (SIGKILL)
//! with one queued request running and the rest waiting, started again on
//! the same data, and every request that got a `request_id` completes with
//! its own answer; the one that was running is run again once its claim's
//! lease (`FAL_QUEUE_LEASE`) runs out. On SQLite, and on PostgreSQL when
//! `FAL_TEST_DATABASE_URL` is set (skips loudly otherwise).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::Server;

const REQUESTS: u64 = 5;
const LEASE: &str = "3s";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn status(http: &reqwest::Client, url: &str, auth: &str, id: &str) -> Value {
    http.get(format!("{url}/queue/fal-ai/echo/requests/{id}/status"))
        .header("authorization", auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Submits, kills, restarts, and checks every answer. `extra` are more
/// `fal serve` arguments (the database).
fn survives_kill(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut args = vec!["--demo", "--queue-concurrency", "1"];
    args.extend_from_slice(extra);
    let env = [("FAL_QUEUE_LEASE", LEASE)];
    let mut server = Server::start_with(&data, None, &args, &env);
    let admin = server.bootstrap();
    let auth = format!("Key {}:{}", admin.id, admin.secret);
    let http = fal_client::http_client();
    let rt = runtime();

    let ids: Vec<String> = rt.block_on(async {
        let mut ids = Vec::new();
        for n in 0..REQUESTS {
            let r = http
                .post(format!("{}/queue/fal-ai/echo", server.url))
                .header("authorization", &auth)
                .json(&json!({"n": n, "sleep_ms": 2000}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            ids.push(v["request_id"].as_str().unwrap().to_owned());
        }
        // The first is running (2 s), the others wait behind it.
        let t = Instant::now();
        while status(&http, &server.url, &auth, &ids[0]).await["status"] != "IN_PROGRESS" {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the first never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for id in &ids[1..] {
            assert_eq!(
                status(&http, &server.url, &auth, id).await["status"],
                "IN_QUEUE"
            );
        }
        ids
    });
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    drop(server);

    let server = Server::start_with(&data, None, &args, &env);
    let restarted = Instant::now();
    rt.block_on(async {
        for (n, id) in ids.iter().enumerate() {
            let t = Instant::now();
            loop {
                let s = status(&http, &server.url, &auth, id).await;
                if s["status"] == "COMPLETED" {
                    break;
                }
                assert!(t.elapsed() < Duration::from_secs(60), "{n}: still {s}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let r = http
                .get(format!("{}/queue/fal-ai/echo/requests/{id}", server.url))
                .header("authorization", &auth)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{n}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["n"], json!(n), "{id}: {v}");
            assert_eq!(v["sleep_ms"], 2000);
        }
    });
    // Four waiting requests of 2 s each, one at a time, and the killed one
    // again (after its lease): nothing can have been answered from before.
    assert!(restarted.elapsed() >= Duration::from_secs(2 * REQUESTS));
    server.stop();
}

#[test]
fn queued_requests_survive_kill_9_on_sqlite() {
    survives_kill(&[]);
}

#[test]
fn queued_requests_survive_kill_9_on_postgres() {
    let Some(base) = fal_store::testing::postgres_url_or_skip("queue survives kill -9") else {
        return;
    };
    let rt = runtime();
    let url = rt
        .block_on(fal_store::testing::create_database(&base, "fal_cli"))
        .unwrap();
    survives_kill(&["--database-url", &url]);
    rt.block_on(fal_store::testing::drop_database(&base, &url))
        .unwrap();
}
