//! [`SqlStore`]: every storage trait over one `sqlx::AnyPool`. This file
//! opens the pool and holds what the capabilities share; each capability's
//! queries live in a room of their own: `keys.rs`, `users.rs`, `apps.rs`,
//! `sessions.rs`, `meta.rs`.
//!
//! Each query is written once, in SQL that SQLite and PostgreSQL both accept
//! (`$n` placeholders, `ON CONFLICT … DO NOTHING`, 64-bit integer
//! timestamps, ids and hashes as text). Backend differences are confined to
//! [`SqlStore::open`] (connection set-up) and the migration files.

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use fal_core::Timestamp;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use crate::changes::CHANGES_CHANNEL;
use crate::{Backend, StoreError, migrate};

/// A store over SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlStore {
    /// The connection pool (cheap to clone; shared by all clones).
    pool: AnyPool,
    /// Which engine is behind the pool.
    backend: Backend,
    /// The URL it was opened with, for the notification listener's own
    /// connection. May hold a password: never printed.
    url: std::sync::Arc<str>,
    /// SQLite: the queue's writers take turns here, in order, rather than
    /// in SQLite's busy handler, which sleeps (up to 100 ms at a time)
    /// while another connection holds the one write lock. The turn also
    /// holds the count of waiting requests (see [`WaitingCounts`]).
    queue_writes: Option<std::sync::Arc<tokio::sync::Mutex<Option<WaitingCounts>>>>,
    /// PostgreSQL: where the queue writes (the main pool, or one of its own
    /// when `queue_sync` is `Normal`). SQLite: the main pool, which the
    /// queue does not write through.
    queue_pool: AnyPool,
    /// SQLite: the queue's own connection (synced as `queue_sync` says),
    /// used in place by the writer whose turn it is (see `queue_conn.rs`).
    sqlite_queue: Option<std::sync::Arc<std::sync::Mutex<rusqlite::Connection>>>,
    /// How the queue's own commits reach the disk.
    queue_sync: CommitSync,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

static DRIVERS: Once = Once::new();

/// SQLite: how many requests wait, per app (owner, name) and priority.
/// Every write of the queue goes through this store in its turn (one server
/// per SQLite file), so it is kept exact beside the rows, and a new
/// request's queue position costs no count of the rows ahead of it.
pub(crate) type WaitingCounts = std::collections::HashMap<(String, String, i64), u64>;

/// How commits reach the disk.
///
/// For the store as a whole this is SQLite's `synchronous` (PostgreSQL's
/// own settings rule there). For the queue's writes ([`SqlStore::open_with`]'s
/// `queue_sync`) it is SQLite's `synchronous` on the queue's own connection,
/// and PostgreSQL's `synchronous_commit` for the queue's transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitSync {
    /// A commit is on disk when it returns, power cut included: SQLite's
    /// `synchronous = FULL`, PostgreSQL's `synchronous_commit = on`.
    Full,
    /// A commit survives the process's crash (`kill -9`) but the last ones
    /// may be lost when the machine loses power or the kernel crashes:
    /// SQLite's `synchronous = NORMAL` (WAL mode), PostgreSQL's
    /// `synchronous_commit = off` (which loses them on a database crash).
    /// A later `Full` commit of the same database syncs them too.
    Normal,
}

impl CommitSync {
    /// SQLite's `synchronous` value for this mode.
    pub(crate) fn sqlite_synchronous(self) -> &'static str {
        match self {
            CommitSync::Full => "FULL",
            CommitSync::Normal => "NORMAL",
        }
    }

    /// Parses `full` or `normal`.
    pub fn parse(s: &str) -> Result<CommitSync, String> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(CommitSync::Full),
            "normal" => Ok(CommitSync::Normal),
            _ => Err(format!("`{s}` is not a sync mode: write full or normal")),
        }
    }
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path, now: Timestamp) -> Result<SqlStore, StoreError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        SqlStore::open(&url, now).await
    }

    /// Opens the database at `url` (`sqlite://PATH[?…]` or `postgres://…`)
    /// and brings its schema up to date. Every commit is durable
    /// ([`CommitSync::Full`]), the queue's included.
    pub async fn open(url: &str, now: Timestamp) -> Result<SqlStore, StoreError> {
        SqlStore::open_with(url, now, CommitSync::Full, CommitSync::Full).await
    }

    /// [`SqlStore::open`] with chosen sync modes: `sync` for SQLite as a
    /// whole (benchmarks compare them; the server always uses `Full`), and
    /// `queue_sync` for the queue's writes (`fal serve --queue-sync`).
    pub async fn open_with(
        url: &str,
        now: Timestamp,
        sync: CommitSync,
        queue_sync: CommitSync,
    ) -> Result<SqlStore, StoreError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let pool = match backend {
            Backend::Sqlite => sqlite_pool(url, 4, sync).await?,
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .acquire_timeout(Duration::from_secs(3))
                    .max_connections(16)
                    .connect(url)
                    .await?
            }
        };
        migrate::run(&pool, backend, now.millis()).await?;
        let sqlite_queue = match backend {
            Backend::Sqlite => Some(std::sync::Arc::new(std::sync::Mutex::new(
                crate::queue_conn::open_sqlite(url, queue_sync)?,
            ))),
            Backend::Postgres => None,
        };
        let queue_pool = match backend {
            Backend::Sqlite => pool.clone(),
            Backend::Postgres if queue_sync == CommitSync::Full => pool.clone(),
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .acquire_timeout(Duration::from_secs(3))
                    .max_connections(8)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET synchronous_commit = off").await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
        };
        Ok(SqlStore {
            pool,
            backend,
            url: url.into(),
            queue_writes: (backend == Backend::Sqlite).then(Default::default),
            queue_pool,
            sqlite_queue,
            queue_sync,
        })
    }

    /// A turn to write the queue (SQLite; on PostgreSQL writers need none),
    /// with the waiting counts (`None` until first loaded).
    pub(crate) async fn queue_write_turn(
        &self,
    ) -> Option<tokio::sync::MutexGuard<'_, Option<WaitingCounts>>> {
        match &self.queue_writes {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }

    /// Where the queue's writes run, for one turn (take a
    /// [`SqlStore::queue_write_turn`] first). With `tx`, in a transaction;
    /// on PostgreSQL its commit is synced as `queue_sync` says, or never
    /// waits for the disk when `relaxed` (SQLite's queue connection has one
    /// mode).
    pub(crate) async fn queue_conn(
        &self,
        tx: bool,
        relaxed: bool,
    ) -> Result<crate::queue_conn::QueueConn, StoreError> {
        use crate::queue_conn::QueueConn;
        if let Some(conn) = &self.sqlite_queue {
            return QueueConn::sqlite(conn.clone(), tx).await;
        }
        if !tx {
            return Ok(QueueConn::Pool(self.queue_pool.acquire().await?));
        }
        let mut tx = self.queue_pool.begin().await?;
        if relaxed && self.queue_sync == CommitSync::Full {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
        }
        Ok(QueueConn::Tx(tx))
    }

    /// PostgreSQL: the pool the queue's writes run on (the main pool for
    /// `Full`, else connections with `synchronous_commit = off`).
    pub(crate) fn queue_pool(&self) -> &AnyPool {
        &self.queue_pool
    }

    /// SQLite: the queue's own connection.
    pub(crate) fn sqlite_queue(
        &self,
    ) -> Option<&std::sync::Arc<std::sync::Mutex<rusqlite::Connection>>> {
        self.sqlite_queue.as_ref()
    }

    /// Whether the queue writes through a pool of its own (PostgreSQL with
    /// `queue_sync` `Normal`), not the main one.
    pub(crate) fn has_own_queue_pool(&self) -> bool {
        self.backend == Backend::Postgres && self.queue_sync != CommitSync::Full
    }

    /// Which engine this store uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for backend-specific extensions (such as PostgreSQL
    /// notifications) that live beside this type.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Announces a change to every server listening (PostgreSQL only; with
    /// SQLite there is no channel, and the staleness bound covers other
    /// processes). Runs inside `tx`, so it is delivered only on commit.
    pub(crate) async fn announce(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        payload: &str,
    ) -> Result<(), StoreError> {
        self.notify(&mut **tx, payload).await
    }

    /// Announces a change at once, outside any transaction (PostgreSQL
    /// only, as [`SqlStore::announce`]).
    pub(crate) async fn announce_now(&self, payload: &str) -> Result<(), StoreError> {
        self.notify(&self.queue_pool, payload).await
    }

    /// `pg_notify` on the change channel through `e` (nothing on SQLite).
    async fn notify<'e, E>(&self, e: E, payload: &str) -> Result<(), StoreError>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(payload)
                .execute(e)
                .await?;
        }
        Ok(())
    }

    /// Subscribes to change announcements: `None` on SQLite, which has no
    /// channel. The subscription holds its own connection.
    pub async fn changes(&self) -> Result<Option<crate::changes::Changes>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres => Ok(Some(crate::changes::Changes::connect(&self.url).await?)),
        }
    }

    /// Whether the database answers and its schema is the one this binary
    /// knows (readiness checks): `Err` when it cannot be reached.
    pub async fn schema_is_current(&self) -> Result<bool, StoreError> {
        crate::migrate::is_current(&self.pool, self.backend).await
    }

    /// Closes every connection, waiting for queries under way.
    pub async fn close(&self) {
        self.queue_pool.close().await;
        self.pool.close().await;
    }
}

/// A SQLite pool of at most `max` connections, each synced as `sync` says.
async fn sqlite_pool(url: &str, max: u32, sync: CommitSync) -> Result<AnyPool, StoreError> {
    Ok(AnyPoolOptions::new()
        .acquire_timeout(Duration::from_secs(3))
        .max_connections(max)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                // WAL lets readers run beside the one writer; busy_timeout
                // makes writers queue instead of failing; FULL syncs the WAL
                // at every commit, so a key whose secret was shown survives
                // a power cut (NORMAL may lose the last commits).
                let synchronous = sync.sqlite_synchronous();
                let limit = crate::queue_conn::WAL_SIZE_LIMIT;
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = {synchronous}; \
                     PRAGMA journal_size_limit = {limit};"
                )))
                .await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sqlx::Row;

    async fn sqlite_modes(queue_sync: CommitSync) -> (i64, i64) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("fal.db").display());
        let store = SqlStore::open_with(&url, Timestamp(0), CommitSync::Full, queue_sync)
            .await
            .unwrap();
        let mode = |pool: AnyPool| async move {
            sqlx::query("PRAGMA synchronous")
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap()
        };
        let main = mode(store.pool.clone()).await;
        let queue_conn = store.sqlite_queue().unwrap().clone();
        let pragma = |name: &str| {
            crate::queue_conn::lock(&queue_conn)
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        let queue = pragma("synchronous");
        let autocheckpoint = |pool: AnyPool| async move {
            sqlx::query("PRAGMA wal_autocheckpoint")
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap()
        };
        // The queue's commits never checkpoint; the others do.
        assert_eq!(pragma("wal_autocheckpoint"), 0);
        assert_eq!(autocheckpoint(store.pool.clone()).await, 1000);
        // Queue writes (2,000 pages' worth, past the usual 1,000-page
        // threshold) stay in the WAL; a checkpoint copies them into the file.
        let file = dir.path().join("fal.db");
        let size = || std::fs::metadata(&file).unwrap().len();
        let before = size();
        for i in 0..2_000 {
            crate::queue_conn::lock(&queue_conn)
                .execute(
                    "INSERT INTO fal_meta (name, value) VALUES ($1, $2)",
                    (format!("k{i}"), "x".repeat(3_000)),
                )
                .unwrap();
        }
        assert_eq!(size(), before, "no checkpoint by the queue's commits");
        store.checkpoint().await.unwrap();
        assert!(size() > before + 4_000_000, "{before} -> {}", size());
        store.close().await;
        (main, queue)
    }

    /// SQLite's `synchronous`: 2 is FULL, 1 is NORMAL. Keys stay FULL
    /// whatever the queue's mode.
    #[tokio::test]
    async fn sqlite_queue_writes_have_their_own_sync_mode() {
        assert_eq!(sqlite_modes(CommitSync::Normal).await, (2, 1));
        assert_eq!(sqlite_modes(CommitSync::Full).await, (2, 2));
    }

    #[tokio::test]
    async fn postgres_queue_transactions_follow_the_queue_sync_mode() {
        let Some(base) = crate::testing::postgres_url_or_skip("store::sql queue sync") else {
            return;
        };
        let url = crate::testing::create_database(&base, "fal_sync")
            .await
            .unwrap();
        for (queue_sync, relaxed, want) in [
            (CommitSync::Normal, false, "off"),
            (CommitSync::Full, false, "on"),
            (CommitSync::Full, true, "off"),
        ] {
            let store = SqlStore::open_with(&url, Timestamp(0), CommitSync::Full, queue_sync)
                .await
                .unwrap();
            let got: String = if relaxed {
                let mut tx = store.queue_conn(true, relaxed).await.unwrap();
                let got = tx
                    .fetch("SHOW synchronous_commit", Vec::new(), |r| {
                        r.text_of("synchronous_commit")
                    })
                    .await
                    .unwrap();
                drop(tx);
                got.concat()
            } else {
                sqlx::query("SHOW synchronous_commit")
                    .fetch_one(store.queue_pool())
                    .await
                    .unwrap()
                    .try_get(0)
                    .unwrap()
            };
            let outside: String = sqlx::query("SHOW synchronous_commit")
                .fetch_one(store.pool())
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!((got.as_str(), outside.as_str()), (want, "on"));
            store.close().await;
        }
        crate::testing::drop_database(&base, &url).await.unwrap();
    }
}
