//! Finds apps: built-in ones first, then storage through a small cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fal_core::{Clock, Timestamp};
use fal_store::{AppLookup, AppRecord, StoreError};

/// A cached app lookup: the app (or its absence) and when it was read.
#[derive(Clone)]
struct CachedApp {
    /// `None` caches "no such app" too, so unknown names cost no query.
    app: Option<Arc<AppRecord>>,
    /// When it was read.
    fetched_at: Timestamp,
}

/// Finds apps: built-in ones first, then storage through a small cache.
pub struct AppDirectory {
    /// Storage.
    lookup: Arc<dyn AppLookup>,
    /// `owner/name` → lookup result, trusted for `max_staleness_ms`.
    cache: quick_cache::sync::Cache<String, CachedApp>,
    /// Apps served by this process itself (`--demo`), never stored.
    builtin: HashMap<String, Arc<AppRecord>>,
    /// Now.
    clock: Arc<dyn Clock>,
    /// How long a cached lookup is trusted.
    max_staleness_ms: i64,
}

impl AppDirectory {
    /// A directory over `lookup`.
    pub fn new(
        lookup: Arc<dyn AppLookup>,
        clock: Arc<dyn Clock>,
        max_staleness: Duration,
        builtin: Vec<AppRecord>,
    ) -> AppDirectory {
        AppDirectory {
            lookup,
            cache: quick_cache::sync::Cache::new(10_000),
            builtin: builtin
                .into_iter()
                .map(|a| (format!("{}/{}", a.owner, a.name), Arc::new(a)))
                .collect(),
            clock,
            max_staleness_ms: i64::try_from(max_staleness.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Built-in apps.
    pub fn builtin(&self) -> impl Iterator<Item = &AppRecord> {
        self.builtin.values().map(|a| a.as_ref())
    }

    /// The app `owner/name`.
    pub async fn find(
        &self,
        owner: &str,
        name: &str,
    ) -> Result<Option<Arc<AppRecord>>, StoreError> {
        self.find_keyed(&format!("{owner}/{name}"), owner, name)
            .await
    }

    /// The app `owner/name`, whose cache key `owner/name` the caller
    /// already has (a slice of the request path: no allocation on a hit).
    pub async fn find_keyed(
        &self,
        key: &str,
        owner: &str,
        name: &str,
    ) -> Result<Option<Arc<AppRecord>>, StoreError> {
        if let Some(app) = self.builtin.get(key) {
            return Ok(Some(app.clone()));
        }
        let now = self.clock.now();
        if let Some(hit) = self.cache.get(key)
            && now.millis().saturating_sub(hit.fetched_at.millis()) <= self.max_staleness_ms
        {
            return Ok(hit.app);
        }
        let app = self.lookup.app(owner, name).await?.map(Arc::new);
        self.cache.insert(
            key.to_owned(),
            CachedApp {
                app: app.clone(),
                fetched_at: now,
            },
        );
        Ok(app)
    }

    /// Forgets a cached lookup (after a change on this server).
    pub fn invalidate(&self, owner: &str, name: &str) {
        self.cache.remove(&format!("{owner}/{name}"));
    }

    /// Forgets every cached lookup.
    pub fn invalidate_all(&self) {
        self.cache.clear();
    }

    /// Whether `owner/name` is built in (and so cannot be changed).
    pub fn is_builtin(&self, owner: &str, name: &str) -> bool {
        self.builtin.contains_key(&format!("{owner}/{name}"))
    }
}
