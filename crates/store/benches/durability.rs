//! What `synchronous = FULL` costs SQLite over `NORMAL` (WAL mode), for the
//! writes the server makes: creating a key (one commit each) and the
//! batched `last_used_at` write-back (one commit per flush, 100 keys).
//! A timed loop, not a statistical study: it prints milliseconds per
//! operation for each mode on a fresh database in the temp directory (set
//! `TMPDIR` to put it on the disk that matters).
//!
//! `cargo bench -p fal-store --bench durability`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fal_core::{OsRandom, Pepper, Scope, SecretHasher, Timestamp, UserId, mint_key};
use fal_store::{CommitSync, KeyAdmin, KeyLookup, NewKey, SqlStore, User, UserStore};

const KEYS: usize = 200;
const FLUSHES: usize = 50;
const PER_FLUSH: usize = 100;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for sync in [CommitSync::Normal, CommitSync::Full] {
        let (create, flush) = rt.block_on(run(sync));
        println!(
            "{sync:?}: create_key {:.3} ms/key ({KEYS} keys), record_key_use {:.3} ms/flush of {PER_FLUSH} keys ({FLUSHES} flushes)",
            per(create, KEYS),
            per(flush, FLUSHES),
        );
    }
}

fn per(total: Duration, n: usize) -> f64 {
    total.as_secs_f64() * 1000.0 / n as f64
}

async fn run(sync: CommitSync) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("fal.db").display());
    let store = SqlStore::open_with(&url, Timestamp(0), sync, sync)
        .await
        .unwrap();
    let hasher = SecretHasher::new(&Pepper::generate(&OsRandom).unwrap());
    let user = User {
        user_id: UserId::generate(&OsRandom).unwrap(),
        nickname: "bench".into(),
        full_name: "Bench".into(),
        github_id: None,
        created_at: Timestamp(1),
    };
    store.create_user(&user).await.unwrap();
    let keys: Vec<NewKey> = (0..KEYS)
        .map(|i| NewKey {
            record: mint_key(&OsRandom, &hasher, &user.user_id, Scope::Api)
                .unwrap()
                .0,
            alias: format!("k{i}"),
            created_at: Timestamp(i as i64 + 1),
        })
        .collect();
    let started = Instant::now();
    for key in &keys {
        store.create_key(key).await.unwrap();
    }
    let create = started.elapsed();
    let started = Instant::now();
    for round in 0..FLUSHES {
        let uses: Vec<_> = keys
            .iter()
            .take(PER_FLUSH)
            .map(|k| (k.record.key_id, Timestamp(1_000 + round as i64)))
            .collect();
        store.record_key_use(&uses).await.unwrap();
    }
    let flush = started.elapsed();
    store.close().await;
    (create, flush)
}
