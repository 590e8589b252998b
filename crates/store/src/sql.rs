//! [`SqlStore`]: every storage trait over one `sqlx::AnyPool`.
//!
//! Each query is written once, in SQL that SQLite and PostgreSQL both accept
//! (`$n` placeholders, `ON CONFLICT … DO NOTHING`, 64-bit integer
//! timestamps, ids and hashes as text). Backend differences are confined to
//! [`SqlStore::open`] (connection set-up) and the migration files.

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use async_trait::async_trait;
use fal_core::{KeyId, KeyRecord, Scope, SecretHash, Timestamp, UserId};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::{
    AppAdmin, AppLookup, AppRecord, Backend, Cursor, KeyAdmin, KeyLookup, KeyPage, KeySummary,
    MetaStore, NewKey, StoreError, User, UserStore, migrate,
};

/// Name of the `fal_meta` row that records the bootstrap admin user.
const BOOTSTRAP_USER: &str = "bootstrap_user_id";

/// The PostgreSQL channel on which changes that affect verification or
/// routing are announced (payloads: `key:<key_id>`, `app:<owner>/<name>`).
pub const CHANGES_CHANNEL: &str = "fal_changes";

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
        })
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

pub(crate) fn key_id_of(row: &AnyRow) -> Result<KeyId, StoreError> {
    let s: String = row.try_get("key_id")?;
    s.parse().map_err(|_| corrupt("key_id is not a UUID"))
}

fn scope_of(row: &AnyRow) -> Result<Scope, StoreError> {
    let s: String = row.try_get("scope")?;
    s.parse().map_err(|_| corrupt("unknown scope"))
}

pub(crate) fn user_of(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        user_id: UserId::from_stored(row.try_get("user_id")?),
        nickname: row.try_get("nickname")?,
        full_name: row.try_get("full_name")?,
        github_id: row.try_get("github_id")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

async fn insert_key<'e, E>(exec: E, key: &NewKey) -> Result<(), StoreError>
where
    E: Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO api_keys (key_id, user_id, scope, alias, secret_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.record.key_id.to_string())
    .bind(key.record.user_id.as_str())
    .bind(key.record.scope.as_str())
    .bind(key.alias.as_str())
    .bind(key.record.secret_hash.to_hex())
    .bind(key.created_at.millis())
    .execute(exec)
    .await?;
    Ok(())
}

async fn insert_user<'e, E>(exec: E, user: &User) -> Result<(), StoreError>
where
    E: Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO users (user_id, nickname, full_name, github_id, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user.user_id.as_str())
    .bind(user.nickname.as_str())
    .bind(user.full_name.as_str())
    .bind(user.github_id)
    .bind(user.created_at.millis())
    .execute(exec)
    .await?;
    Ok(())
}

#[async_trait]
impl KeyLookup for SqlStore {
    async fn key_record(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT key_id, user_id, scope, secret_hash, revoked_at FROM api_keys WHERE key_id = $1",
        )
        .bind(key_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: String = row.try_get("secret_hash")?;
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        Ok(Some(KeyRecord {
            key_id: key_id_of(&row)?,
            user_id: UserId::from_stored(row.try_get("user_id")?),
            scope: scope_of(&row)?,
            secret_hash: SecretHash::from_hex(&hash).map_err(|_| corrupt("secret_hash"))?,
            revoked: revoked_at.is_some(),
        }))
    }

    async fn record_key_use(&self, uses: &[(KeyId, Timestamp)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (key_id, at) in uses {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $1
                 WHERE key_id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(at.millis())
            .bind(key_id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl KeyAdmin for SqlStore {
    async fn create_key(&self, key: &NewKey) -> Result<(), StoreError> {
        insert_key(&self.pool, key).await
    }

    async fn list_keys(
        &self,
        user_id: &UserId,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<KeyPage, StoreError> {
        // Without a cursor, start above every possible key: one query serves both.
        let (after_ms, after_id) = match after {
            Some(c) => (c.created_at.millis(), c.key_id.to_string()),
            None => (i64::MAX, String::new()),
        };
        let rows = sqlx::query(
            "SELECT key_id, alias, scope, created_at, last_used_at FROM api_keys
             WHERE user_id = $1 AND revoked_at IS NULL
               AND (created_at < $2 OR (created_at = $2 AND key_id < $3))
             ORDER BY created_at DESC, key_id DESC
             LIMIT $4",
        )
        .bind(user_id.as_str())
        .bind(after_ms)
        .bind(after_id)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut keys = rows
            .iter()
            .map(|row| {
                Ok(KeySummary {
                    key_id: key_id_of(row)?,
                    alias: row.try_get("alias")?,
                    scope: scope_of(row)?,
                    created_at: Timestamp(row.try_get("created_at")?),
                    last_used_at: row
                        .try_get::<Option<i64>, _>("last_used_at")?
                        .map(Timestamp),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let more = keys.len() > limit as usize;
        keys.truncate(limit as usize);
        let next_cursor = match keys.last() {
            Some(last) if more => Some(Cursor {
                created_at: last.created_at,
                key_id: last.key_id,
            }),
            _ => None,
        };
        Ok(KeyPage { keys, next_cursor })
    }

    async fn revoke_key(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = key_id.to_string();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1
             WHERE key_id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(at.millis())
        .bind(&id)
        .bind(user_id.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            // Dashboard sessions opened with this key end with it.
            sqlx::query(
                "UPDATE sessions SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
            )
            .bind(at.millis())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            self.announce(&mut tx, &format!("key:{id}")).await?;
            tx.commit().await?;
            return Ok(true);
        }
        tx.rollback().await?;
        let owned = sqlx::query("SELECT 1 AS one FROM api_keys WHERE key_id = $1 AND user_id = $2")
            .bind(&id)
            .bind(user_id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(owned.is_some())
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        insert_user(&self.pool, user).await
    }

    async fn user_by_github_id(&self, github_id: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, nickname, full_name, github_id, created_at FROM users WHERE github_id = $1",
        )
        .bind(github_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_of).transpose()
    }

    async fn update_user_names(
        &self,
        user_id: &UserId,
        nickname: &str,
        full_name: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET nickname = $1, full_name = $2 WHERE user_id = $3")
            .bind(nickname)
            .bind(full_name)
            .bind(user_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn user(&self, user_id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, nickname, full_name, github_id, created_at FROM users WHERE user_id = $1",
        )
        .bind(user_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_of).transpose()
    }
}

#[async_trait]
impl MetaStore for SqlStore {
    async fn meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM fal_meta WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    async fn meta_set_if_absent(&self, name: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO fal_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        self.meta(name)
            .await?
            .ok_or_else(|| corrupt("fal_meta row vanished after insert"))
    }

    async fn create_bootstrap(&self, user: &User, key: &NewKey) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO fal_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(BOOTSTRAP_USER)
        .bind(user.user_id.as_str())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_user(&mut *tx, user).await?;
        insert_key(&mut *tx, key).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn bootstrap_user(&self) -> Result<Option<UserId>, StoreError> {
        Ok(self.meta(BOOTSTRAP_USER).await?.map(UserId::from_stored))
    }
}

fn app_of(row: &AnyRow) -> Result<AppRecord, StoreError> {
    Ok(AppRecord {
        owner: row.try_get("owner")?,
        name: row.try_get("name")?,
        upstream: row.try_get("upstream")?,
        timeout_ms: row.try_get("timeout_ms")?,
        created_by: UserId::from_stored(row.try_get("created_by")?),
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

/// Columns of `apps`, in the order [`app_of`] reads them.
const APP_COLUMNS: &str = "owner, name, upstream, timeout_ms, created_by, created_at";

#[async_trait]
impl AppLookup for SqlStore {
    async fn app(&self, owner: &str, name: &str) -> Result<Option<AppRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE owner = $1 AND name = $2"
        )))
        .bind(owner)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(app_of).transpose()
    }
}

#[async_trait]
impl AppAdmin for SqlStore {
    async fn create_app(&self, app: &AppRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        )))
        .bind(app.owner.as_str())
        .bind(app.name.as_str())
        .bind(app.upstream.as_str())
        .bind(app.timeout_ms)
        .bind(app.created_by.as_str())
        .bind(app.created_at.millis())
        .execute(&mut *tx)
        .await?;
        // Servers may have cached "no such app".
        self.announce(&mut tx, &format!("app:{}/{}", app.owner, app.name))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM apps ORDER BY owner, name"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(app_of).collect()
    }

    async fn delete_app(
        &self,
        owner: &str,
        name: &str,
        created_by: Option<&UserId>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let delete = match created_by {
            None => sqlx::query("DELETE FROM apps WHERE owner = $1 AND name = $2"),
            Some(_) => {
                sqlx::query("DELETE FROM apps WHERE owner = $1 AND name = $2 AND created_by = $3")
            }
        }
        .bind(owner)
        .bind(name);
        let delete = match created_by {
            Some(u) => delete.bind(u.as_str()),
            None => delete,
        };
        let done = delete.execute(&mut *tx).await?;
        if done.rows_affected() > 0 {
            self.announce(&mut tx, &format!("app:{owner}/{name}"))
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
