//! Rolling a key ([`crate::KeyAdmin::roll_key`]) for [`SqlStore`]: the new
//! pair and the end of the old one in one transaction, in portable SQL.

use fal_core::{ExpiryPolicy, Grace, KeyId, KeyRecord, SecretHash, Span, Timestamp, UserId};
use sqlx::Row;

use crate::keys::insert_key;
use crate::sql::corrupt;
use crate::{NewKey, RollOutcome, SqlStore, StoreError};

impl SqlStore {
    /// See [`crate::KeyAdmin::roll_key`].
    pub(crate) async fn roll(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        new_id: KeyId,
        new_hash: SecretHash,
        grace: Grace,
        at: Timestamp,
    ) -> Result<RollOutcome, StoreError> {
        let id = key_id.to_string();
        let mut tx = self.pool().begin().await?;
        // Written first, so the transaction holds the write lock before it
        // reads (on SQLite a read that then writes could find its snapshot
        // stale), and of two rolls at once only one gets the key.
        let claimed = sqlx::query(
            "UPDATE api_keys SET rolled_to = $1
             WHERE key_id = $2 AND user_id = $3 AND revoked_at IS NULL AND rolled_to IS NULL
               AND (expires_at IS NULL OR expires_at > $4)",
        )
        .bind(new_id.to_string())
        .bind(&id)
        .bind(user_id.as_str())
        .bind(at.millis())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await?;
            return self.why_not_rolled(user_id, &id, at).await;
        }
        let row = sqlx::query(
            "SELECT scope, alias, rate_limit, expires_at, lifetime_ms FROM api_keys WHERE key_id = $1",
        )
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
        let expires_at = row.try_get::<Option<i64>, _>("expires_at")?.map(Timestamp);
        let lifetime = row
            .try_get::<Option<i64>, _>("lifetime_ms")?
            .map(Span::from_millis);
        let rate_limit: Option<String> = row.try_get("rate_limit")?;
        let scope: String = row.try_get("scope")?;
        let new = NewKey {
            record: KeyRecord {
                key_id: new_id,
                user_id: user_id.clone(),
                scope: scope.parse().map_err(|_| corrupt("unknown scope"))?,
                secret_hash: new_hash,
                revoked: false,
                rate_limit: rate_limit
                    .map(|t| t.parse().map_err(|_| corrupt("rate_limit")))
                    .transpose()?,
                expires_at: ExpiryPolicy::stored(lifetime, expires_at).deadline(at),
                rolled: false,
            },
            alias: row.try_get("alias")?,
            created_at: at,
            lifetime,
        };
        let old_until = grace.old_deadline(at, expires_at);
        sqlx::query("UPDATE api_keys SET expires_at = $1 WHERE key_id = $2")
            .bind(old_until.millis())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        insert_key(&mut *tx, &new).await?;
        // Dashboard sessions opened with the old pair end with it.
        sqlx::query(
            "UPDATE sessions SET access_expires_at = $1
             WHERE key_id = $2 AND revoked_at IS NULL AND access_expires_at > $1",
        )
        .bind(old_until.millis())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        self.note_key_change(&mut tx, &id, at).await?;
        self.note_key_change(&mut tx, &new_id.to_string(), at)
            .await?;
        tx.commit().await?;
        Ok(RollOutcome::Rolled { new, old_until })
    }

    /// Why `user_id`'s key `id` was not rolled at `at`.
    async fn why_not_rolled(
        &self,
        user_id: &UserId,
        id: &str,
        at: Timestamp,
    ) -> Result<RollOutcome, StoreError> {
        let row = sqlx::query(
            "SELECT revoked_at, expires_at, rolled_to FROM api_keys
             WHERE key_id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user_id.as_str())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(RollOutcome::NotFound);
        };
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
            return Ok(RollOutcome::Revoked);
        }
        if let Some(to) = row.try_get::<Option<String>, _>("rolled_to")? {
            let to = to.parse().map_err(|_| corrupt("rolled_to"))?;
            return Ok(RollOutcome::AlreadyRolled(to));
        }
        match row.try_get::<Option<i64>, _>("expires_at")?.map(Timestamp) {
            Some(t) if t <= at => Ok(RollOutcome::Expired(t)),
            // Changed between the two statements: as good as rolled.
            _ => Err(StoreError::Conflict(
                "the key changed while it was being rolled; try again".into(),
            )),
        }
    }
}
