//! Metrics that cost the recording thread one uncontended atomic add:
//! each value is split into [`SHARDS`] cache-line-sized parts, a thread
//! adds to its own part, and a scrape sums them. The worker threads serve
//! requests side by side on different cores; with one shared atomic per
//! value, every request would move its cache line from core to core.
//!
//! They are encoded by `prometheus-client`'s own encoder, as its
//! [`prometheus_client::metrics::counter::Counter`],
//! [`prometheus_client::metrics::gauge::Gauge`] and
//! [`prometheus_client::metrics::histogram::Histogram`] are (whose
//! histogram takes a lock for each observation).

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// How many parts each value has (threads beyond this share parts).
pub const SHARDS: usize = 16;

/// The next thread's part.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's part, given at its first recording.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The part the calling thread records into.
fn shard() -> usize {
    SHARD.with(|s| {
        let mine = s.get();
        if mine != usize::MAX {
            return mine;
        }
        let mine = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
        s.set(mine);
        mine
    })
}

/// A value on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line<T>(T);

/// A counter. Cheap to clone (clones share the count).
#[derive(Debug, Clone, Default)]
pub struct ShardedCounter {
    parts: Arc<[Line<AtomicU64>; SHARDS]>,
}

impl ShardedCounter {
    /// Adds one.
    pub fn inc(&self) {
        self.parts[shard()].0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.parts.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// A gauge that goes up and down. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ShardedGauge {
    parts: Arc<[Line<AtomicI64>; SHARDS]>,
}

impl ShardedGauge {
    /// Adds `n` (negative: subtracts).
    pub fn add(&self, n: i64) {
        self.parts[shard()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The value: the parts' sum (one part may be negative, when a thread
    /// takes away what another added).
    pub fn get(&self) -> i64 {
        self.parts.iter().map(|p| p.0.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for ShardedGauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for ShardedGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Upper bounds of a histogram's buckets, in seconds (`+Inf` is implied).
pub type Bounds = &'static [f64];

/// The gateway's buckets: 100 µs to 60 s.
pub const GATEWAY_BOUNDS: Bounds = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Verification's buckets: 1 µs (a cached key) to 1 s (a slow database).
pub const VERIFY_BOUNDS: Bounds = &[
    0.000001, 0.0000025, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The most buckets a histogram has, `+Inf` included.
const MAX_BUCKETS: usize = 24;

/// One thread's part of a histogram: a count per bucket and the sum, in
/// nanoseconds (the count is the buckets' sum, so an observation is two
/// adds).
#[derive(Debug)]
#[repr(align(128))]
struct HistogramPart {
    buckets: [AtomicU64; MAX_BUCKETS],
    sum_nanos: AtomicU64,
}

impl Default for HistogramPart {
    fn default() -> Self {
        HistogramPart {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// A histogram of durations, with fixed buckets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// The bounds in nanoseconds, for the observation's search.
    bounds_nanos: Arc<[u64]>,
    /// The same in seconds, as encoded.
    bounds: Bounds,
    parts: Arc<[HistogramPart; SHARDS]>,
}

impl Histogram {
    /// A histogram with these bucket bounds (ascending, at most 23).
    pub fn new(bounds: Bounds) -> Histogram {
        let bounds = &bounds[..bounds.len().min(MAX_BUCKETS - 1)];
        Histogram {
            bounds_nanos: bounds.iter().map(|b| (b * 1e9).round() as u64).collect(),
            bounds,
            parts: Arc::new(std::array::from_fn(|_| HistogramPart::default())),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.bounds_nanos.partition_point(|&b| b < nanos);
        let part = &self.parts[shard()];
        part.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        part.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Per bucket (not cumulative, `+Inf` last), and the sum in seconds.
    fn totals(&self) -> (Vec<(f64, u64)>, f64) {
        let n = self.bounds.len() + 1;
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(|b| (b, 0))
            .collect();
        let mut sum = 0u64;
        for part in self.parts.iter() {
            for (i, b) in part.buckets[..n].iter().enumerate() {
                buckets[i].1 += b.load(Ordering::Relaxed);
            }
            sum = sum.wrapping_add(part.sum_nanos.load(Ordering::Relaxed));
        }
        (buckets, sum as f64 / 1e9)
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.totals().0.iter().map(|b| b.1).sum()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (buckets, sum) = self.totals();
        let count = buckets.iter().map(|b| b.1).sum();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let c = ShardedCounter::default();
        let g = ShardedGauge::default();
        std::thread::scope(|s| {
            for _ in 0..20 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        c.inc();
                        g.add(2);
                        g.add(-1);
                    }
                });
            }
        });
        assert_eq!(c.get(), 20_000);
        assert_eq!(g.get(), 20_000);
    }

    #[test]
    fn a_duration_lands_in_the_first_bucket_that_holds_it() {
        // 15.7 µs times 1e9 is 15699.999…: the bound is rounded, not cut.
        let fine = Histogram::new(&[0.0000157]);
        fine.observe(Duration::from_nanos(15_700));
        assert_eq!(fine.totals().0[0], (0.0000157, 1));
        let h = Histogram::new(&[0.001, 0.01]);
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(1));
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_secs(3));
        let (buckets, sum) = h.totals();
        assert_eq!(
            buckets,
            vec![(0.001, 2), (0.01, 1), (f64::INFINITY, 1)],
            "le=0.001 holds 0.5 ms and 1 ms exactly"
        );
        assert!((sum - 3.0065).abs() < 1e-9, "{sum}");
        assert_eq!(h.count(), 4);
    }
}
