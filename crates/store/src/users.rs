//! Users over [`SqlStore`]: [`UserStore`] (who they are), [`UserStatus`]
//! and [`UserAdmin`] (disabling). Portable SQL, as in [`crate::sql`].

use async_trait::async_trait;
use fal_core::{Timestamp, UserId};
use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

use crate::keys::key_id_of;
use crate::{
    DisabledUser, SqlStore, StoreError, User, UserAdmin, UserStatus, UserStore, UserSummary,
};

pub(crate) fn user_of(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        user_id: UserId::from_stored(row.try_get("user_id")?),
        nickname: row.try_get("nickname")?,
        full_name: row.try_get("full_name")?,
        github_id: row.try_get("github_id")?,
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

pub(crate) async fn insert_user<'e, E>(exec: E, user: &User) -> Result<(), StoreError>
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
impl UserStore for SqlStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        insert_user(self.pool(), user).await
    }

    async fn user_by_github_id(&self, github_id: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, nickname, full_name, github_id, created_at FROM users WHERE github_id = $1",
        )
        .bind(github_id)
        .fetch_optional(self.pool())
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
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn user(&self, user_id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, nickname, full_name, github_id, created_at FROM users WHERE user_id = $1",
        )
        .bind(user_id.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user_of).transpose()
    }
}

#[async_trait]
impl UserStatus for SqlStore {
    async fn disabled_at(&self, user_id: &UserId) -> Result<Option<Timestamp>, StoreError> {
        let row = sqlx::query("SELECT disabled_at FROM users WHERE user_id = $1")
            .bind(user_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<Option<i64>, _>("disabled_at")?.map(Timestamp),
            None => None,
        })
    }
}

#[async_trait]
impl UserAdmin for SqlStore {
    async fn list_users(&self) -> Result<Vec<UserSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.user_id, u.nickname, u.full_name, u.github_id, u.created_at, u.disabled_at,
                    (SELECT COUNT(*) FROM api_keys k
                      WHERE k.user_id = u.user_id AND k.revoked_at IS NULL) AS active_keys
             FROM users u ORDER BY u.created_at, u.user_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UserSummary {
                    user: user_of(r)?,
                    disabled_at: r.try_get::<Option<i64>, _>("disabled_at")?.map(Timestamp),
                    active_keys: r.try_get("active_keys")?,
                })
            })
            .collect()
    }

    async fn users_by_nickname(&self, nickname: &str) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, nickname, full_name, github_id, created_at FROM users
             WHERE LOWER(nickname) = LOWER($1) ORDER BY created_at, user_id",
        )
        .bind(nickname)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(user_of).collect()
    }

    async fn disable_user(
        &self,
        user_id: &UserId,
        at: Timestamp,
    ) -> Result<Option<DisabledUser>, StoreError> {
        let mut tx = self.pool().begin().await?;
        // A write first: on SQLite a transaction that reads before it writes
        // fails (SQLITE_BUSY, not retried) when another connection, such as
        // the last_used_at flush, commits in between.
        let marked = sqlx::query(
            "UPDATE users SET disabled_at = $1 WHERE user_id = $2 AND disabled_at IS NULL",
        )
        .bind(at.millis())
        .bind(user_id.as_str())
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            let exists = sqlx::query("SELECT 1 AS one FROM users WHERE user_id = $1")
                .bind(user_id.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !exists {
                tx.rollback().await?;
                return Ok(None);
            }
        }
        let keys = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL
             RETURNING key_id",
        )
        .bind(at.millis())
        .bind(user_id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let revoked_keys = keys.iter().map(key_id_of).collect::<Result<Vec<_>, _>>()?;
        let sessions = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(at.millis())
        .bind(user_id.as_str())
        .execute(&mut *tx)
        .await?;
        for k in &revoked_keys {
            self.note_key_change(&mut tx, &k.to_string(), at).await?;
        }
        tx.commit().await?;
        Ok(Some(DisabledUser {
            revoked_keys,
            revoked_sessions: sessions.rows_affected(),
        }))
    }
}
