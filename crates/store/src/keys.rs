//! [`KeyLookup`] and [`KeyAdmin`] for [`SqlStore`]: what verification
//! reads, and creating, listing and revoking a user's keys. Portable SQL,
//! as in [`crate::sql`].

use async_trait::async_trait;
use fal_core::usage::Hour;
use fal_core::{
    KeyId, KeyRecord, RateLimit, Scope, SecretHash, Span, Timestamp, UsageCounts, UserId,
};
use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

use crate::sql::corrupt;
use crate::{
    Cursor, HourlyUsage, KeyAdmin, KeyChange, KeyLookup, KeyPage, KeySummary, NewKey, SqlStore,
    StoreError,
};

pub(crate) fn key_id_of(row: &AnyRow) -> Result<KeyId, StoreError> {
    let s: String = row.try_get("key_id")?;
    s.parse().map_err(|_| corrupt("key_id is not a UUID"))
}

fn scope_of(row: &AnyRow) -> Result<Scope, StoreError> {
    let s: String = row.try_get("scope")?;
    s.parse().map_err(|_| corrupt("unknown scope"))
}

fn expires_at_of(row: &AnyRow) -> Result<Option<Timestamp>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>("expires_at")?.map(Timestamp))
}

fn rolled_to_of(row: &AnyRow) -> Result<Option<KeyId>, StoreError> {
    let text: Option<String> = row.try_get("rolled_to")?;
    text.map(|t| t.parse().map_err(|_| corrupt("rolled_to")))
        .transpose()
}

/// The columns [`record_of`] reads.
pub(crate) const RECORD_COLUMNS: &str =
    "key_id, user_id, scope, secret_hash, revoked_at, rate_limit, expires_at, rolled_to";

/// The columns [`summary_of`] reads.
const SUMMARY_COLUMNS: &str = "key_id, alias, scope, created_at, last_used_at, rate_limit, \
     expires_at, lifetime_ms, rolled_to";

fn rate_limit_of(row: &AnyRow) -> Result<Option<RateLimit>, StoreError> {
    let text: Option<String> = row.try_get("rate_limit")?;
    text.map(|t| t.parse().map_err(|_| corrupt("rate_limit")))
        .transpose()
}

/// A key record from a row of [`RECORD_COLUMNS`].
pub(crate) fn record_of(row: &AnyRow) -> Result<KeyRecord, StoreError> {
    let hash: String = row.try_get("secret_hash")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    Ok(KeyRecord {
        key_id: key_id_of(row)?,
        user_id: UserId::from_stored(row.try_get("user_id")?),
        scope: scope_of(row)?,
        secret_hash: SecretHash::from_hex(&hash).map_err(|_| corrupt("secret_hash"))?,
        revoked: revoked_at.is_some(),
        rate_limit: rate_limit_of(row)?,
        expires_at: expires_at_of(row)?,
        rolled: rolled_to_of(row)?.is_some(),
    })
}

/// A key as listed, from a row of [`SUMMARY_COLUMNS`].
fn summary_of(row: &AnyRow) -> Result<KeySummary, StoreError> {
    Ok(KeySummary {
        key_id: key_id_of(row)?,
        alias: row.try_get("alias")?,
        scope: scope_of(row)?,
        created_at: Timestamp(row.try_get("created_at")?),
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(Timestamp),
        rate_limit: rate_limit_of(row)?,
        expires_at: expires_at_of(row)?,
        lifetime: row
            .try_get::<Option<i64>, _>("lifetime_ms")?
            .map(Span::from_millis),
        rolled_to: rolled_to_of(row)?,
    })
}

pub(crate) async fn insert_key<'e, E>(exec: E, key: &NewKey) -> Result<(), StoreError>
where
    E: Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO api_keys (key_id, user_id, scope, alias, secret_hash, created_at, rate_limit,
                               expires_at, lifetime_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(key.record.key_id.to_string())
    .bind(key.record.user_id.as_str())
    .bind(key.record.scope.as_str())
    .bind(key.alias.as_str())
    .bind(key.record.secret_hash.to_hex())
    .bind(key.created_at.millis())
    .bind(key.record.rate_limit.map(|r| r.to_string()))
    .bind(key.record.expires_at.map(Timestamp::millis))
    .bind(key.lifetime.map(Span::millis))
    .execute(exec)
    .await?;
    Ok(())
}

#[async_trait]
impl KeyLookup for SqlStore {
    async fn key_record(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM api_keys WHERE key_id = $1"
        )))
        .bind(key_id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(record_of).transpose()
    }

    async fn key_changes_after(&self, seq: i64, limit: u32) -> Result<Vec<KeyChange>, StoreError> {
        self.changes_after(seq, limit).await
    }

    async fn last_key_change(&self) -> Result<i64, StoreError> {
        self.last_change().await
    }

    async fn prune_key_changes(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.prune_changes(before).await
    }

    async fn key_records_after(
        &self,
        after: Option<&KeyId>,
        limit: u32,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.records_after(after, limit).await
    }

    async fn record_key_use(&self, uses: &[(KeyId, Timestamp)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
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

    async fn add_key_usage(&self, rows: &[HourlyUsage]) -> Result<(), StoreError> {
        self.add_usage(rows).await
    }

    async fn prune_key_usage(&self, before: Hour) -> Result<u64, StoreError> {
        self.prune_usage(before).await
    }
}

#[async_trait]
impl KeyAdmin for SqlStore {
    async fn key_usage(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        since: Hour,
    ) -> Result<Option<Vec<(Hour, UsageCounts)>>, StoreError> {
        self.usage_of(user_id, key_id, since).await
    }

    async fn user_key_usage(
        &self,
        user_id: &UserId,
        since: Hour,
    ) -> Result<Vec<HourlyUsage>, StoreError> {
        self.usage_of_user(user_id, since).await
    }

    async fn key_requests(
        &self,
        user_id: &UserId,
        since: Hour,
    ) -> Result<Vec<(KeyId, u64)>, StoreError> {
        self.requests_of(user_id, since).await
    }

    async fn create_key(&self, key: &NewKey) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        insert_key(&mut *tx, key).await?;
        let id = key.record.key_id.to_string();
        self.note_key_change(&mut tx, &id, key.created_at).await?;
        tx.commit().await?;
        Ok(())
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUMMARY_COLUMNS} FROM api_keys
             WHERE user_id = $1 AND revoked_at IS NULL
               AND (created_at < $2 OR (created_at = $2 AND key_id < $3))
             ORDER BY created_at DESC, key_id DESC
             LIMIT $4"
        )))
        .bind(user_id.as_str())
        .bind(after_ms)
        .bind(after_id)
        .bind(i64::from(limit) + 1)
        .fetch_all(self.pool())
        .await?;
        let mut keys = rows
            .iter()
            .map(summary_of)
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
        let mut tx = self.pool().begin().await?;
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
            self.note_key_change(&mut tx, &id, at).await?;
            tx.commit().await?;
            return Ok(true);
        }
        tx.rollback().await?;
        let owned = sqlx::query("SELECT 1 AS one FROM api_keys WHERE key_id = $1 AND user_id = $2")
            .bind(&id)
            .bind(user_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(owned.is_some())
    }

    async fn key_summary(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
    ) -> Result<Option<KeySummary>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUMMARY_COLUMNS} FROM api_keys
             WHERE key_id = $1 AND user_id = $2 AND revoked_at IS NULL"
        )))
        .bind(key_id.to_string())
        .bind(user_id.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(summary_of).transpose()
    }

    async fn set_rate_limit(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        limit: Option<RateLimit>,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = key_id.to_string();
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET rate_limit = $1
             WHERE key_id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(limit.map(|l| l.to_string()))
        .bind(&id)
        .bind(user_id.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Servers' caches learn the new limit from the change log.
        self.note_key_change(&mut tx, &id, at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn roll_key(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        new_id: KeyId,
        new_hash: SecretHash,
        grace: fal_core::Grace,
        at: Timestamp,
    ) -> Result<crate::RollOutcome, StoreError> {
        self.roll(user_id, key_id, new_id, new_hash, grace, at)
            .await
    }
}
