//! Embedded migrations, one list per backend, and the runner.
//!
//! Each backend has its own SQL files (under `migrations/<backend>/`) so
//! that dialect differences stay there. Applied versions are recorded in
//! `fal_schema_version`; a database that records a version this binary does
//! not know is refused, so an older binary never writes into a newer schema.

use sqlx::{AnyPool, Row};

use crate::{Backend, StoreError};

/// One schema step.
struct Migration {
    /// Strictly increasing, starting at 1.
    version: i64,
    /// Statements to run, in one transaction where the backend allows it.
    sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/sqlite/0002_apps.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/sqlite/0003_sessions.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/sqlite/0004_session_links.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/sqlite/0005_disabled_users.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/sqlite/0006_key_changes.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/sqlite/0007_rate_limits.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/sqlite/0008_queue.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../migrations/sqlite/0009_app_concurrency.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../migrations/sqlite/0010_queue_status_index.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../migrations/sqlite/0011_key_lifecycle.sql"),
    },
    Migration {
        version: 12,
        sql: include_str!("../migrations/sqlite/0012_key_usage.sql"),
    },
    Migration {
        version: 13,
        sql: include_str!("../migrations/sqlite/0013_audit.sql"),
    },
    Migration {
        version: 14,
        sql: include_str!("../migrations/sqlite/0014_secret_hash_index.sql"),
    },
    Migration {
        version: 15,
        sql: include_str!("../migrations/sqlite/0015_queue_claim_index.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/postgres/0002_apps.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/postgres/0003_sessions.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/postgres/0004_session_links.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../migrations/postgres/0005_disabled_users.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../migrations/postgres/0006_key_changes.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../migrations/postgres/0007_rate_limits.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../migrations/postgres/0008_queue.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../migrations/postgres/0009_app_concurrency.sql"),
    },
    Migration {
        version: 10,
        sql: include_str!("../migrations/postgres/0010_queue_status_index.sql"),
    },
    Migration {
        version: 11,
        sql: include_str!("../migrations/postgres/0011_key_lifecycle.sql"),
    },
    Migration {
        version: 12,
        sql: include_str!("../migrations/postgres/0012_key_usage.sql"),
    },
    Migration {
        version: 13,
        sql: include_str!("../migrations/postgres/0013_audit.sql"),
    },
    Migration {
        version: 14,
        sql: include_str!("../migrations/postgres/0014_secret_hash_index.sql"),
    },
    Migration {
        version: 15,
        sql: include_str!("../migrations/postgres/0015_queue_claim_index.sql"),
    },
];

fn migrations(backend: Backend) -> &'static [Migration] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

/// The newest schema version this binary knows.
pub fn latest_version(backend: Backend) -> i64 {
    migrations(backend).last().map(|m| m.version).unwrap_or(0)
}

/// Whether the schema is exactly the one this binary knows: one cheap
/// query, for readiness checks. An error means the database cannot be read.
pub async fn is_current(pool: &AnyPool, backend: Backend) -> Result<bool, StoreError> {
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM fal_schema_version")
        .fetch_one(pool)
        .await?
        .try_get("v")?;
    Ok(current == latest_version(backend))
}

/// Brings the schema up to date, or refuses a schema newer than this binary.
pub async fn run(pool: &AnyPool, backend: Backend, now_ms: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    if backend == Backend::Postgres {
        // Several servers may start at once against one database: the first
        // to take this transaction-scoped lock migrates, the others wait.
        sqlx::query("SELECT pg_advisory_xact_lock(7264001)")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS fal_schema_version (
            version BIGINT PRIMARY KEY,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await?;
    let current: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM fal_schema_version")
        .fetch_one(&mut *tx)
        .await?
        .try_get("v")?;
    let latest = latest_version(backend);
    if current > latest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: latest,
        });
    }
    for m in migrations(backend).iter().filter(|m| m.version > current) {
        tracing::info!(version = m.version, "applying database migration");
        sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO fal_schema_version (version, applied_at) VALUES ($1, $2)")
            .bind(m.version)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
