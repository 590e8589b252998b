//! Figures for scaling out (issue 4), printed as a table:
//! - uncached verification latency, p50/p99, on SQLite and PostgreSQL;
//! - cached verification with 1,000,000 keys stored versus 1,000;
//! - memory (resident set) as the cache fills, with 1,000,000 keys stored;
//! - revocation propagation between two servers on one PostgreSQL, p50/p99.
//!
//! Run: `cargo bench -p fal-server --bench scale`
//! (PostgreSQL parts need `FAL_TEST_DATABASE_URL`; they are skipped, loudly,
//! without it). Takes a few minutes: it stores a million keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fal_core::header::{AuthHeader, parse_authorization};
use fal_core::{
    Credentials, KeyId, KeySecret, OsRandom, Pepper, SecretHasher, SystemClock, Timestamp, UserId,
};
use fal_server::auth::Verifier;
use fal_server::{App, Config};
use fal_store::testing::{create_database, drop_database};
use fal_store::{SqlStore, User, UserStore};

/// Deterministic, valid UUID text for key number `i`.
fn key_id(i: u64) -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        i >> 32,
        i & 0xffff_ffff_ffff
    )
}

/// Stores `n` keys for one user, all with the same secret (so filling the
/// cache needs no per-key hashing). Returns the secret.
async fn fill(store: &SqlStore, hasher: &SecretHasher, n: u64) -> KeySecret {
    let user = User {
        user_id: UserId::from_stored("bench-user".into()),
        nickname: "bench".into(),
        full_name: String::new(),
        github_id: None,
        created_at: Timestamp(0),
    };
    store.create_user(&user).await.unwrap();
    let secret = KeySecret::generate(&OsRandom).unwrap();
    let hash = hasher.hash(&secret).to_hex();
    let mut tx = store.pool().begin().await.unwrap();
    let batch = 1_000;
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let values: Vec<String> = (i..end)
            .map(|k| format!("('{}', 'bench-user', 'API', '', '{hash}', {k})", key_id(k)))
            .collect();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_keys (key_id, user_id, scope, alias, secret_hash, created_at) VALUES {}",
            values.join(",")
        )))
        .execute(&mut *tx)
        .await
        .unwrap();
        i = end;
    }
    tx.commit().await.unwrap();
    secret
}

fn creds(i: u64, secret: &KeySecret) -> Credentials {
    Credentials {
        key_id: key_id(i).parse::<KeyId>().unwrap(),
        secret: secret.clone(),
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn verifier(store: &SqlStore, hasher: &SecretHasher, capacity: u64) -> Verifier {
    Verifier::new(
        hasher.clone(),
        Arc::new(store.clone()),
        Arc::new(SystemClock),
        capacity,
        Duration::from_secs(3600),
    )
}

/// p50/p99 of a verification that always reads storage.
async fn uncached(
    store: &SqlStore,
    hasher: &SecretHasher,
    n: u64,
    secret: &KeySecret,
) -> (Duration, Duration) {
    let v = verifier(store, hasher, 100_000);
    let mut times = Vec::new();
    for j in 0..3_000u64 {
        let c = creds((j * 7_919) % n, secret);
        v.invalidate(&c.key_id);
        let t = Instant::now();
        v.verify(&c).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    (pct(&times, 0.5), pct(&times, 0.99))
}

/// Median per-verification time over a working set of 1,000 cached keys,
/// after `warm` distinct keys went through the cache.
async fn cached(
    store: &SqlStore,
    hasher: &SecretHasher,
    warm: u64,
    secret: &KeySecret,
) -> Duration {
    let v = verifier(store, hasher, 100_000);
    for k in 0..warm {
        v.verify(&creds(k, secret)).await.unwrap();
    }
    let set: Vec<String> = (0..1_000u64)
        .map(|k| format!("Key {}:{}", key_id(k), secret.expose()))
        .collect();
    for h in &set {
        let AuthHeader::Key(c) = parse_authorization(h).unwrap() else {
            unreachable!()
        };
        v.verify(&c).await.unwrap();
    }
    let mut per_op = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        for h in &set {
            let AuthHeader::Key(c) = parse_authorization(h).unwrap() else {
                unreachable!()
            };
            std::hint::black_box(v.verify_cached(&c).unwrap().unwrap());
        }
        per_op.push(t.elapsed() / set.len() as u32);
    }
    per_op.sort();
    pct(&per_op, 0.5)
}

async fn sqlite_store(dir: &std::path::Path, name: &str) -> SqlStore {
    SqlStore::open_sqlite(&dir.join(name), Timestamp(0))
        .await
        .unwrap()
}

async fn propagation(base: &str) -> (Duration, Duration, usize) {
    let db = create_database(base, "fal_bench").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str| {
        let mut c = Config::new(dir.path().join(name));
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.database_url = Some(db.clone());
        c.pepper_file = Some(dir.path().join("pepper"));
        c.max_staleness = Duration::from_secs(3600);
        c
    };
    let mut a = App::build(config("a"), Arc::new(SystemClock), Arc::new(OsRandom))
        .await
        .unwrap();
    let boot = a.take_bootstrap_key().unwrap();
    let b = App::build(config("b"), Arc::new(SystemClock), Arc::new(OsRandom))
        .await
        .unwrap();
    let vb = b.verifier();
    let (a, b) = (a.spawn().await.unwrap(), b.spawn().await.unwrap());
    let admin = fal_client::Client::new(
        &a.url(),
        Some(fal_client::KeyCredentials {
            key_id: boot.key_id.to_string(),
            secret: boot.secret.expose().to_owned().into(),
            source: fal_client::credentials::CredentialSource::Flag,
        }),
    );
    tokio::time::sleep(Duration::from_millis(300)).await; // B subscribes
    let mut times = Vec::new();
    let mut missed = 0;
    for _ in 0..300 {
        let k = admin.create_key("API", "").await.unwrap();
        let c = Credentials {
            key_id: k.key_id.parse().unwrap(),
            secret: KeySecret::parse(&k.key_secret).unwrap(),
        };
        vb.verify(&c).await.unwrap(); // cached on B
        let t = Instant::now();
        admin.revoke_key(&k.key_id).await.unwrap();
        loop {
            if !matches!(vb.verify_cached(&c), Some(Ok(_))) {
                times.push(t.elapsed());
                break;
            }
            if t.elapsed() > Duration::from_secs(5) {
                missed += 1;
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    a.stop().await;
    b.stop().await;
    drop_database(base, &db).await.unwrap();
    times.sort();
    (pct(&times, 0.5), pct(&times, 0.99), missed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we need.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hasher = SecretHasher::new(&Pepper::generate(&OsRandom).unwrap());
    let mut rows: Vec<(String, String)> = Vec::new();

    // SQLite: 1,000 and 1,000,000 keys.
    let small = sqlite_store(dir.path(), "small.db").await;
    let s_secret = fill(&small, &hasher, 1_000).await;
    let big = sqlite_store(dir.path(), "big.db").await;
    let t = Instant::now();
    let b_secret = fill(&big, &hasher, 1_000_000).await;
    eprintln!(
        "stored 1,000,000 keys in SQLite in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let (p50, p99) = uncached(&small, &hasher, 1_000, &s_secret).await;
    rows.push((
        "uncached verification, SQLite, 1k keys (p50 / p99)".into(),
        format!("{} / {}", us(p50), us(p99)),
    ));
    let (p50, p99) = uncached(&big, &hasher, 1_000_000, &b_secret).await;
    rows.push((
        "uncached verification, SQLite, 1M keys (p50 / p99)".into(),
        format!("{} / {}", us(p50), us(p99)),
    ));

    let c_small = cached(&small, &hasher, 1_000, &s_secret).await;
    let c_big = cached(&big, &hasher, 100_000, &b_secret).await;
    if c_big.as_secs_f64() > c_small.as_secs_f64() * 1.10 {
        eprintln!(
            "note: cached verification with 1M keys stored is more than 10% slower than with 1k in this run"
        );
    }
    rows.push((
        "cached verification, 1k keys stored (median)".into(),
        format!("{:.0} ns", c_small.as_nanos()),
    ));
    rows.push((
        "cached verification, 1M keys stored, cache full (median)".into(),
        format!(
            "{:.0} ns ({:+.1}% vs 1k)",
            c_big.as_nanos(),
            (c_big.as_secs_f64() / c_small.as_secs_f64() - 1.0) * 100.0
        ),
    ));

    // Memory: the cache is bounded (100,000 records), so touching more keys
    // must not grow the process. A write-back task runs as in the server.
    let v = Arc::new(verifier(&big, &hasher, 100_000));
    let flusher = tokio::spawn({
        let v = v.clone();
        async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                    () = v.flush_requested() => {}
                }
                v.flush_usage().await;
            }
        }
    });
    let before = rss_mib();
    let mut marks = Vec::new();
    for (start, end) in [(0u64, 100_000u64), (100_000, 300_000), (300_000, 600_000)] {
        for k in start..end {
            v.verify(&creds(k, &b_secret)).await.unwrap();
        }
        marks.push((end, rss_mib(), v.cached_records()));
    }
    flusher.abort();
    rows.push((
        "resident memory before touching keys (1M stored)".into(),
        format!("{before:.1} MiB"),
    ));
    for (n, mib, cachedn) in marks {
        rows.push((
            format!("resident memory after {n} distinct keys verified"),
            format!("{mib:.1} MiB ({cachedn} cached)"),
        ));
    }

    // PostgreSQL.
    match std::env::var("FAL_TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            let db = create_database(&base, "fal_bench").await.unwrap();
            let pg = SqlStore::open(&db, Timestamp(0)).await.unwrap();
            let secret = fill(&pg, &hasher, 1_000).await;
            let (p50, p99) = uncached(&pg, &hasher, 1_000, &secret).await;
            rows.push((
                "uncached verification, PostgreSQL, 1k keys (p50 / p99)".into(),
                format!("{} / {}", us(p50), us(p99)),
            ));
            pg.close().await;
            drop_database(&base, &db).await.unwrap();
            let (p50, p99, missed) = propagation(&base).await;
            // The goal of issue 4, asserted here (a benchmark), not in a timed test.
            assert!(
                p99 < Duration::from_secs(1) && missed == 0,
                "revocation propagation p99 {p99:?} (missed {missed}) misses the 1 s goal"
            );
            rows.push((
                "revocation propagation A -> B, 300 runs (p50 / p99)".into(),
                format!("{} / {} ({missed} not seen within 5 s)", us(p50), us(p99)),
            ));
        }
        _ => eprintln!("*** SKIPPED PostgreSQL figures: FAL_TEST_DATABASE_URL is not set ***"),
    }

    println!("\n{:<62} value", "measure");
    for (k, v) in rows {
        println!("{k:<62} {v}");
    }
}
