//! Liveness and readiness, for load balancers and orchestrators:
//! `GET /healthz` answers while the process serves at all; `GET /readyz`
//! answers 200 only when the database answers a cheap query, its schema is
//! the one this binary knows and, on PostgreSQL, the change-notification
//! follower is subscribed (without it cached keys could outlive a
//! revocation on another server by the staleness bound). Neither needs
//! credentials; a failing check is named, never explained with internal
//! error text (that goes to the log). The handlers are in `api::health`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fal_store::{Backend, SqlStore};

/// How long the database check may take before it counts as failing.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness depends on.
pub struct Health {
    /// The database.
    store: SqlStore,
    /// Whether change notifications are followed (PostgreSQL).
    follows_changes: bool,
    /// Set while the follower is subscribed.
    subscribed: AtomicBool,
}

impl Health {
    /// Readiness over `store`.
    pub fn new(store: SqlStore) -> Health {
        Health {
            follows_changes: store.backend() == Backend::Postgres,
            store,
            subscribed: AtomicBool::new(false),
        }
    }

    /// The change-notification follower is subscribed (`true`) or was
    /// interrupted (`false`).
    pub fn set_subscribed(&self, on: bool) {
        self.subscribed.store(on, Ordering::Relaxed);
    }

    /// The checks that fail now, by name: `database`, `migrations`,
    /// `change_notifications`. Empty: ready.
    pub async fn failing(&self) -> Vec<&'static str> {
        let mut failing = Vec::new();
        match tokio::time::timeout(CHECK_TIMEOUT, self.store.schema_is_current()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => failing.push("migrations"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the database check failed");
                failing.push("database");
            }
            Err(_) => {
                tracing::warn!("readiness: the database check timed out");
                failing.push("database");
            }
        }
        if self.follows_changes && !self.subscribed.load(Ordering::Relaxed) {
            failing.push("change_notifications");
        }
        failing
    }

    /// Logs readiness once, at start: waits up to `patience` for it, then
    /// writes one info line either way.
    pub async fn log_at_start(&self, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let failing = self.failing().await;
            if failing.is_empty() {
                tracing::info!(status = "ready", "readiness: ready");
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::info!(status = "not_ready", failing = %failing.join(","), "readiness: not ready");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
