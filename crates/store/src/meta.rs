//! [`MetaStore`] for [`SqlStore`]: the pepper fingerprint and the bootstrap
//! admin user. Portable SQL, as in [`crate::sql`].

use async_trait::async_trait;
use sqlx::Row;

use fal_core::UserId;

use crate::keys::insert_key;
use crate::sql::corrupt;
use crate::users::insert_user;
use crate::{MetaStore, NewKey, SqlStore, StoreError, User};

/// Name of the `fal_meta` row that records the bootstrap admin user.
const BOOTSTRAP_USER: &str = "bootstrap_user_id";

#[async_trait]
impl MetaStore for SqlStore {
    async fn meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM fal_meta WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    async fn meta_set_if_absent(&self, name: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO fal_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(self.pool())
        .await?;
        self.meta(name)
            .await?
            .ok_or_else(|| corrupt("fal_meta row vanished after insert"))
    }

    async fn create_bootstrap(&self, user: &User, key: &NewKey) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
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
        let id = key.record.key_id.to_string();
        self.note_key_change(&mut tx, &id, key.created_at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn bootstrap_user(&self) -> Result<Option<UserId>, StoreError> {
        Ok(self.meta(BOOTSTRAP_USER).await?.map(UserId::from_stored))
    }
}
