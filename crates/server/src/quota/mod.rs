//! Per-key rate limits on the request path: [`RateLimiter::take`] decides a
//! call from this server's [`Budget`] for the key, with no I/O and no
//! waiting (it is not `async`: a call can never wait for the store).
//!
//! Alone (SQLite), a server holds each key's whole limit. In a cluster
//! (PostgreSQL), budgets lease calls from the shared per-window count
//! ([`fal_store::RateCounts`]) ahead of need: the leases a budget asks for
//! go on a queue that [`leases::run`] works through in the background, and
//! the store's answers come back into the budget. See
//! [`fal_core::budget`] for the rules and their bounds.

mod headers;
pub mod leases;

pub use headers::{QuotaSlot, headers, remove_headers, set_headers};

use std::sync::{Arc, Mutex};

use fal_core::budget::{Ask, Budget, Leasing};
use fal_core::{KeyId, Quota, RateLimit, Timestamp};
use tokio::sync::mpsc;

/// A call refused by its key's rate limit: what the 429 says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRefusal {
    /// The key's limit.
    pub limit: RateLimit,
    /// The `RateLimit-*` headers' values.
    pub quota: Quota,
    /// `Retry-After`, in seconds.
    pub retry_after_secs: u32,
}

/// One key's budget, shared with the lease task.
type SharedBudget = Arc<Mutex<Budget>>;

/// A lease for the background task to take from the shared store.
pub struct Lease {
    /// Whose.
    pub key_id: KeyId,
    /// The budget to answer.
    pub budget: SharedBudget,
    /// What to add to the count.
    pub ask: Ask,
}

impl Lease {
    /// Passes the store's answer (the window's new total, or `None` when it
    /// could not be reached) to the budget.
    pub fn answer(&self, total: Option<u64>) {
        lock(&self.budget).answer(self.ask, total);
    }
}

fn lock(b: &Mutex<Budget>) -> std::sync::MutexGuard<'_, Budget> {
    b.lock().unwrap_or_else(|p| p.into_inner())
}

/// The receiving end of the lease queue, for [`leases::run`].
pub type LeaseQueue = mpsc::UnboundedReceiver<Lease>;

/// Every rate-limited key's budget on this server.
pub struct RateLimiter {
    /// Local or leased.
    leasing: Leasing,
    /// key id → budget; bounded like the key cache. A budget evicted
    /// while its window is under way is started again: alone, the key may
    /// then get up to its limit once more in that window; leased, calls
    /// already counted by the store stay counted.
    budgets: quick_cache::sync::Cache<KeyId, SharedBudget>,
    /// Where leases go (clustered only).
    queue: Option<mpsc::UnboundedSender<Lease>>,
}

impl RateLimiter {
    /// For a server that is alone: each key's whole limit is held here.
    pub fn local(capacity: u64) -> RateLimiter {
        RateLimiter {
            leasing: Leasing::Local,
            budgets: cache(capacity),
            queue: None,
        }
    }

    /// For a server of a cluster: calls are leased from the shared count,
    /// through the returned queue, which [`leases::run`] must work through.
    pub fn shared(capacity: u64) -> (RateLimiter, LeaseQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        let limiter = RateLimiter {
            leasing: Leasing::Shared,
            budgets: cache(capacity),
            queue: Some(tx),
        };
        (limiter, rx)
    }

    /// Whether budgets are leased from a shared store.
    pub fn leasing(&self) -> Leasing {
        self.leasing
    }

    /// Takes one call of `key_id` under `limit` at `now`: the quota to
    /// report, or the refusal. The hot path: a cache lookup, an
    /// uncontended lock and some arithmetic; now and then a lease put on
    /// the queue.
    pub fn take(
        &self,
        key_id: &KeyId,
        limit: RateLimit,
        now: Timestamp,
    ) -> Result<Quota, RateRefusal> {
        let budget = match self.budgets.get(key_id) {
            Some(b) => b,
            None => {
                let made = || {
                    let b = Budget::new(limit, self.leasing, now.millis());
                    Ok::<_, std::convert::Infallible>(Arc::new(Mutex::new(b)))
                };
                match self.budgets.get_or_insert_with(key_id, made) {
                    Ok(b) => b,
                    Err(never) => match never {},
                }
            }
        };
        let take = lock(&budget).take(now.millis(), limit);
        if let (Some(ask), Some(queue)) = (take.ask, &self.queue) {
            let lease = Lease {
                key_id: *key_id,
                budget,
                ask,
            };
            if let Err(mpsc::error::SendError(lease)) = queue.send(lease) {
                // The lease task is gone (shutting down): count alone.
                lease.answer(None);
            }
        }
        if take.admitted {
            Ok(take.quota)
        } else {
            Err(RateRefusal {
                limit,
                quota: take.quota,
                retry_after_secs: take.retry_after_secs,
            })
        }
    }

    /// Gives back a call of `key_id` taken at `now` that is about to be
    /// decided again (a request the hand-written path hands to hyper after
    /// authenticating it).
    pub fn give_back(&self, key_id: &KeyId, now: Timestamp) {
        if let Some(budget) = self.budgets.get(key_id) {
            lock(&budget).give_back(now.millis());
        }
    }

    /// How many keys have a budget here.
    pub fn budgets(&self) -> usize {
        self.budgets.len()
    }
}

fn cache(capacity: u64) -> quick_cache::sync::Cache<KeyId, SharedBudget> {
    quick_cache::sync::Cache::new(usize::try_from(capacity.max(1)).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> KeyId {
        KeyId::generate(&fal_core::OsRandom).unwrap()
    }

    #[test]
    fn alone_each_key_counts_apart() {
        let l = RateLimiter::local(100);
        let limit = RateLimit::parse("2/s").unwrap();
        let (a, b) = (id(), id());
        let now = Timestamp(5_000);
        assert_eq!(l.take(&a, limit, now).unwrap().remaining, 1);
        assert_eq!(l.take(&a, limit, now).unwrap().remaining, 0);
        let refused = l.take(&a, limit, now).unwrap_err();
        assert_eq!((refused.quota.remaining, refused.retry_after_secs), (0, 1));
        assert!(l.take(&b, limit, now).is_ok());
        assert!(l.take(&a, limit, Timestamp(6_000)).is_ok());
    }

    #[test]
    fn in_a_cluster_a_take_queues_a_lease_and_never_waits() {
        let (l, mut queue) = RateLimiter::shared(100);
        let limit = RateLimit::parse("100/s").unwrap();
        let a = id();
        // Nobody answers the lease: the first calls still go, on trust.
        for _ in 0..10 {
            assert!(l.take(&a, limit, Timestamp(0)).is_ok());
        }
        assert!(l.take(&a, limit, Timestamp(1)).is_err());
        let lease = queue.try_recv().unwrap();
        assert_eq!((lease.key_id, lease.ask.debt, lease.ask.want), (a, 1, 10));
        assert!(queue.try_recv().is_err(), "one lease out at a time");
        lease.answer(Some(lease.ask.adds()));
        assert!(l.take(&a, limit, Timestamp(2)).is_ok());
    }
}
