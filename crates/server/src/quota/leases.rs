//! The background half of clustered rate limits: leases taken from the
//! shared per-window count, off the request path, and the count's pruning.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fal_core::{Clock, Timestamp};
use fal_store::RateCounts;
use tokio::sync::Semaphore;

use super::{Lease, LeaseQueue};

/// Leases taken from the store at once; more wait their turn, so that a
/// burst of new windows does not take every database connection from key
/// lookups.
pub const CONCURRENT_LEASES: usize = 16;

/// How often counts of windows long over are deleted.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// How long the count of a window is kept after it ends.
pub const KEEP_ENDED_WINDOWS: Duration = Duration::from_secs(60);

/// Takes each queued lease from `counts` and passes the answer back to its
/// budget, until the queue closes. A lease the store cannot take is
/// answered with `None`: that server counts the rest of the window alone.
pub async fn run(mut queue: LeaseQueue, counts: Arc<dyn RateCounts>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_LEASES));
    let last_warned = Arc::new(std::sync::Mutex::new(None::<Instant>));
    while let Some(lease) = queue.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let counts = counts.clone();
        let last_warned = last_warned.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let Lease { key_id, ask, .. } = &lease;
            let added = counts
                .add_rate_usage(key_id, ask.period_ms, ask.window, ask.adds())
                .await;
            match added {
                Ok(total) => lease.answer(Some(total)),
                Err(e) => {
                    warn_now_and_then(&last_warned, &e);
                    lease.answer(None);
                }
            }
        });
    }
}

/// One warning per ten seconds at most: when the database is down, every
/// busy key's every window fails.
fn warn_now_and_then(last: &std::sync::Mutex<Option<Instant>>, e: &fal_store::StoreError) {
    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
        *last = Some(Instant::now());
        tracing::warn!(
            error = %e,
            "could not lease rate-limit calls from the database; \
             each server counts its keys' limits alone until it can"
        );
    }
}

/// Deletes the counts of windows over for [`KEEP_ENDED_WINDOWS`], every
/// `interval`.
pub async fn prune(counts: Arc<dyn RateCounts>, clock: Arc<dyn Clock>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let keep = i64::try_from(KEEP_ENDED_WINDOWS.as_millis()).unwrap_or(i64::MAX);
        let before = Timestamp(clock.now().millis().saturating_sub(keep));
        match counts.prune_rate_usage(before).await {
            Ok(n) if n > 0 => tracing::debug!(windows = n, "pruned rate-limit counts"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune rate-limit counts"),
        }
    }
}
