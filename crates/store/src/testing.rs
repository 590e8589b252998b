//! Support for tests and benchmarks that need a PostgreSQL database of
//! their own: each gets a fresh database on the server named by
//! `FAL_TEST_DATABASE_URL`, so they can run in parallel.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::StoreError;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// `FAL_TEST_DATABASE_URL`, if set. Without it, prints a loud SKIPPED line
/// naming `what` (straight to stderr, past the test harness's capture) and
/// returns `None`; under CI (`CI` set) it panics instead, so the PostgreSQL
/// suites can never silently not run there.
pub fn postgres_url_or_skip(what: &str) -> Option<String> {
    match std::env::var("FAL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but FAL_TEST_DATABASE_URL is not: the PostgreSQL suite must run in CI"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "*** SKIPPED PostgreSQL case `{what}`: FAL_TEST_DATABASE_URL is not set ***"
            );
            None
        }
    }
}

/// Replaces the database name at the end of a PostgreSQL URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix = match base.rsplit_once('/') {
        Some((p, _)) if p.contains("://") && p.len() > p.find("://").unwrap_or(0) + 3 => p,
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

/// Creates a fresh database on the server of `base_url`; returns its URL.
pub async fn create_database(base_url: &str, prefix: &str) -> Result<String, StoreError> {
    sqlx::any::install_default_drivers();
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let admin = sqlx::AnyPool::connect(base_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(with_database(base_url, &name))
}

/// Drops a database made by [`create_database`].
pub async fn drop_database(base_url: &str, url: &str) -> Result<(), StoreError> {
    let name = url
        .split('?')
        .next()
        .and_then(|u| u.rsplit('/').next())
        .unwrap_or_default();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    }
    let admin = sqlx::AnyPool::connect(base_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    admin.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_swapped() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
