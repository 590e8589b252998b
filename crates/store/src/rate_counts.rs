//! [`RateCounts`] for [`SqlStore`]: each key's calls per rate-limit
//! window, which servers sharing the database add to as they lease calls
//! (see `fal_core::budget`). One upsert per lease, in portable SQL.

use async_trait::async_trait;
use fal_core::{KeyId, Timestamp};
use sqlx::Row;

use crate::{SqlStore, StoreError};

/// Each key's calls per rate-limit window, shared by the servers of a
/// cluster: what they lease their local budgets from (see
/// `fal_core::budget`). Never on a request's path.
#[async_trait]
pub trait RateCounts: Send + Sync {
    /// Adds `calls` to `key_id`'s count for the window of `period_ms`
    /// starting at `window_start` (ms), atomically; returns the new count.
    async fn add_rate_usage(
        &self,
        key_id: &KeyId,
        period_ms: i64,
        window_start: i64,
        calls: u64,
    ) -> Result<u64, StoreError>;
    /// Deletes the counts of windows that ended before `ended_before`;
    /// returns how many.
    async fn prune_rate_usage(&self, ended_before: Timestamp) -> Result<u64, StoreError>;
}

#[async_trait]
impl RateCounts for SqlStore {
    async fn add_rate_usage(
        &self,
        key_id: &KeyId,
        period_ms: i64,
        window_start: i64,
        calls: u64,
    ) -> Result<u64, StoreError> {
        let calls =
            i64::try_from(calls).map_err(|_| StoreError::Other("count too large".into()))?;
        let row = sqlx::query(
            "INSERT INTO rate_limit_usage (key_id, period_ms, window_start, used)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (key_id, period_ms, window_start)
             DO UPDATE SET used = rate_limit_usage.used + excluded.used
             RETURNING used",
        )
        .bind(key_id.to_string())
        .bind(period_ms)
        .bind(window_start)
        .bind(calls)
        .fetch_one(self.pool())
        .await?;
        let used: i64 = row.try_get("used")?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    async fn prune_rate_usage(&self, ended_before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM rate_limit_usage
             WHERE window_start < $1 AND window_start + period_ms < $1",
        )
        .bind(ended_before.millis())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
