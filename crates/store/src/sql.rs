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
    /// while another connection holds the one write lock.
    queue_writes: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

static DRIVERS: Once = Once::new();

/// How SQLite puts commits on disk (PostgreSQL's own settings rule there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    /// `synchronous = FULL`: a commit is on disk when it returns, power
    /// cut included. The default.
    Full,
    /// `synchronous = NORMAL`: in WAL mode the last commits may be lost on
    /// a power cut (not on a crash).
    Normal,
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database file at `path`.
    pub async fn open_sqlite(path: &Path, now: Timestamp) -> Result<SqlStore, StoreError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        SqlStore::open(&url, now).await
    }

    /// Opens the database at `url` (`sqlite://PATH[?…]` or `postgres://…`)
    /// and brings its schema up to date. SQLite commits are durable
    /// ([`SqliteSync::Full`]).
    pub async fn open(url: &str, now: Timestamp) -> Result<SqlStore, StoreError> {
        SqlStore::open_with(url, now, SqliteSync::Full).await
    }

    /// [`SqlStore::open`] with a chosen SQLite sync mode (benchmarks
    /// compare them; the server always uses the default).
    pub async fn open_with(
        url: &str,
        now: Timestamp,
        sync: SqliteSync,
    ) -> Result<SqlStore, StoreError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(3));
        let pool = match backend {
            Backend::Sqlite => {
                options
                    .max_connections(4)
                    .after_connect(move |conn, _meta| {
                        Box::pin(async move {
                            // WAL lets readers run beside the one writer;
                            // busy_timeout makes writers queue instead of
                            // failing; FULL syncs the WAL at every commit, so
                            // a key whose secret was shown survives a power
                            // cut (NORMAL may lose the last commits).
                            conn.execute(match sync {
                                SqliteSync::Full => {
                                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                                     PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;"
                                }
                                SqliteSync::Normal => {
                                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                                     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
                                }
                            })
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => options.max_connections(16).connect(url).await?,
        };
        migrate::run(&pool, backend, now.millis()).await?;
        Ok(SqlStore {
            pool,
            backend,
            url: url.into(),
            queue_writes: (backend == Backend::Sqlite).then(Default::default),
        })
    }

    /// A turn to write the queue (SQLite; on PostgreSQL writers need none).
    pub(crate) async fn queue_write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.queue_writes {
            Some(m) => Some(m.lock().await),
            None => None,
        }
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
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(payload)
                .execute(&mut **tx)
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

    /// Closes every connection, waiting for queries under way.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}
