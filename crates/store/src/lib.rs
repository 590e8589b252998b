//! Storage for fal: the traits the server depends on, and one SQL
//! implementation that serves both SQLite and PostgreSQL.
//!
//! # Layout
//! - this file: the record types, the error type and the capability traits.
//!   The traits are split by what a caller may do: [`KeyLookup`] is all that
//!   verification needs; [`KeyAdmin`] (create, list, revoke) is handed out by
//!   the server only to ADMIN principals; [`UserStore`] and [`MetaStore`] serve
//!   bootstrap and sign-in.
//! - [`sql`]: [`SqlStore`], the implementation over `sqlx::Any`. Queries are
//!   written once, in portable SQL with `$n` placeholders; what differs
//!   between backends (connection set-up, migrations, advisory locks) lives
//!   behind [`Backend`]. Each capability's queries are in a file of their
//!   own beside it: `keys.rs`, `users.rs`, `apps.rs`, `sessions.rs`,
//!   `meta.rs`, `leaks.rs` ([`LeakedKeys`]: keys by secret hash).
//! - [`queue`]: the request queue's records and [`queue::QueueStore`];
//!   its queries in `queue_sql.rs`, batch claims in `queue_claim.rs`,
//!   batch completions in `queue_done.rs`, SQLite's waiting counts in
//!   `queue_waiting.rs`; the writes run on `queue_conn.rs`'s `QueueConn`
//!   (sqlx on PostgreSQL, SQLite's own `rusqlite` connection used in place).
//! - [`audit`]: the audit log ([`AuditStore`]): append, list, prune.
//! - [`migrate`]: embedded migrations per backend and their runner.
//! - `testing` (feature `testing`): fresh PostgreSQL databases for tests and
//!   benchmarks; not part of the production API.
//! - [`changes`]: PostgreSQL LISTEN/NOTIFY, so every server drops a cached
//!   record as soon as any server changes it.
//! - [`stats`]: what metrics read: pool use, database errors by kind,
//!   the queue's depth per app.
#![forbid(unsafe_code)]

mod apps;
pub mod audit;
pub mod changes;
mod checkpoint;
mod key_changes;
mod key_types;
mod keys;
mod leaks;
mod meta;
pub mod migrate;
pub mod queue;
mod queue_claim;
mod queue_conn;
mod queue_done;
mod queue_sql;
mod queue_waiting;
mod rate_counts;
mod roll;
pub use rate_counts::RateCounts;
mod sessions;
pub mod sql;
pub mod stats;
#[cfg(feature = "testing")]
pub mod testing;
mod usage;
pub mod users;

use async_trait::async_trait;
use fal_core::usage::Hour;
use fal_core::{KeyId, KeyRecord, RateLimit, Timestamp, UsageCounts, UserId};

pub use audit::{AuditCursor, AuditFilter, AuditPage, AuditStore, StoredAuditEvent};
pub use key_types::{Cursor, KeyChange, KeyPage, KeySummary, NewKey, RollOutcome};
pub use leaks::LeakedKeys;
pub use sql::{CommitSync, SqlStore};
pub use stats::{PoolStats, QueueDepth, QueueStats};
pub use usage::HourlyUsage;

/// Which database engine a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file: the default, nothing to install.
    Sqlite,
    /// A PostgreSQL server, for several `fal serve` processes sharing state.
    Postgres,
}

/// Errors from storage. Messages never contain secrets. Cloneable, so one
/// failed commit can be told to every request it carried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; retrying later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (for example a duplicate id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database holds a schema newer than this binary understands.
    #[error(
        "the database schema is version {found}, newer than this fal (which knows up to {supported}); upgrade fal"
    )]
    SchemaTooNew {
        /// Version recorded in the database.
        found: i64,
        /// Newest version this binary knows.
        supported: i64,
    },
    /// The URL names no supported database.
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// Stored data did not have the expected shape.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let mapped = StoreError::from_driver(e);
        stats::count_error(&mapped);
        mapped
    }
}

impl From<rusqlite::Error> for StoreError {
    /// SQLite's queue connection (see `queue_conn.rs`): the same kinds as
    /// sqlx's errors, counted the same way.
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let mapped = match &e {
            rusqlite::Error::SqliteFailure(f, _) => match f.code {
                ErrorCode::ConstraintViolation => StoreError::Conflict(e.to_string()),
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::DiskFull => StoreError::Unavailable(e.to_string()),
                _ => StoreError::Other(e.to_string()),
            },
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Other(e.to_string()),
        };
        stats::count_error(&mapped);
        mapped
    }
}

impl StoreError {
    /// The driver's error, by kind (see `From<sqlx::Error>`, which also
    /// counts it for metrics).
    fn from_driver(e: sqlx::Error) -> StoreError {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

/// A user of the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub user_id: UserId,
    /// Short name shown in the CLI and dashboard.
    pub nickname: String,
    /// Display name (may be empty).
    pub full_name: String,
    /// GitHub's numeric user id, for users who sign in with GitHub.
    pub github_id: Option<i64>,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// What verification needs: read one key, and record use.
#[async_trait]
pub trait KeyLookup: Send + Sync {
    /// The record of `key_id`, revoked or not; `None` when unknown.
    async fn key_record(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;
    /// Changes of keys (created, revoked, user disabled) after change
    /// `seq`, oldest first, at most `limit`: how a server keeps its cache
    /// current with one query per interval.
    async fn key_changes_after(&self, seq: i64, limit: u32) -> Result<Vec<KeyChange>, StoreError>;
    /// The newest change's number (0 when there is none): where a server
    /// that has just filled its cache starts following.
    async fn last_key_change(&self) -> Result<i64, StoreError>;
    /// Deletes changes made before `before` (retention); returns how many.
    async fn prune_key_changes(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// Key records, revoked or not, in key id order after `after`, at most
    /// `limit`: for filling a cache at start.
    async fn key_records_after(
        &self,
        after: Option<&KeyId>,
        limit: u32,
    ) -> Result<Vec<KeyRecord>, StoreError>;
    /// Records when keys were last used, in one batch.
    async fn record_key_use(&self, uses: &[(KeyId, Timestamp)]) -> Result<(), StoreError>;
    /// Adds counted calls to each key's hourly usage, in one batch.
    async fn add_key_usage(&self, rows: &[HourlyUsage]) -> Result<(), StoreError>;
    /// Deletes usage of hours before `before` (retention); returns how many.
    async fn prune_key_usage(&self, before: Hour) -> Result<u64, StoreError>;
}

/// Managing keys: handed out only to ADMIN principals, always for one user.
#[async_trait]
pub trait KeyAdmin: Send + Sync {
    /// Stores a new key.
    async fn create_key(&self, key: &NewKey) -> Result<(), StoreError>;
    /// A page of `user_id`'s unrevoked keys, newest first.
    async fn list_keys(
        &self,
        user_id: &UserId,
        limit: u32,
        after: Option<&Cursor>,
    ) -> Result<KeyPage, StoreError>;
    /// Revokes `key_id` if `user_id` owns it and it is not yet revoked, and
    /// in the same transaction ends the sessions opened with it. Returns
    /// whether the key exists and belongs to the user (revoked now or
    /// before), so revocation is idempotent.
    async fn revoke_key(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// `user_id`'s unrevoked key `key_id` as listed, if there is one.
    async fn key_summary(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
    ) -> Result<Option<KeySummary>, StoreError>;
    /// Sets (or with `None` lifts) the rate limit of `key_id` if `user_id`
    /// owns it and it is not revoked, noting the change in the key change
    /// log so every server's cache learns it. Returns whether it did.
    async fn set_rate_limit(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        limit: Option<RateLimit>,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Rolls `user_id`'s key `key_id` at `at`, in one transaction: stores
    /// the new pair `new_id`/`new_hash` with the old key's alias, scope,
    /// rate limit and expiry policy; ends the old pair after `grace` (or at
    /// its own expiry, if sooner), and the dashboard sessions opened with it
    /// then too; notes both keys in the key change log. A revoked, expired
    /// or already rolled key is not rolled (see [`RollOutcome`]).
    async fn roll_key(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        new_id: KeyId,
        new_hash: fal_core::SecretHash,
        grace: fal_core::Grace,
        at: Timestamp,
    ) -> Result<RollOutcome, StoreError>;
    /// The hourly usage of `user_id`'s key `key_id` (revoked or not) from
    /// `since` on, oldest first; `None` when the user has no such key.
    async fn key_usage(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        since: Hour,
    ) -> Result<Option<Vec<(Hour, UsageCounts)>>, StoreError>;
    /// The hourly usage of every key of `user_id`'s from `since` on.
    async fn user_key_usage(
        &self,
        user_id: &UserId,
        since: Hour,
    ) -> Result<Vec<HourlyUsage>, StoreError>;
    /// Calls accepted from `since` on, per key of `user_id`'s that has any.
    async fn key_requests(
        &self,
        user_id: &UserId,
        since: Hour,
    ) -> Result<Vec<(KeyId, u64)>, StoreError>;
}

/// An app: `owner/name` served by an upstream the operator runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// Namespace, e.g. `fal-ai`.
    pub owner: String,
    /// Name within the namespace, e.g. `echo`.
    pub name: String,
    /// Base URL requests are forwarded to (`http://` or `https://`).
    pub upstream: String,
    /// How long the gateway waits for the upstream's response headers.
    pub timeout_ms: i64,
    /// How many queued requests of the app run at once; `None` for the
    /// servers' default.
    pub concurrency: Option<i64>,
    /// The user who registered it.
    pub created_by: UserId,
    /// When.
    pub created_at: Timestamp,
}

/// What the gateway needs: find an app.
#[async_trait]
pub trait AppLookup: Send + Sync {
    /// The app `owner/name`, if registered.
    async fn app(&self, owner: &str, name: &str) -> Result<Option<AppRecord>, StoreError>;
}

/// Managing apps: handed out only to ADMIN principals.
#[async_trait]
pub trait AppAdmin: Send + Sync {
    /// Registers an app; [`StoreError::Conflict`] if `owner/name` is taken.
    async fn create_app(&self, app: &AppRecord) -> Result<(), StoreError>;
    /// Every app, ordered by owner then name.
    async fn list_apps(&self) -> Result<Vec<AppRecord>, StoreError>;
    /// Removes an app (only if `created_by` registered it, when given);
    /// returns whether one was removed.
    async fn delete_app(
        &self,
        owner: &str,
        name: &str,
        created_by: Option<&UserId>,
    ) -> Result<bool, StoreError>;
}

/// Users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores a new user.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// The user with this id.
    async fn user(&self, user_id: &UserId) -> Result<Option<User>, StoreError>;
    /// The user signed in with this GitHub account, by GitHub's numeric id
    /// (which survives a renamed login).
    async fn user_by_github_id(&self, github_id: i64) -> Result<Option<User>, StoreError>;
    /// Updates the names shown for a user (they change on GitHub).
    async fn update_user_names(
        &self,
        user_id: &UserId,
        nickname: &str,
        full_name: &str,
    ) -> Result<(), StoreError>;
}

/// Whether a user is disabled: read at sign-in and by the operator check.
#[async_trait]
pub trait UserStatus: Send + Sync {
    /// When `user_id` was disabled; `None` for an active (or unknown) user.
    async fn disabled_at(&self, user_id: &UserId) -> Result<Option<Timestamp>, StoreError>;
}

/// What the server reads and writes about users outside administration.
pub trait Users: UserStore + UserStatus {}
impl<T: UserStore + UserStatus + ?Sized> Users for T {}

/// A user as operators see them in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// The user.
    pub user: User,
    /// When disabled, if they are.
    pub disabled_at: Option<Timestamp>,
    /// How many unrevoked keys they hold.
    pub active_keys: i64,
}

/// What disabling a user revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledUser {
    /// Keys revoked now (so caches can drop them).
    pub revoked_keys: Vec<KeyId>,
    /// Sessions ended now.
    pub revoked_sessions: u64,
}

/// Administering users: handed out by the server only to operators.
#[async_trait]
pub trait UserAdmin: Send + Sync {
    /// Every user, oldest first.
    async fn list_users(&self) -> Result<Vec<UserSummary>, StoreError>;
    /// Users whose nickname (GitHub login) is `nickname`, ignoring case.
    async fn users_by_nickname(&self, nickname: &str) -> Result<Vec<User>, StoreError>;
    /// Marks `user_id` disabled and revokes all their keys and sessions, in
    /// one transaction (announcing each key on PostgreSQL). Idempotent:
    /// a second call revokes whatever appeared since. `None` when no such user.
    async fn disable_user(
        &self,
        user_id: &UserId,
        at: Timestamp,
    ) -> Result<Option<DisabledUser>, StoreError>;
}

/// What kind of session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// The CLI's device-flow login: access and refresh tokens.
    Cli,
    /// The dashboard's cookie: one token, no refresh.
    Web,
}

impl SessionKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SessionKind::Cli => "cli",
            SessionKind::Web => "web",
        }
    }
}

/// A session after GitHub sign-in. Tokens are kept only as keyed hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Stable id (for logout).
    pub session_id: String,
    /// Whose.
    pub user_id: UserId,
    /// CLI or dashboard.
    pub kind: SessionKind,
    /// Hash of the current access token.
    pub access_hash: String,
    /// Hash of the current refresh token (CLI sessions).
    pub refresh_hash: Option<String>,
    /// When the access token stops working.
    pub access_expires_at: Timestamp,
    /// When the refresh token stops working.
    pub refresh_expires_at: Option<Timestamp>,
    /// When the session began.
    pub created_at: Timestamp,
    /// Set on logout.
    pub revoked: bool,
    /// The key a dashboard session was opened with: revoking the key ends
    /// the session.
    pub key_id: Option<KeyId>,
    /// The user's GitHub token, sealed by the server (never the token in
    /// clear; opaque to storage), for re-checking access at refresh.
    pub github_token: Option<String>,
}

/// Sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError>;
    /// The session whose access token hashes to `access_hash`.
    async fn session_by_access(
        &self,
        access_hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// The session with this id.
    async fn session_by_id(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// The session whose refresh token hashes to `refresh_hash`.
    async fn session_by_refresh(
        &self,
        refresh_hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Replaces both tokens of the live session holding `old_refresh_hash`
    /// (rotation), and keeps `old_refresh_hash` as spent until the session's
    /// refresh expiry (spent entries past their expiry are dropped here).
    /// Returns false if no live session holds it any more (so a refresh
    /// token works once).
    async fn rotate_session(
        &self,
        old_refresh_hash: &str,
        access_hash: &str,
        refresh_hash: &str,
        access_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Ends a session: neither of its tokens works afterwards.
    async fn revoke_session(&self, session_id: &str, at: Timestamp) -> Result<(), StoreError>;
    /// The id of the session whose refresh token hashing to `refresh_hash`
    /// was already spent (by rotation), so a replay can end that session.
    async fn session_of_spent_refresh(
        &self,
        refresh_hash: &str,
    ) -> Result<Option<String>, StoreError>;
}

/// Deployment-wide facts kept in the database.
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// Reads a value.
    async fn meta(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Sets `name` to `value` unless it is already set; returns the value now
    /// stored (the existing one if another server set it first).
    async fn meta_set_if_absent(&self, name: &str, value: &str) -> Result<String, StoreError>;
    /// Creates the bootstrap admin user and key in one transaction, unless a
    /// bootstrap user exists already. Returns whether it created them.
    async fn create_bootstrap(&self, user: &User, key: &NewKey) -> Result<bool, StoreError>;
    /// The bootstrap admin user, once created.
    async fn bootstrap_user(&self) -> Result<Option<UserId>, StoreError>;
}
