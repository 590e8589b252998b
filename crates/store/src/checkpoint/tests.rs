use super::*;
use crate::CommitSync;
use fal_core::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One row over a page long (at least two pages a commit), in place of
/// the one named `k{i}` if any, on the queue's connection.
fn write_row(conn: &std::sync::Mutex<rusqlite::Connection>, i: u64) {
    crate::queue_conn::lock(conn)
        .execute(
            "INSERT OR REPLACE INTO fal_meta (name, value) VALUES ($1, $2)",
            (format!("k{i}"), "x".repeat(5_000)),
        )
        .unwrap();
}

async fn sqlite_store() -> (tempfile::TempDir, SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open_sqlite(&dir.path().join("fal.db"), Timestamp(0))
        .await
        .unwrap();
    (dir, store)
}

/// Bytes of pages written through the WAL (at least: two pages a commit),
/// against the WAL file's size,
/// when one thread commits steadily while checkpoints run beside it: run
/// until eight times as much went through as the WAL held at its first
/// restart (what one round of checkpointing lets in).
async fn wal_under_steady_writes(restart_at: i64) -> (u64, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("fal.db").display());
    let store = SqlStore::open_with(&url, Timestamp(0), CommitSync::Full, CommitSync::Normal)
        .await
        .unwrap();
    let wal_size = || {
        std::fs::metadata(dir.path().join("fal.db-wal"))
            .unwrap()
            .len()
    };
    let conn = store.sqlite_queue().unwrap().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let pages = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, pages) = (stop.clone(), pages.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                write_row(&conn, i % 500);
                pages.fetch_add(2, Ordering::Relaxed);
                i += 1;
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
        })
    };
    let written = || pages.load(Ordering::Relaxed) * 4096;
    let mut first = None;
    let started = std::time::Instant::now();
    while first.is_none_or(|f| written() < 8 * f) && started.elapsed().as_secs() < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let done = store.checkpoint_restarting_at(restart_at).await.unwrap();
        if done.restarted && first.is_none() {
            first = Some(wal_size());
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let wal = wal_size();
    store.close().await;
    (first.unwrap_or(0), written(), wal)
}

/// Before, the WAL only grew under steady writes: a PASSIVE checkpoint
/// never found it copied in full with no commit since, the one moment a
/// writer starts it again. Now the checkpoint has it start again once it
/// holds the threshold's frames, and it stays a small share of what went
/// through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_steady_writes() {
    let (first, written, wal) = wal_under_steady_writes(256).await;
    assert!(first > 0, "no checkpoint restarted the WAL");
    assert!(
        wal < written / 2,
        "the WAL is {wal} bytes after at least {written} bytes of pages went through it \
         ({first} at its first restart)"
    );
}

#[tokio::test]
async fn a_small_wal_is_only_copied() {
    let (_dir, store) = sqlite_store().await;
    let done = store.checkpoint().await.unwrap();
    assert!(!done.restarted);
    assert!(done.wal_frames < RESTART_WAL_AT, "{done:?}");
    store.close().await;
}

/// A WAL past the threshold that nobody writes to any more is copied in
/// full by the passes: the checkpoint does not wait for the queue's turn.
#[tokio::test]
async fn a_copied_wal_needs_no_turn() {
    let (_dir, store) = sqlite_store().await;
    let conn = store.sqlite_queue().unwrap().clone();
    for i in 0..300 {
        write_row(&conn, i);
    }
    let turn = store.queue_write_turn().await;
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store.checkpoint_restarting_at(256),
    )
    .await
    .expect("the checkpoint waited for the queue's turn")
    .unwrap();
    assert!(done.wal_frames >= 256 && done.restarted, "{done:?}");
    assert_eq!(done.turn_held, std::time::Duration::ZERO);
    drop(turn);
    store.close().await;
}
