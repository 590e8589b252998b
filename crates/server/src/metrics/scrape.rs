//! What is read when `/metrics` is scraped rather than counted as it
//! happens: the key cache's size, the database pools' use, the database
//! errors met, and the queue's depth and age per app (one query). Encoded
//! by a [`Collector`] from the [`Snapshot`] the scrape took.

use std::sync::{Arc, Mutex};

use fal_store::{PoolStats, QueueDepth};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// What one scrape read.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Key records in the verifier's cache.
    pub key_cache_records: u64,
    /// Its capacity.
    pub key_cache_capacity: u64,
    /// Verifications that found the key's record cached.
    pub key_cache_hits: u64,
    /// And those that did not.
    pub key_cache_misses: u64,
    /// Each database pool's use.
    pub pools: Vec<PoolStats>,
    /// Database errors by kind, since the process started.
    pub db_errors: Vec<(&'static str, u64)>,
    /// Apps with queued work; `None` when the query failed.
    pub queue: Option<Vec<QueueDepth>>,
    /// When it was read (ms; queue ages are counted to it).
    pub now_ms: i64,
}

/// Encodes the latest [`Snapshot`].
#[derive(Debug, Default, Clone)]
pub(super) struct Scraped(pub(super) Arc<Mutex<Snapshot>>);

/// A gauge `name` with labels `labels`, one sample per entry of `values`.
fn gauges<'a, const N: usize>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: impl IntoIterator<Item = ([(&'static str, &'a str); N], f64)>,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(0.0);
    let mut m = e.encode_descriptor(name, help, unit, gauge.metric_type())?;
    for (labels, v) in values {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Scraped {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let size = [([], s.key_cache_records as f64)];
        gauges::<0>(
            &mut e,
            "fal_key_cache_records",
            "Key records cached.",
            None,
            size,
        )?;
        let cap = [([], s.key_cache_capacity as f64)];
        let help = "The most key records the cache holds (--key-cache).";
        gauges::<0>(&mut e, "fal_key_cache_capacity", help, None, cap)?;
        let counter = ConstCounter::new(0u64);
        let help = "Key verifications by whether the key's record was cached (hit) or not (miss).";
        let mut m =
            e.encode_descriptor("fal_key_cache_lookups", help, None, counter.metric_type())?;
        for (result, n) in [("hit", s.key_cache_hits), ("miss", s.key_cache_misses)] {
            ConstCounter::new(n).encode(m.encode_family(&[("result", result)])?)?;
        }

        let pools = s.pools.iter().flat_map(|p| {
            let idle = f64::from(p.idle);
            let busy = f64::from(p.open.saturating_sub(p.idle));
            [
                ([("pool", p.pool), ("state", "idle")], idle),
                ([("pool", p.pool), ("state", "in_use")], busy),
            ]
        });
        let help = "Open database connections, by pool and whether idle or in use.";
        gauges(&mut e, "fal_db_pool_connections", help, None, pools)?;
        let max = s
            .pools
            .iter()
            .map(|p| ([("pool", p.pool)], f64::from(p.max)));
        let help = "The most database connections each pool opens.";
        gauges(&mut e, "fal_db_pool_max_connections", help, None, max)?;

        let counter = ConstCounter::new(0u64);
        let help = "Database errors met by this process, by kind (unavailable: not reached; conflict: a uniqueness rule).";
        let mut m = e.encode_descriptor("fal_db_errors", help, None, counter.metric_type())?;
        for (kind, n) in &s.db_errors {
            ConstCounter::new(*n).encode(m.encode_family(&[("kind", *kind)])?)?;
        }

        let Some(queue) = &s.queue else {
            return Ok(());
        };
        let app = |d: &QueueDepth| format!("{}/{}", d.owner, d.name);
        let apps: Vec<(String, &QueueDepth)> = queue.iter().map(|d| (app(d), d)).collect();
        let depth = apps.iter().flat_map(|(app, d)| {
            [
                (
                    [("app", app.as_str()), ("state", "waiting")],
                    d.waiting as f64,
                ),
                (
                    [("app", app.as_str()), ("state", "running")],
                    d.running as f64,
                ),
            ]
        });
        let help = "Queued requests per app: waiting for a worker, or running (all servers sharing the database).";
        gauges(&mut e, "fal_queue_depth", help, None, depth)?;
        let now = s.now_ms;
        let age = apps.iter().filter_map(|(app, d)| {
            let oldest = d.oldest_waiting_ms?;
            Some((
                [("app", app.as_str())],
                now.saturating_sub(oldest).max(0) as f64 / 1e3,
            ))
        });
        let help = "Age of each app's oldest waiting request.";
        gauges(
            &mut e,
            "fal_queue_oldest_waiting_age",
            help,
            Some(&Unit::Seconds),
            age,
        )
    }
}
