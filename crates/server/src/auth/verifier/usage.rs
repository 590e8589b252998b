//! [`UsageCounter`]: each key's calls per hour, by outcome, counted in
//! memory on the request path and handed to storage in batches by the
//! verifier's write-back (see [`super::Verifier::flush_usage`]).
//!
//! A map per shard, the shard picked by the key's id: counting a call
//! takes one shard's lock for a hash-map update and never across an
//! `.await`; it allocates only for a key's first call in an hour since
//! the last write-back (drained maps keep their room).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use fal_core::usage::{Hour, Outcome};
use fal_core::{KeyId, Timestamp, UsageCounts};
use fal_store::HourlyUsage;

/// How many shards: enough that threads counting different keys seldom
/// meet on one lock.
const SHARDS: usize = 64;

type Shard = HashMap<(KeyId, Hour), UsageCounts, foldhash::fast::RandomState>;

/// Counts not yet written back, per key and hour.
pub(crate) struct UsageCounter {
    shards: Box<[Mutex<Shard>]>,
    /// Picks a key's shard.
    hasher: foldhash::fast::RandomState,
    /// Entries in one shard at which an early write-back is asked for.
    soon_per_shard: usize,
}

impl UsageCounter {
    /// A counter that asks for an early write-back once some shard holds
    /// its share of `soft_limit` entries.
    pub(crate) fn new(soft_limit: usize) -> UsageCounter {
        UsageCounter {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            soon_per_shard: soft_limit.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key_id: &KeyId) -> std::sync::MutexGuard<'_, Shard> {
        let i = usize::try_from(self.hasher.hash_one(key_id)).unwrap_or(0) % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one call of `key_id` at `now`. Returns true when this call
    /// filled its shard to the early write-back mark.
    pub(crate) fn count(&self, key_id: KeyId, now: Timestamp, outcome: Outcome) -> bool {
        let mut shard = self.shard(&key_id);
        let before = shard.len();
        shard
            .entry((key_id, Hour::of(now)))
            .or_default()
            .count(outcome);
        before < self.soon_per_shard && shard.len() >= self.soon_per_shard
    }

    /// Looks `key_id`'s count at `now` up without changing it: the work of
    /// counting, for refusals that have no key to count against.
    pub(crate) fn probe(&self, key_id: KeyId, now: Timestamp) -> bool {
        self.shard(&key_id).contains_key(&(key_id, Hour::of(now)))
    }

    /// Takes every count, leaving the counter empty.
    pub(crate) fn drain(&self) -> Vec<HourlyUsage> {
        let mut rows = Vec::new();
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            rows.extend(map.drain().map(|((key_id, hour), counts)| HourlyUsage {
                key_id,
                hour,
                counts,
            }));
        }
        rows
    }

    /// Puts back counts that could not be written, added to any counted
    /// since.
    pub(crate) fn restore(&self, rows: Vec<HourlyUsage>) {
        for r in rows {
            self.shard(&r.key_id)
                .entry((r.key_id, r.hour))
                .or_default()
                .add(&r.counts);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use fal_core::Refusal;
    use fal_core::usage::HOUR_MS;

    use super::*;

    fn id(n: u8) -> KeyId {
        format!("00000000-0000-4000-8000-0000000000{n:02}")
            .parse()
            .unwrap()
    }

    fn sorted(mut rows: Vec<HourlyUsage>) -> Vec<HourlyUsage> {
        rows.sort_by_key(|r| (r.key_id, r.hour));
        rows
    }

    #[test]
    fn calls_are_counted_per_key_hour_and_outcome_then_drained() {
        let c = UsageCounter::new(10_000);
        let t = Timestamp(10 * HOUR_MS + 5);
        c.count(id(1), t, Outcome::Accepted);
        c.count(id(1), t.plus_millis(1000), Outcome::Accepted);
        c.count(id(1), t, Outcome::Refused(Refusal::WrongSecret));
        c.count(id(1), t.plus_millis(HOUR_MS), Outcome::Accepted);
        c.count(id(2), t, Outcome::Refused(Refusal::RateLimited));
        let rows = sorted(c.drain());
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].hour, Hour::of(t));
        assert_eq!(rows[0].counts.accepted, 2);
        assert_eq!(rows[0].counts.wrong_secret, 1);
        assert_eq!(rows[1].hour, Hour::of(t.plus_millis(HOUR_MS)));
        assert_eq!(rows[2].counts.rate_limited, 1);
        assert!(c.drain().is_empty(), "drained");
    }

    #[test]
    fn restored_counts_add_to_new_ones() {
        let c = UsageCounter::new(10_000);
        let t = Timestamp(HOUR_MS);
        c.count(id(1), t, Outcome::Accepted);
        let failed = c.drain();
        c.count(id(1), t, Outcome::Accepted);
        c.restore(failed);
        let rows = c.drain();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].counts.accepted, 2);
    }

    #[test]
    fn an_early_write_back_is_asked_for_once_a_shard_fills() {
        let c = UsageCounter::new(SHARDS);
        let t = Timestamp(0);
        // One entry per shard is the mark: some key among a few hundred
        // fills its shard, and only the call that adds the entry says so.
        let mut asked = 0;
        for n in 0..SHARDS as u64 * 4 {
            let key: KeyId = format!("00000000-0000-4000-8000-{n:012}").parse().unwrap();
            asked += usize::from(c.count(key, t, Outcome::Accepted));
            assert!(!c.count(key, t, Outcome::Accepted), "not for a known entry");
        }
        assert!((1..=SHARDS).contains(&asked), "{asked}");
    }
}
