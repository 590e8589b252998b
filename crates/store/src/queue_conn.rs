//! Where the queue's writes run, and the little they need to be written
//! once for both backends: bound values ([`Value`]) and rows read by column
//! name ([`Cells`]).
//!
//! On PostgreSQL a write runs on a pooled sqlx connection or transaction.
//! On SQLite it runs on the queue's own `rusqlite` connection, in place, on
//! the calling thread: sqlx runs each SQLite connection on a thread of its
//! own and hands every statement (and every row back) across threads, which
//! cost about half the CPU of a queued request and, on a busy machine, a
//! wait for that thread to be scheduled in each hand-off. The queue's
//! writers already take turns ([`SqlStore::queue_write_turn`](crate::SqlStore)),
//! so a statement here never waits for SQLite's write lock held by
//! another writer of the queue; writers of other tables may hold it, and
//! `busy_timeout` covers them as it does on the main pool.
//!
//! The SQL is the same text on both: `$n` placeholders, which SQLite reads
//! as named parameters; [`bind_numbered`] binds each by its number, as
//! sqlx's SQLite driver does.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::StoreError;

/// A value bound to a `$n` placeholder. NULLs keep their type, which
/// PostgreSQL needs.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Blob(Option<Vec<u8>>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(Some(v.to_owned()))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(Some(v))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Value {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(Some(v))
    }
}
impl From<Option<Vec<u8>>> for Value {
    fn from(v: Option<Vec<u8>>) -> Value {
        Value::Blob(v)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Int(Some(i)) => ValueRef::Integer(*i),
            Value::Text(Some(s)) => ValueRef::Text(s.as_bytes()),
            Value::Blob(Some(b)) => ValueRef::Blob(b),
            Value::Int(None) | Value::Text(None) | Value::Blob(None) => ValueRef::Null,
        }))
    }
}

/// A row's cells by column name, from either driver.
pub(crate) trait Cells {
    fn int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn blob(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// An integer column that is never NULL.
    fn int_of(&self, col: &str) -> Result<i64, StoreError> {
        self.int(col)?.ok_or_else(|| null(col))
    }
    /// A text column that is never NULL.
    fn text_of(&self, col: &str) -> Result<String, StoreError> {
        self.text(col)?.ok_or_else(|| null(col))
    }
}

fn null(col: &str) -> StoreError {
    StoreError::Corrupt(format!("{col} is NULL"))
}

impl Cells for AnyRow {
    fn int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn blob(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(col)?)
    }
}

impl Cells for rusqlite::Row<'_> {
    fn int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.get(col)?)
    }
    fn text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get(col)?)
    }
    fn blob(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(col)?)
    }
}

/// The connection the queue's writes run on, for one write turn.
pub(crate) enum QueueConn {
    /// SQLite: the queue's own connection.
    Sqlite(SqliteConn),
    /// PostgreSQL: a pooled connection, statement by statement.
    Pool(sqlx::pool::PoolConnection<sqlx::Any>),
    /// PostgreSQL: a transaction.
    Tx(sqlx::Transaction<'static, sqlx::Any>),
}

/// SQLite's queue connection; `in_tx` while a transaction this value
/// began is open (rolled back if dropped uncommitted).
pub(crate) struct SqliteConn {
    conn: Arc<Mutex<rusqlite::Connection>>,
    in_tx: bool,
}

/// Why one try of a statement on SQLite's queue connection failed.
enum Failure {
    /// Another connection holds SQLite's write lock: try again.
    Busy,
    /// Anything else.
    Store(StoreError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
                Failure::Busy
            }
            _ => Failure::Store(e.into()),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e)
    }
}

/// How long a statement waits for another connection's write lock.
const BUSY_WAIT: Duration = Duration::from_secs(5);

impl SqliteConn {
    /// Runs `once` on the connection until it is not refused for another
    /// connection's write lock (at most [`BUSY_WAIT`]). The wait is a
    /// timer, not SQLite's busy handler: that one sleeps in the calling
    /// thread, which may be the very thread whose task holds the lock in
    /// the middle of a transaction on the main pool (a single-threaded
    /// runtime: each HTTP worker's, or a test's), which would then wait
    /// for the whole timeout. Each statement is atomic and a refused one
    /// changed nothing, so trying it again is safe.
    async fn run<T>(
        &self,
        mut once: impl FnMut(&rusqlite::Connection) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        loop {
            let outcome = once(&lock(&self.conn));
            match outcome {
                Ok(v) => return Ok(v),
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::Busy) if started.elapsed() < BUSY_WAIT => {
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                Err(Failure::Busy) => {
                    let e = StoreError::Unavailable(format!(
                        "the database stayed locked by another writer for {BUSY_WAIT:?}"
                    ));
                    crate::stats::count_error(&e);
                    return Err(e);
                }
            }
        }
    }
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        if self.in_tx {
            // An error (or a caller gone) before the commit: nothing of the
            // transaction stays, and the connection is usable again.
            let _ = lock(&self.conn).execute_batch("ROLLBACK");
        }
    }
}

/// Locks SQLite's queue connection. A writer that panicked left it as
/// SQLite did (each statement is atomic), so the lock is taken back.
pub(crate) fn lock(conn: &Mutex<rusqlite::Connection>) -> MutexGuard<'_, rusqlite::Connection> {
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

impl QueueConn {
    /// SQLite's queue connection; with `tx`, in a transaction begun now.
    pub(crate) async fn sqlite(
        conn: Arc<Mutex<rusqlite::Connection>>,
        tx: bool,
    ) -> Result<QueueConn, StoreError> {
        let mut c = SqliteConn { conn, in_tx: false };
        if tx {
            c.run(|conn| Ok(conn.execute_batch("BEGIN IMMEDIATE")?))
                .await?;
            c.in_tx = true;
        }
        Ok(QueueConn::Sqlite(c))
    }

    /// Runs one statement; answers the rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, args: Vec<Value>) -> Result<u64, StoreError> {
        match self {
            QueueConn::Sqlite(c) => {
                c.run(|conn| {
                    let mut stmt = conn.prepare_cached(sql)?;
                    bind_numbered(&mut stmt, &args)?;
                    Ok(u64::try_from(stmt.raw_execute()?).unwrap_or(u64::MAX))
                })
                .await
            }
            QueueConn::Pool(c) => Ok(sqlx_query(sql, args)
                .execute(&mut **c)
                .await?
                .rows_affected()),
            QueueConn::Tx(tx) => Ok(sqlx_query(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected()),
        }
    }

    /// Runs one statement and reads each row it answers with `each`.
    pub(crate) async fn fetch<T>(
        &mut self,
        sql: &str,
        args: Vec<Value>,
        each: impl Fn(&dyn Cells) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = match self {
            QueueConn::Sqlite(c) => {
                return c
                    .run(|conn| {
                        let mut stmt = conn.prepare_cached(sql)?;
                        bind_numbered(&mut stmt, &args)?;
                        let mut rows = stmt.raw_query();
                        let mut out = Vec::new();
                        while let Some(row) = rows.next()? {
                            out.push(each(row)?);
                        }
                        Ok(out)
                    })
                    .await;
            }
            QueueConn::Pool(c) => sqlx_query(sql, args).fetch_all(&mut **c).await?,
            QueueConn::Tx(tx) => sqlx_query(sql, args).fetch_all(&mut **tx).await?,
        };
        rows.iter().map(|r| each(r)).collect()
    }

    /// [`QueueConn::fetch`] of at most one row.
    pub(crate) async fn fetch_optional<T>(
        &mut self,
        sql: &str,
        args: Vec<Value>,
        each: impl Fn(&dyn Cells) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.fetch(sql, args, each).await?.into_iter().next())
    }

    /// Commits the transaction, if this is one.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            QueueConn::Sqlite(mut c) => {
                if c.in_tx {
                    c.run(|conn| Ok(conn.execute_batch("COMMIT")?)).await?;
                    c.in_tx = false;
                }
                Ok(())
            }
            QueueConn::Pool(_) => Ok(()),
            QueueConn::Tx(tx) => Ok(tx.commit().await?),
        }
    }
}

/// Binds `args` to a statement's `$n` placeholders by their numbers.
fn bind_numbered(stmt: &mut rusqlite::Statement<'_>, args: &[Value]) -> Result<(), StoreError> {
    for i in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| StoreError::Other(format!("parameter {i} is not written $n")))?;
        let value = n
            .checked_sub(1)
            .and_then(|n| args.get(n))
            .ok_or_else(|| StoreError::Other(format!("no value for ${n}")))?;
        stmt.raw_bind_parameter(i, value)?;
    }
    Ok(())
}

/// A sqlx query of `sql` with `args` bound in order.
fn sqlx_query(
    sql: &str,
    args: Vec<Value>,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for a in args {
        q = match a {
            Value::Int(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
            Value::Blob(v) => q.bind(v),
        };
    }
    q
}

/// The size a WAL larger than this is cut back to when SQLite starts it
/// again (after a burst, or a reader that held checkpoints up): 512 MB.
/// The checkpoint lets the WAL reach 256 MB and then what a second more
/// brings (up to about 200 MB at full load in `bench/queue.sh`; see
/// `checkpoint.rs`), so in the usual case the file keeps its blocks and a
/// commit overwrites them: a cut would make the next commits grow it again.
/// Set on every connection (the one that starts the WAL again applies its
/// own).
pub(crate) const WAL_SIZE_LIMIT: i64 = 512 << 20;

/// Opens the queue's own connection to the SQLite database at `url`
/// (`sqlite://PATH[?…]`, already migrated), synced as `sync` says
/// (`synchronous` FULL or NORMAL), never running a checkpoint itself.
pub(crate) fn open_sqlite(
    url: &str,
    sync: crate::CommitSync,
) -> Result<rusqlite::Connection, StoreError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    let conn = rusqlite::Connection::open(path)?;
    let synchronous = sync.sqlite_synchronous();
    // The queue's commits never run a checkpoint (copying the WAL into the
    // database and syncing both, milliseconds while every submit waits
    // behind it): the main pool's connections do, as usual, and
    // `SqlStore::checkpoint`.
    // No busy handler once open: `SqliteConn::run` waits for the lock.
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;
         PRAGMA synchronous = {synchronous}; PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}; PRAGMA busy_timeout = 0;"
    ))?;
    // Each statement is planned once, whatever values are bound to it.
    // Without this, SQLite (built with STAT4) plans a statement again each
    // time a `LIMIT $n` gets another value: `perf` put half of a claim's
    // CPU in re-preparing it. There are no statistics to plan by anyway.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // Claims and inserts have one text per batch size.
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
