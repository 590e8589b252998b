//! Per-key usage for [`SqlStore`]: each key's calls per hour, accepted and
//! refused by reason. Servers add their in-memory counts in batches with an
//! additive upsert, so the counts of servers sharing a database add up.
//! Portable SQL, as in [`crate::sql`].

use fal_core::usage::Hour;
use fal_core::{KeyId, UsageCounts, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::keys::key_id_of;
use crate::sql::corrupt;
use crate::{SqlStore, StoreError};

/// One key's counts in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourlyUsage {
    /// Whose.
    pub key_id: KeyId,
    /// Which hour.
    pub hour: Hour,
    /// What was counted.
    pub counts: UsageCounts,
}

/// Rows per `INSERT`: 7 parameters each, well under both backends' limits.
const ROWS_PER_STATEMENT: usize = 200;

/// The counts' columns, in [`UsageCounts::as_array`] order.
const COLUMNS: [&str; 5] = [
    "accepted",
    "wrong_secret",
    "revoked",
    "rate_limited",
    "expired",
];

fn count(c: u64) -> i64 {
    i64::try_from(c).unwrap_or(i64::MAX)
}

fn counts_of(row: &AnyRow) -> Result<UsageCounts, StoreError> {
    let mut a = [0u64; 5];
    for (slot, column) in a.iter_mut().zip(COLUMNS) {
        let n: i64 = row.try_get(column)?;
        *slot = u64::try_from(n).map_err(|_| corrupt("negative usage count"))?;
    }
    Ok(UsageCounts::from_array(a))
}

fn hour_of(row: &AnyRow) -> Result<Hour, StoreError> {
    Hour::from_start(row.try_get("hour")?).ok_or_else(|| corrupt("usage hour"))
}

/// The upsert for `rows` rows: each column of an existing row is added to.
fn upsert_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO key_usage (key_id, hour");
    for c in COLUMNS {
        sql.push_str(", ");
        sql.push_str(c);
    }
    sql.push_str(") VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let p: Vec<String> = (1..=7).map(|i| format!("${}", r * 7 + i)).collect();
        sql.push('(');
        sql.push_str(&p.join(", "));
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (key_id, hour) DO UPDATE SET ");
    let sets: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{c} = key_usage.{c} + excluded.{c}"))
        .collect();
    sql.push_str(&sets.join(", "));
    sql
}

impl SqlStore {
    /// Adds `rows` to the stored counts, in one transaction. Rows for the
    /// same key and hour are merged first (one statement may not touch a
    /// row twice), and written in key and hour order, so that servers
    /// flushing at once take row locks in the same order.
    pub(crate) async fn add_usage(&self, rows: &[HourlyUsage]) -> Result<(), StoreError> {
        let mut merged: Vec<HourlyUsage> = rows.to_vec();
        merged.sort_by_key(|r| (r.key_id, r.hour));
        merged.dedup_by(|next, kept| {
            let same = next.key_id == kept.key_id && next.hour == kept.hour;
            if same {
                kept.counts.add(&next.counts);
            }
            same
        });
        merged.retain(|r| !r.counts.is_empty());
        if merged.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool().begin().await?;
        for chunk in merged.chunks(ROWS_PER_STATEMENT) {
            let sql = upsert_sql(chunk.len());
            // Only constants and numbered placeholders: no input in the text.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q.bind(r.key_id.to_string()).bind(r.hour.start().millis());
                for c in r.counts.as_array() {
                    q = q.bind(count(c));
                }
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the counts of hours before `before`; returns how many rows.
    pub(crate) async fn prune_usage(&self, before: Hour) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM key_usage WHERE hour < $1")
            .bind(before.start().millis())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// `user_id`'s key `key_id`'s hours from `since` on, oldest first;
    /// `None` when the user has no such key (revoked keys included).
    pub(crate) async fn usage_of(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
        since: Hour,
    ) -> Result<Option<Vec<(Hour, UsageCounts)>>, StoreError> {
        let owned = sqlx::query("SELECT 1 AS one FROM api_keys WHERE key_id = $1 AND user_id = $2")
            .bind(key_id.to_string())
            .bind(user_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        if owned.is_none() {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT hour, accepted, wrong_secret, revoked, rate_limited, expired
             FROM key_usage WHERE key_id = $1 AND hour >= $2 ORDER BY hour",
        )
        .bind(key_id.to_string())
        .bind(since.start().millis())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((hour_of(r)?, counts_of(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()
            .map(Some)
    }

    /// Every hour from `since` on of every key of `user_id`'s.
    pub(crate) async fn usage_of_user(
        &self,
        user_id: &UserId,
        since: Hour,
    ) -> Result<Vec<HourlyUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.key_id AS key_id, u.hour AS hour, u.accepted AS accepted,
                    u.wrong_secret AS wrong_secret, u.revoked AS revoked,
                    u.rate_limited AS rate_limited, u.expired AS expired
             FROM key_usage u JOIN api_keys k ON k.key_id = u.key_id
             WHERE k.user_id = $1 AND u.hour >= $2
             ORDER BY u.key_id, u.hour",
        )
        .bind(user_id.as_str())
        .bind(since.start().millis())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HourlyUsage {
                    key_id: key_id_of(r)?,
                    hour: hour_of(r)?,
                    counts: counts_of(r)?,
                })
            })
            .collect()
    }

    /// Calls accepted from `since` on, for each of `user_id`'s keys that
    /// has any.
    pub(crate) async fn requests_of(
        &self,
        user_id: &UserId,
        since: Hour,
    ) -> Result<Vec<(KeyId, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.key_id AS key_id, CAST(SUM(u.accepted) AS BIGINT) AS accepted
             FROM key_usage u JOIN api_keys k ON k.key_id = u.key_id
             WHERE k.user_id = $1 AND u.hour >= $2
             GROUP BY u.key_id",
        )
        .bind(user_id.as_str())
        .bind(since.start().millis())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get("accepted")?;
                Ok((key_id_of(r)?, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_upsert_numbers_every_row_and_adds_every_column() {
        let sql = upsert_sql(2);
        assert!(sql.contains("($1, $2, $3, $4, $5, $6, $7), ($8, $9, $10, $11, $12, $13, $14)"));
        for c in COLUMNS {
            assert!(
                sql.contains(&format!("{c} = key_usage.{c} + excluded.{c}")),
                "{sql}"
            );
        }
    }
}
