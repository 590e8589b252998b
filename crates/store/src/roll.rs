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
        let row = sqlx::query(
            "SELECT scope, alias, rate_limit, revoked_at, expires_at, lifetime_ms, rolled_to
             FROM api_keys WHERE key_id = $1 AND user_id = $2",
        )
        .bind(&id)
        .bind(user_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(RollOutcome::NotFound);
        };
        let expires_at = row.try_get::<Option<i64>, _>("expires_at")?.map(Timestamp);
        let rolled_to: Option<String> = row.try_get("rolled_to")?;
        if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
            return Ok(RollOutcome::Revoked);
        }
        if let Some(to) = rolled_to {
            let to = to.parse().map_err(|_| corrupt("rolled_to"))?;
            return Ok(RollOutcome::AlreadyRolled(to));
        }
        if let Some(t) = expires_at.filter(|t| *t <= at) {
            return Ok(RollOutcome::Expired(t));
        }
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
        // Guarded again, so that of two rolls at once only one happens.
        let done = sqlx::query(
            "UPDATE api_keys SET expires_at = $1, rolled_to = $2
             WHERE key_id = $3 AND revoked_at IS NULL AND rolled_to IS NULL",
        )
        .bind(old_until.millis())
        .bind(new_id.to_string())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "the key was changed while it was being rolled".into(),
            ));
        }
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
}
