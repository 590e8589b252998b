//! Tests of `queue_conn.rs`.

use super::*;

fn conn() -> Arc<Mutex<rusqlite::Connection>> {
    let c = rusqlite::Connection::open_in_memory().unwrap();
    c.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c BLOB)")
        .unwrap();
    Arc::new(Mutex::new(c))
}

#[tokio::test]
async fn placeholders_bind_by_number_not_by_place() {
    let c = conn();
    let mut q = QueueConn::sqlite(c.clone(), false).await.unwrap();
    // $2 is written first: bound by place it would get $1's value.
    q.execute(
        "INSERT INTO t (b, a, c) VALUES ($2, $1, $3)",
        vec![7.into(), "seven".into(), Value::Blob(None)],
    )
    .await
    .unwrap();
    let got = q
        .fetch("SELECT a, b, c FROM t WHERE a = $1", vec![7.into()], |r| {
            Ok((r.int_of("a")?, r.text_of("b")?, r.blob("c")?))
        })
        .await
        .unwrap();
    assert_eq!(got, [(7, "seven".to_owned(), None)]);
    let missing = q.execute("SELECT $2", vec![1.into()]).await;
    assert!(matches!(missing, Err(StoreError::Other(m)) if m.contains("$2")));
}

/// A single-threaded runtime, as each HTTP worker's: the queue's write
/// waits for the lock a main-pool transaction holds without stopping
/// the thread that will commit that transaction. With SQLite's busy
/// handler it slept in that thread for the whole timeout, then failed.
#[tokio::test(flavor = "current_thread")]
async fn a_queue_write_waits_for_a_transaction_of_its_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::SqlStore::open_sqlite(&dir.path().join("fal.db"), crate::Timestamp(0))
        .await
        .unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("INSERT INTO fal_meta (name, value) VALUES ('held', 'x')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let queued = tokio::spawn({
        let store = store.clone();
        async move {
            let mut c = store.queue_conn(false, false).await?;
            c.execute(
                "INSERT INTO fal_meta (name, value) VALUES ($1, $2)",
                vec!["queued".into(), "y".into()],
            )
            .await
        }
    });
    // The queue's write runs, finds the lock held, and must give the
    // thread back.
    tokio::time::sleep(Duration::from_millis(20)).await;
    tx.commit().await.unwrap();
    assert_eq!(queued.await.unwrap().unwrap(), 1);
    store.close().await;
}

#[test]
fn a_statement_is_not_prepared_again_for_another_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let conn = open_sqlite(
        &format!("sqlite://{}?mode=rwc", path.display()),
        crate::CommitSync::Normal,
    )
    .unwrap();
    conn.execute_batch(
        "CREATE TABLE t (a INTEGER, b TEXT); CREATE INDEX t_a ON t (a);
         INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z');",
    )
    .unwrap();
    let sql = "SELECT b FROM t WHERE a > $1 ORDER BY a LIMIT $2";
    for limit in [1, 2, 3] {
        let mut stmt = conn.prepare_cached(sql).unwrap();
        bind_numbered(&mut stmt, &[0.into(), limit.into()]).unwrap();
        let mut rows = stmt.raw_query();
        let mut n = 0;
        while rows.next().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, limit);
    }
    let stmt = conn.prepare_cached(sql).unwrap();
    assert_eq!(
        stmt.get_status(rusqlite::StatementStatus::RePrepare),
        0,
        "planned again for a new LIMIT"
    );
}

#[tokio::test]
async fn a_transaction_dropped_uncommitted_is_rolled_back() {
    let c = conn();
    let count = |c: &Arc<Mutex<rusqlite::Connection>>| {
        lock(c)
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let mut q = QueueConn::sqlite(c.clone(), true).await.unwrap();
    q.execute("INSERT INTO t (a) VALUES ($1)", vec![1.into()])
        .await
        .unwrap();
    drop(q);
    assert_eq!(count(&c), 0);
    let mut q = QueueConn::sqlite(c.clone(), true).await.unwrap();
    q.execute("INSERT INTO t (a) VALUES ($1)", vec![2.into()])
        .await
        .unwrap();
    q.commit().await.unwrap();
    assert_eq!(count(&c), 1);
}
