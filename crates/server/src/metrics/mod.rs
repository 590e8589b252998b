//! [`Metrics`]: what `GET /metrics` shows, in Prometheus' text format
//! (encoded by `prometheus-client`). One value per server, held by the
//! state and handed to the features that record (the verifier, the
//! upstream pools, the change follower); they import this leaf, never the
//! state.
//!
//! Recording is a thread-local atomic add ([`sharded`]), and a request's
//! labels are resolved once per worker and app ([`requests`]), so the
//! gateway pays no lock and no allocation for them. What can be read
//! instead of counted (cache size, database pools, queue depth) is read
//! at scrape time ([`scrape`]).
//!
//! # Layout
//! - this file: the registry, the recording calls, the scrape.
//! - [`sharded`]: counters, gauges and histograms split per thread.
//! - [`requests`]: `fal_requests_total`, and the router request's note.
//! - [`scrape`]: what is read when scraped.

pub mod requests;
mod scrape;
pub mod sharded;

use std::sync::Mutex;
use std::time::Duration;

use fal_core::Timestamp;
use fal_store::{QueueStats, SqlStore};
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};

pub use requests::{CallerScope, RequestCounter, Route, note_app, note_scope, note_upstream};
pub use scrape::Snapshot;
use sharded::{GATEWAY_BOUNDS, Histogram, ShardedCounter, ShardedGauge, VERIFY_BOUNDS};

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Why verification refused a caller: `reason` of
/// `fal_verifications_refused_total` (the API's error codes).
pub const REFUSALS: [&str; 13] = [
    "missing_credentials",
    "unsupported_scheme",
    "malformed_authorization",
    "invalid_credentials",
    "key_revoked",
    "key_expired",
    "key_rolled",
    "unavailable",
    "invalid_session",
    "token_expired",
    "token_not_accepted",
    "rate_limited",
    "too_many_failed_attempts",
];

/// Kinds of change notification (PostgreSQL's `fal_changes` channel).
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// A key changed.
    Key = 0,
    /// An app changed.
    App = 1,
    /// A request was queued.
    Queued = 2,
}

/// A label set of one label.
type OneLabel = [(&'static str, &'static str); 1];

/// The upstream pool's counts (the hand-written path's kept connections).
#[derive(Debug, Clone, Default)]
pub struct PoolMetrics {
    /// Connections kept idle, all workers together.
    pub idle: ShardedGauge,
    /// Connections opened.
    pub opened: ShardedCounter,
    /// Requests sent over a kept connection.
    pub reused: ShardedCounter,
}

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    requests: requests::RequestFamily,
    gateway_total: Histogram,
    gateway_upstream: Histogram,
    /// Verification's time: `[cached, uncached]`.
    verify: [Histogram; 2],
    refused: [ShardedCounter; REFUSALS.len()],
    pool: PoolMetrics,
    changes: [ShardedCounter; 3],
    changes_interrupted: ShardedCounter,
    scraped: scrape::Scraped,
    /// One scrape at a time (the snapshot is the collector's input).
    render: Mutex<()>,
    /// Read at scrape time: pools, queue depth.
    store: Option<SqlStore>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero; nothing read from storage at scrape time.
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let requests = requests::RequestFamily::default();
        r.register(
            "fal_requests",
            "Requests answered, by route class (api, run, queue, dashboard), app (owner/name, once found), status class and the caller's scope (none: not authenticated)",
            requests.clone(),
        );
        let histogram = |r: &mut Registry, name: &str, help: &str| {
            let h = Histogram::new(GATEWAY_BOUNDS);
            r.register_with_unit(name, help, Unit::Seconds, h.clone());
            h
        };
        let gateway_total = histogram(
            &mut r,
            "fal_gateway_request_duration",
            "Model calls forwarded (/run), from the request head read to the upstream's response head (or its failure)",
        );
        let gateway_upstream = histogram(
            &mut r,
            "fal_gateway_upstream_duration",
            "Model calls forwarded (/run), from taking an upstream connection to its response head (or its failure)",
        );
        let verify_family: Family<OneLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(VERIFY_BOUNDS));
        r.register_with_unit(
            "fal_verify_duration",
            "Key verifications, by whether the key's record was cached (hit) or read from storage or refused unread (miss)",
            Unit::Seconds,
            verify_family.clone(),
        );
        let verify = [
            verify_family.get_or_create_owned(&[("cache", "hit")]),
            verify_family.get_or_create_owned(&[("cache", "miss")]),
        ];
        let refused_family = Family::<OneLabel, ShardedCounter>::default();
        r.register(
            "fal_verifications_refused",
            "Callers refused by authentication, by reason (the answer's error code)",
            refused_family.clone(),
        );
        let refused =
            REFUSALS.map(|reason| refused_family.get_or_create_owned(&[("reason", reason)]));
        let pool = PoolMetrics::default();
        r.register(
            "fal_upstream_pool_idle_connections",
            "Kept connections to plain-HTTP upstreams, idle (the hand-written forwarding path)",
            pool.idle.clone(),
        );
        r.register(
            "fal_upstream_pool_opened_connections",
            "Connections opened to plain-HTTP upstreams (the hand-written forwarding path)",
            pool.opened.clone(),
        );
        r.register(
            "fal_upstream_pool_reused_connections",
            "Model calls sent over a kept connection (the hand-written forwarding path)",
            pool.reused.clone(),
        );
        let changes_family = Family::<OneLabel, ShardedCounter>::default();
        r.register(
            "fal_change_notifications",
            "Change notifications received (PostgreSQL), by kind",
            changes_family.clone(),
        );
        let changes =
            ["key", "app", "queued"].map(|k| changes_family.get_or_create_owned(&[("kind", k)]));
        let changes_interrupted = ShardedCounter::default();
        r.register(
            "fal_change_notifications_interruptions",
            "Times the change-notification subscription broke (the caches are dropped when it resumes)",
            changes_interrupted.clone(),
        );
        let scraped = scrape::Scraped::default();
        r.register_collector(Box::new(scraped.clone()));
        Metrics {
            registry: r,
            requests,
            gateway_total,
            gateway_upstream,
            verify,
            refused,
            pool,
            changes,
            changes_interrupted,
            scraped,
            render: Mutex::new(()),
            store: None,
        }
    }

    /// Also reads `store` at scrape time: its pools, the queue's depth.
    pub fn with_store(mut self, store: SqlStore) -> Metrics {
        self.store = Some(store);
        self
    }

    /// A request counter for one worker thread.
    pub fn request_counter(&self) -> RequestCounter {
        RequestCounter::new(self.requests.clone())
    }

    /// A model call was forwarded: `total` since its head was read,
    /// `upstream` of it with the upstream.
    pub fn forwarded(&self, total: Duration, upstream: Duration) {
        self.gateway_total.observe(total);
        self.gateway_upstream.observe(upstream);
    }

    /// A key was verified (accepted or refused) in `took`, from the cache
    /// or not.
    pub fn verified(&self, cached: bool, took: Duration) {
        self.verify[usize::from(!cached)].observe(took);
    }

    /// A caller was refused for `reason` (one of [`REFUSALS`]).
    pub fn refused(&self, reason: &str) {
        if let Some(i) = REFUSALS.iter().position(|r| *r == reason) {
            self.refused[i].inc();
        }
    }

    /// The upstream pools' counts.
    pub fn pool(&self) -> &PoolMetrics {
        &self.pool
    }

    /// A change notification arrived.
    pub fn change_received(&self, kind: Change) {
        self.changes[kind as usize].inc();
    }

    /// The change-notification subscription broke.
    pub fn changes_interrupted(&self) {
        self.changes_interrupted.inc();
    }

    /// Reads what is read at scrape time, at `now`, with the key cache's
    /// `records` and `capacity`, and encodes everything.
    pub async fn scrape(&self, records: u64, capacity: u64, now: Timestamp) -> String {
        let mut snapshot = Snapshot {
            key_cache_records: records,
            key_cache_capacity: capacity,
            db_errors: fal_store::stats::error_counts().to_vec(),
            now_ms: now.millis(),
            ..Snapshot::default()
        };
        if let Some(store) = &self.store {
            snapshot.pools = store.pool_stats();
            let depths = tokio::time::timeout(Duration::from_secs(2), store.queue_depths());
            snapshot.queue = match depths.await {
                Ok(Ok(q)) => Some(q),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "metrics: cannot read the queue's depth");
                    None
                }
                Err(_) => {
                    tracing::warn!("metrics: reading the queue's depth timed out");
                    None
                }
            };
        }
        self.render(snapshot)
    }

    /// Encodes every metric, with `snapshot` for what is read at scrape
    /// time.
    pub fn render(&self, snapshot: Snapshot) -> String {
        let _turn = self.render.lock().unwrap_or_else(|p| p.into_inner());
        *self.scraped.0.lock().unwrap_or_else(|p| p.into_inner()) = Snapshot {
            key_cache_hits: self.verify[0].count(),
            key_cache_misses: self.verify[1].count(),
            ..snapshot
        };
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "metrics: cannot encode");
        }
        out
    }
}
