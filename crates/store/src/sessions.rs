//! [`SessionStore`] for [`SqlStore`]: sessions after sign-in, their
//! rotation, and the refresh tokens already spent (so a replay is seen).
//! Portable SQL, as in [`crate::sql`].

use async_trait::async_trait;
use fal_core::{KeyId, Timestamp, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::corrupt;
use crate::{SessionKind, SessionRecord, SessionStore, SqlStore, StoreError};

/// Columns of `sessions`, in the order [`session_of`] reads them.
const SESSION_COLUMNS: &str = "session_id, user_id, kind, access_hash, refresh_hash, \
     access_expires_at, refresh_expires_at, created_at, revoked_at, key_id, github_token";

fn session_of(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    let kind: String = row.try_get("kind")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let key_id = match row.try_get::<Option<String>, _>("key_id")? {
        Some(k) => Some(
            k.parse::<KeyId>()
                .map_err(|_| corrupt("session key id is not a key id"))?,
        ),
        None => None,
    };
    Ok(SessionRecord {
        session_id: row.try_get("session_id")?,
        user_id: UserId::from_stored(row.try_get("user_id")?),
        kind: match kind.as_str() {
            "cli" => SessionKind::Cli,
            "web" => SessionKind::Web,
            _ => return Err(corrupt("unknown session kind")),
        },
        access_hash: row.try_get("access_hash")?,
        refresh_hash: row.try_get("refresh_hash")?,
        access_expires_at: Timestamp(row.try_get("access_expires_at")?),
        refresh_expires_at: row
            .try_get::<Option<i64>, _>("refresh_expires_at")?
            .map(Timestamp),
        created_at: Timestamp(row.try_get("created_at")?),
        revoked: revoked_at.is_some(),
        key_id,
        github_token: row.try_get("github_token")?,
    })
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn create_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10)"
        )))
        .bind(s.session_id.as_str())
        .bind(s.user_id.as_str())
        .bind(s.kind.as_str())
        .bind(s.access_hash.as_str())
        .bind(s.refresh_hash.clone())
        .bind(s.access_expires_at.millis())
        .bind(s.refresh_expires_at.map(|t| t.millis()))
        .bind(s.created_at.millis())
        .bind(s.key_id.map(|k| k.to_string()))
        .bind(s.github_token.clone())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn session_by_access(
        &self,
        access_hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE access_hash = $1"
        )))
        .bind(access_hash)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session_of).transpose()
    }

    async fn session_by_id(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1"
        )))
        .bind(session_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session_of).transpose()
    }

    async fn session_by_refresh(
        &self,
        refresh_hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE refresh_hash = $1"
        )))
        .bind(refresh_hash)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session_of).transpose()
    }

    async fn rotate_session(
        &self,
        old_refresh_hash: &str,
        access_hash: &str,
        refresh_hash: &str,
        access_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let live = sqlx::query(
            "SELECT session_id, refresh_expires_at FROM sessions
             WHERE refresh_hash = $1 AND revoked_at IS NULL AND refresh_expires_at > $2",
        )
        .bind(old_refresh_hash)
        .bind(now.millis())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(live) = live else {
            tx.rollback().await?;
            return Ok(false);
        };
        let session_id: String = live.try_get("session_id")?;
        let expires_at: i64 = live.try_get("refresh_expires_at")?;
        let done = sqlx::query(
            "UPDATE sessions SET access_hash = $1, refresh_hash = $2, access_expires_at = $3
             WHERE refresh_hash = $4 AND revoked_at IS NULL AND refresh_expires_at > $5",
        )
        .bind(access_hash)
        .bind(refresh_hash)
        .bind(access_expires_at.millis())
        .bind(old_refresh_hash)
        .bind(now.millis())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO spent_refresh_tokens (refresh_hash, session_id, expires_at)
             VALUES ($1, $2, $3) ON CONFLICT (refresh_hash) DO NOTHING",
        )
        .bind(old_refresh_hash)
        .bind(session_id.as_str())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        // Bounded by sessions' lives: a spent token past its session's
        // refresh expiry could not be used anyway.
        sqlx::query("DELETE FROM spent_refresh_tokens WHERE expires_at <= $1")
            .bind(now.millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_session(&self, session_id: &str, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL",
        )
        .bind(at.millis())
        .bind(session_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn session_of_spent_refresh(
        &self,
        refresh_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT session_id FROM spent_refresh_tokens WHERE refresh_hash = $1")
                .bind(refresh_hash)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|r| r.try_get("session_id")).transpose()?)
    }
}
