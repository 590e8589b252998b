//! [`QueueStore::claim_many`](crate::queue::QueueStore::claim_many) for
//! [`SqlStore`]: several requests of one app in one `UPDATE`, so that a
//! worker with free slots pays one write for all of them.
//!
//! The same statements run on both backends; what differs is the turn they
//! run in. On PostgreSQL several servers claim at once: the claim is one
//! transaction holding the app's advisory lock (so the count of its running
//! requests is not raced), and `FOR UPDATE SKIP LOCKED` gives each server
//! other rows. On SQLite one server writes the queue, in its write turn:
//! the statements run without a transaction around them (each is atomic
//! alone, and nothing else changes the app's claims between them), so the
//! claim's one commit is its `UPDATE`'s.

use crate::queue::{ClaimAsk, Claimed, Claims};
use crate::queue_sql::{REQUEST, request_of};
use crate::queue_waiting;
use crate::{Backend, SqlStore, StoreError};

/// Which requests a claim takes, as the `WHERE` of the rows to update.
enum Pick {
    /// Running under a lease that ran out (their claimer died), oldest
    /// lease first; not those a cancel was asked for.
    TakenOver,
    /// Waiting, in queue order (index `queue_requests_waiting`).
    Waiting,
}

impl Pick {
    fn rows(&self, lock: &str) -> String {
        match self {
            Pick::TakenOver => format!(
                "SELECT request_id FROM queue_requests
                 WHERE status = 'IN_PROGRESS' AND lease_until < $3
                   AND owner = $4 AND name = $5 AND cancel_requested = 0
                 ORDER BY lease_until LIMIT $6 {lock}"
            ),
            Pick::Waiting => format!(
                "SELECT request_id FROM queue_requests
                 WHERE owner = $4 AND name = $5 AND status = 'IN_QUEUE'
                 ORDER BY priority, created_at, request_id LIMIT $6 {lock}"
            ),
        }
    }
}

impl SqlStore {
    /// See [`ClaimAsk`] and [`Claims`].
    pub(crate) async fn claim_batch(&self, ask: ClaimAsk<'_>) -> Result<Claims, StoreError> {
        let (owner, name) = ask.app;
        let mut turn = self.queue_write_turn().await;
        if ask.take_over {
            // A cancelled request whose claimer died is completed as
            // cancelled (looked for first: on SQLite an UPDATE takes the
            // one write lock even when it changes nothing).
            let dead_cancelled = self
                .queue_conn(false, false)
                .await?
                .fetch_optional(
                    "SELECT 1 AS found FROM queue_requests
                     WHERE owner = $1 AND name = $2 AND status = 'IN_PROGRESS'
                       AND cancel_requested = 1 AND lease_until < $3 LIMIT 1",
                    vec![owner.into(), name.into(), ask.now.millis().into()],
                    |_| Ok(()),
                )
                .await?;
            if dead_cancelled.is_some() {
                self.complete_dead_cancelled(owner, name, ask.now).await?;
            }
        }
        let postgres = self.backend() == Backend::Postgres;
        // On PostgreSQL the claim's commit does not wait for its WAL to
        // reach the disk (an fsync, some milliseconds, between a submit and
        // the app's call): a claim lost in a database crash leaves the
        // request waiting or with an old lease, so it runs again, as after
        // any claimer's death. Visibility and atomicity are unchanged.
        let mut on = self.queue_conn(postgres, true).await?;
        if postgres {
            // Claims of one app take turns across servers, so that the
            // count of its running requests below is not raced.
            on.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))",
                vec![format!("fal queue {owner}/{name}").into()],
            )
            .await?;
        }
        let running = on
            .fetch_optional(
                "SELECT COUNT(*) AS n FROM queue_requests
                 WHERE owner = $1 AND name = $2 AND status = 'IN_PROGRESS' AND lease_until >= $3",
                vec![owner.into(), name.into(), ask.now.millis().into()],
                |r| r.int_of("n"),
            )
            .await?
            .unwrap_or(0);
        let allowed = ask.running.saturating_sub(running).min(i64::from(ask.want));
        let mut requests = Vec::new();
        if allowed > 0 {
            let picks = match ask.take_over {
                true => &[Pick::TakenOver, Pick::Waiting][..],
                false => &[Pick::Waiting][..],
            };
            let lock = if postgres {
                "FOR UPDATE SKIP LOCKED"
            } else {
                ""
            };
            for pick in picks {
                let left = allowed - i64::try_from(requests.len()).unwrap_or(i64::MAX);
                if left <= 0 {
                    break;
                }
                let query = format!(
                    "UPDATE queue_requests SET status = 'IN_PROGRESS', claimed_by = $1,
                         lease_until = $2, started_at = $3, attempts = attempts + 1
                     WHERE request_id IN ({}) RETURNING {REQUEST}",
                    pick.rows(lock)
                );
                let mut got = on
                    .fetch(
                        &query,
                        vec![
                            ask.worker.into(),
                            ask.lease_until.millis().into(),
                            ask.now.millis().into(),
                            owner.into(),
                            name.into(),
                            left.into(),
                        ],
                        |r| {
                            Ok(Claimed {
                                request: request_of(r)?,
                                attempts: r.int_of("attempts")? - 1,
                            })
                        },
                    )
                    .await?;
                // RETURNING gives no order: queue order again.
                got.sort_by(|a, b| {
                    let key = |c: &Claimed| (c.request.priority, c.request.created_at.millis());
                    key(a)
                        .cmp(&key(b))
                        .then_with(|| a.request.request_id.cmp(&b.request.request_id))
                });
                requests.extend(got);
            }
        }
        on.commit().await?;
        if let Some(Some(counts)) = turn.as_deref_mut() {
            for c in requests.iter().filter(|c| c.attempts == 0) {
                // Never claimed before: it was waiting.
                queue_waiting::left(counts, owner, name, c.request.priority);
            }
        }
        let exhausted = allowed > 0 && i64::try_from(requests.len()).unwrap_or(i64::MAX) < allowed;
        Ok(Claims {
            requests,
            exhausted,
        })
    }
}
