//! [`AppLookup`] and [`AppAdmin`] for [`SqlStore`]: apps and their
//! owners. Portable SQL, as in [`crate::sql`].

use async_trait::async_trait;
use fal_core::{Timestamp, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{AppAdmin, AppLookup, AppRecord, SqlStore, StoreError};

fn app_of(row: &AnyRow) -> Result<AppRecord, StoreError> {
    Ok(AppRecord {
        owner: row.try_get("owner")?,
        name: row.try_get("name")?,
        upstream: row.try_get("upstream")?,
        timeout_ms: row.try_get("timeout_ms")?,
        concurrency: row.try_get("concurrency")?,
        created_by: UserId::from_stored(row.try_get("created_by")?),
        created_at: Timestamp(row.try_get("created_at")?),
    })
}

/// Columns of `apps`, in the order [`app_of`] reads them.
const APP_COLUMNS: &str = "owner, name, upstream, timeout_ms, created_by, created_at, concurrency";

#[async_trait]
impl AppLookup for SqlStore {
    async fn app(&self, owner: &str, name: &str) -> Result<Option<AppRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE owner = $1 AND name = $2"
        )))
        .bind(owner)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(app_of).transpose()
    }
}

#[async_trait]
impl AppAdmin for SqlStore {
    async fn create_app(&self, app: &AppRecord) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )))
        .bind(app.owner.as_str())
        .bind(app.name.as_str())
        .bind(app.upstream.as_str())
        .bind(app.timeout_ms)
        .bind(app.created_by.as_str())
        .bind(app.created_at.millis())
        .bind(app.concurrency)
        .execute(&mut *tx)
        .await?;
        // Servers may have cached "no such app".
        self.announce(&mut tx, &format!("app:{}/{}", app.owner, app.name))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM apps ORDER BY owner, name"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(app_of).collect()
    }

    async fn delete_app(
        &self,
        owner: &str,
        name: &str,
        created_by: Option<&UserId>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let delete = match created_by {
            None => sqlx::query("DELETE FROM apps WHERE owner = $1 AND name = $2"),
            Some(_) => {
                sqlx::query("DELETE FROM apps WHERE owner = $1 AND name = $2 AND created_by = $3")
            }
        }
        .bind(owner)
        .bind(name);
        let delete = match created_by {
            Some(u) => delete.bind(u.as_str()),
            None => delete,
        };
        let done = delete.execute(&mut *tx).await?;
        if done.rows_affected() > 0 {
            self.announce(&mut tx, &format!("app:{owner}/{name}"))
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
