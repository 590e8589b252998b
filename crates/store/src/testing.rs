//! Support for tests and benchmarks:
//! - PostgreSQL databases of their own: each gets a fresh database on the
//!   server named by `FAL_TEST_DATABASE_URL`, so they can run in parallel.
//! - users and keys written straight into storage ([`seed_user`],
//!   [`seed_key`]), as a second process would: there is no sign-up API
//!   before GitHub sign-in, and a test often needs a second user.

use std::sync::atomic::{AtomicU64, Ordering};

use fal_core::{OsRandom, Pepper, Scope, SecretHasher, Timestamp, UserId, mint_key};

use crate::{KeyAdmin, NewKey, StoreError, User, UserStore};

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

/// When seeded users and keys say they were created: a fixed early time,
/// so they sort before anything a test creates through the API.
const SEEDED_AT: Timestamp = Timestamp(1);

/// Stores a new user `nickname` (signed in with GitHub as `github_id`, when
/// given) with a fresh id and an empty full name; returns it.
pub async fn seed_user(
    store: &(impl UserStore + ?Sized),
    nickname: &str,
    github_id: Option<i64>,
) -> Result<User, StoreError> {
    let user = User {
        user_id: UserId::generate(&OsRandom).map_err(|e| StoreError::Other(e.to_string()))?,
        nickname: nickname.to_owned(),
        full_name: String::new(),
        github_id,
        created_at: SEEDED_AT,
    };
    store.create_user(&user).await?;
    Ok(user)
}

/// A key made by [`seed_key`], in the text forms a test sends.
#[derive(Debug, Clone)]
pub struct SeededKey {
    /// The key's id.
    pub key_id: String,
    /// The key's secret, in clear: test data only.
    pub secret: String,
}

impl SeededKey {
    /// The `Authorization` header value for this key.
    pub fn header(&self) -> String {
        format!("Key {}:{}", self.key_id, self.secret)
    }
}

/// Mints a key of `scope` for `user_id`, hashed under `pepper` as the server
/// with that pepper would hash it, and stores it with `alias`.
pub async fn seed_key(
    store: &(impl KeyAdmin + ?Sized),
    pepper: &Pepper,
    user_id: &UserId,
    scope: Scope,
    alias: &str,
) -> Result<SeededKey, StoreError> {
    let hasher = SecretHasher::new(pepper);
    let (record, secret) = mint_key(&OsRandom, &hasher, user_id, scope)
        .map_err(|e| StoreError::Other(e.to_string()))?;
    let seeded = SeededKey {
        key_id: record.key_id.to_string(),
        secret: secret.expose().to_owned(),
    };
    store
        .create_key(&NewKey {
            record,
            alias: alias.to_owned(),
            created_at: SEEDED_AT,
            lifetime: None,
        })
        .await?;
    Ok(seeded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyLookup, SqlStore};
    use fal_core::{KeyId, KeySecret};

    #[tokio::test]
    async fn seeded_keys_verify_under_their_pepper_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqlStore::open_sqlite(&dir.path().join("fal.db"), Timestamp(0))
            .await
            .unwrap();
        let pepper = Pepper::generate(&OsRandom).unwrap();
        let user = seed_user(&store, "octocat", Some(583231)).await.unwrap();
        assert_eq!(store.user(&user.user_id).await.unwrap(), Some(user.clone()));
        let key = seed_key(&store, &pepper, &user.user_id, Scope::Admin, "ci")
            .await
            .unwrap();
        assert_eq!(key.header(), format!("Key {}:{}", key.key_id, key.secret));
        let id: KeyId = key.key_id.parse().unwrap();
        let record = store.key_record(&id).await.unwrap().unwrap();
        assert_eq!(
            (&record.user_id, record.scope),
            (&user.user_id, Scope::Admin)
        );
        let secret = KeySecret::parse(&key.secret).unwrap();
        assert!(SecretHasher::new(&pepper).verify(&secret, &record.secret_hash));
        let other = SecretHasher::new(&Pepper::generate(&OsRandom).unwrap());
        assert!(!other.verify(&secret, &record.secret_hash));
        let page = store.list_keys(&user.user_id, 10, None).await.unwrap();
        assert_eq!(page.keys.len(), 1);
        assert_eq!(page.keys[0].alias, "ci");
        store.close().await;
    }

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
