//! What the server's metrics read from storage: the connection pools'
//! use ([`SqlStore::pool_stats`]), the database errors this process has
//! met ([`error_counts`]), and the queue's depth and age per app
//! ([`QueueStats`], one query for both backends).

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sqlx::Row;

use crate::{SqlStore, StoreError};

/// Kinds of database error, as [`error_counts`] names them.
pub const ERROR_KINDS: [&str; 4] = ["unavailable", "conflict", "corrupt", "other"];

/// Database errors met by this process, by kind (index in
/// [`ERROR_KINDS`]). Process-wide: every query's error passes through
/// `From<sqlx::Error>`, which has no store at hand.
static ERRORS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Counts an error from the database driver.
pub(crate) fn count_error(e: &StoreError) {
    let kind = match e {
        StoreError::Unavailable(_) => 0,
        StoreError::Conflict(_) => 1,
        StoreError::Corrupt(_) => 2,
        _ => 3,
    };
    ERRORS[kind].fetch_add(1, Ordering::Relaxed);
}

/// Database errors this process has met since it started, by kind.
pub fn error_counts() -> [(&'static str, u64); 4] {
    std::array::from_fn(|i| (ERROR_KINDS[i], ERRORS[i].load(Ordering::Relaxed)))
}

/// One connection pool's use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// `main`, or `queue` for the queue's own pool.
    pub pool: &'static str,
    /// Open connections.
    pub open: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The most it opens.
    pub max: u32,
}

impl SqlStore {
    /// The use of each connection pool: the main one and, when the queue
    /// writes through one of its own, the queue's.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let stats = |pool: &'static str, p: &sqlx::AnyPool| PoolStats {
            pool,
            open: p.size(),
            idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
            max: p.options().get_max_connections(),
        };
        let mut out = vec![stats("main", self.pool())];
        if self.has_own_queue_pool() {
            out.push(stats("queue", self.queue_pool()));
        }
        if let Some(conn) = self.sqlite_queue() {
            // SQLite: the queue's one connection, idle unless a writer
            // holds it now.
            out.push(PoolStats {
                pool: "queue",
                open: 1,
                idle: u32::from(conn.try_lock().is_ok()),
                max: 1,
            });
        }
        out
    }
}

/// One app's queued requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// The app's owner.
    pub owner: String,
    /// The app's name.
    pub name: String,
    /// Requests waiting for a worker.
    pub waiting: u64,
    /// Requests a worker runs.
    pub running: u64,
    /// When the oldest waiting request was accepted (ms), if any waits.
    pub oldest_waiting_ms: Option<i64>,
}

/// The queue as a whole, for metrics.
#[async_trait]
pub trait QueueStats: Send + Sync {
    /// Every app with waiting or running requests.
    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError>;
}

#[async_trait]
impl QueueStats for SqlStore {
    async fn queue_depths(&self) -> Result<Vec<QueueDepth>, StoreError> {
        // Through the (status, lease_until) index: reads the rows of
        // waiting and running requests only, never the completed ones kept
        // for the retention period.
        let rows = sqlx::query(
            "SELECT owner, name, status, COUNT(*) AS n, MIN(created_at) AS oldest
             FROM queue_requests WHERE status IN ('IN_QUEUE', 'IN_PROGRESS')
             GROUP BY owner, name, status ORDER BY owner, name",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<QueueDepth> = Vec::new();
        for row in rows {
            let owner: String = row.try_get("owner")?;
            let name: String = row.try_get("name")?;
            let status: String = row.try_get("status")?;
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            let oldest: i64 = row.try_get("oldest")?;
            let same = out
                .last()
                .is_some_and(|d| d.owner == owner && d.name == name);
            if !same {
                out.push(QueueDepth {
                    owner,
                    name,
                    waiting: 0,
                    running: 0,
                    oldest_waiting_ms: None,
                });
            }
            let Some(d) = out.last_mut() else { continue };
            if status == "IN_QUEUE" {
                d.waiting = n;
                d.oldest_waiting_ms = Some(oldest);
            } else {
                d.running = n;
            }
        }
        Ok(out)
    }
}
