//! The key change log: every change of a key that verification depends on
//! (created, revoked, its user disabled), written in the same transaction
//! as the change, so that each server can keep its key cache current with
//! one cheap query per interval instead of reading every cached key again
//! ([`crate::KeyLookup::key_changes_after`]). On PostgreSQL each change is
//! also announced at once ([`crate::changes`]); the log is what a server
//! that missed an announcement catches up from.

use fal_core::{KeyId, KeyRecord, Timestamp};
use sqlx::Row;

use crate::keys::{RECORD_COLUMNS, record_of};
use crate::sql::corrupt;
use crate::{KeyChange, SqlStore, StoreError};

impl SqlStore {
    /// Records that `key_id` changed, inside `tx` (so only on commit), and
    /// announces it to listening servers.
    pub(crate) async fn note_key_change(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        key_id: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO key_changes (key_id, changed_at) VALUES ($1, $2)")
            .bind(key_id)
            .bind(at.millis())
            .execute(&mut **tx)
            .await?;
        self.announce(tx, &format!("key:{key_id}")).await
    }

    /// Changes after `seq`, oldest first, at most `limit`.
    pub(crate) async fn changes_after(
        &self,
        seq: i64,
        limit: u32,
    ) -> Result<Vec<KeyChange>, StoreError> {
        let rows =
            sqlx::query("SELECT seq, key_id FROM key_changes WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(seq)
                .bind(i64::from(limit))
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("key_id")?;
                Ok(KeyChange {
                    seq: row.try_get("seq")?,
                    key_id: id.parse().map_err(|_| corrupt("key_changes.key_id"))?,
                })
            })
            .collect()
    }

    /// The newest change's number (0 when there is none).
    pub(crate) async fn last_change(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT MAX(seq) AS seq FROM key_changes")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<Option<i64>, _>("seq")?.unwrap_or(0))
    }

    /// Deletes changes made before `before`; returns how many.
    pub(crate) async fn prune_changes(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM key_changes WHERE changed_at < $1")
            .bind(before.millis())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Key records in key id order after `after`, at most `limit`: for
    /// filling a cache at start.
    pub(crate) async fn records_after(
        &self,
        after: Option<&KeyId>,
        limit: u32,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let after = after.map_or_else(String::new, KeyId::to_string);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM api_keys WHERE key_id > $1 ORDER BY key_id LIMIT $2"
        )))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record_of).collect()
    }
}
