//! [`QueueStore`] for [`SqlStore`]. Portable SQL, but for one clause: on
//! PostgreSQL a claim locks the row it takes with `FOR UPDATE SKIP LOCKED`,
//! so servers claiming at once each get a different request; SQLite has one
//! writer at a time, and one server.

use async_trait::async_trait;
use fal_core::{Timestamp, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::queue::{
    CANCELLED, CancelOutcome, ClaimAsk, Claims, NewQueued, QueueResult, QueueStatus, QueueStore,
    QueueView, WebhookDue,
};
use crate::queue_conn::{Cells, QueueConn, Value};
use crate::queue_waiting;
use crate::sql::corrupt;
use crate::{SqlStore, StoreError};

fn ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(Timestamp))
}

/// A request as [`REQUEST`] reads it, from either driver.
pub(crate) fn request_of(row: &dyn Cells) -> Result<NewQueued, StoreError> {
    Ok(NewQueued {
        request_id: row.text_of("request_id")?,
        user_id: UserId::from_stored(row.text_of("user_id")?),
        key_id: row
            .text("key_id")?
            .map(|k| k.parse().map_err(|_| corrupt("queue key_id")))
            .transpose()?,
        owner: row.text_of("owner")?,
        name: row.text_of("name")?,
        path: row.text_of("path")?,
        method: row.text_of("method")?,
        content_type: row.text("content_type")?,
        body: row.blob("body")?.ok_or_else(|| corrupt("queue body"))?,
        priority: row.int_of("priority")?,
        webhook: row.text("webhook")?,
        timeout_ms: row.int("timeout_ms")?,
        created_at: Timestamp(row.int_of("created_at")?),
    })
}

/// The most requests one `INSERT` carries (13 parameters each, well under
/// SQLite's and PostgreSQL's limits on parameters per statement).
const INSERT_CHUNK: usize = 500;

/// Inserts waiting requests with one multi-row `INSERT` (one statement, so
/// all or none, without a transaction around it).
async fn insert_all(conn: &mut QueueConn, requests: &[NewQueued]) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO queue_requests (request_id, user_id, key_id, owner, name, path, method,
             content_type, body, priority, timeout_ms, webhook, created_at, status) VALUES {}",
        crate::queue_done::placeholders(1, requests.len(), 13, ", 'IN_QUEUE'")
    );
    let mut args: Vec<Value> = Vec::with_capacity(requests.len() * 13);
    for r in requests {
        args.extend([
            r.request_id.clone().into(),
            r.user_id.as_str().into(),
            r.key_id.map(|k| k.to_string()).into(),
            r.owner.clone().into(),
            r.name.clone().into(),
            r.path.clone().into(),
            r.method.clone().into(),
            r.content_type.clone().into(),
            r.body.clone().into(),
            r.priority.into(),
            r.timeout_ms.into(),
            r.webhook.clone().into(),
            r.created_at.millis().into(),
        ]);
    }
    conn.execute(&sql, args).await?;
    Ok(())
}

/// The columns [`request_of`] reads.
pub(crate) const REQUEST: &str = "request_id, user_id, key_id, owner, name, path, method, content_type, \
                       body, priority, webhook, timeout_ms, created_at, attempts";

#[async_trait]
impl QueueStore for SqlStore {
    async fn enqueue(&self, r: &NewQueued) -> Result<u64, StoreError> {
        let positions = self.enqueue_many(std::slice::from_ref(r)).await?;
        Ok(positions.first().copied().unwrap_or(0))
    }

    async fn enqueue_many(&self, requests: &[NewQueued]) -> Result<Vec<u64>, StoreError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut positions = None;
        {
            let mut turn = self.queue_write_turn().await;
            if let Some(counts) = turn.as_deref_mut()
                && counts.is_none()
            {
                let mut conn = self.queue_conn(false, false).await?;
                *counts = Some(queue_waiting::load(&mut conn).await?);
            }
            if requests.len() <= INSERT_CHUNK {
                let mut conn = self.queue_conn(false, false).await?;
                insert_all(&mut conn, requests).await?;
            } else {
                let mut tx = self.queue_conn(true, false).await?;
                for chunk in requests.chunks(INSERT_CHUNK) {
                    insert_all(&mut tx, chunk).await?;
                }
                tx.commit().await?;
            }
            if let Some(Some(counts)) = turn.as_deref_mut() {
                positions = Some(queue_waiting::stored(counts, requests));
            }
        }
        // PostgreSQL: other servers store requests too; count.
        let positions = match positions {
            Some(p) => p,
            None => {
                let mut p = Vec::with_capacity(requests.len());
                for r in requests {
                    p.push(self.queue_position(&r.request_id).await?);
                }
                p
            }
        };
        // Other servers learn of the new requests once they are stored. A
        // lost announcement only delays them until their next sweep.
        let mut apps: Vec<(&str, &str)> = Vec::new();
        for r in requests {
            if !apps.contains(&(r.owner.as_str(), r.name.as_str())) {
                apps.push((&r.owner, &r.name));
            }
        }
        for (owner, name) in apps {
            if let Err(e) = self.announce_now(&format!("queue:{owner}/{name}")).await {
                tracing::warn!(error = %e, "could not announce queued requests");
            }
        }
        Ok(positions)
    }

    async fn queue_view(&self, request_id: &str) -> Result<Option<QueueView>, StoreError> {
        let row = sqlx::query(
            "SELECT request_id, user_id, owner, name, status, cancel_requested, created_at,
                    started_at, completed_at, error, error_type
             FROM queue_requests WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let status: String = row.try_get("status")?;
        Ok(Some(QueueView {
            request_id: row.try_get("request_id")?,
            user_id: UserId::from_stored(row.try_get("user_id")?),
            owner: row.try_get("owner")?,
            name: row.try_get("name")?,
            status: QueueStatus::parse(&status).ok_or_else(|| corrupt("queue status"))?,
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
            created_at: Timestamp(row.try_get("created_at")?),
            started_at: ts(&row, "started_at")?,
            completed_at: ts(&row, "completed_at")?,
            error: row.try_get("error")?,
            error_type: row.try_get("error_type")?,
        }))
    }

    async fn queue_position(&self, request_id: &str) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM queue_requests q
             JOIN queue_requests me ON me.request_id = $1
             WHERE q.owner = me.owner AND q.name = me.name AND q.status = 'IN_QUEUE'
               AND (q.priority < me.priority OR (q.priority = me.priority
                    AND (q.created_at < me.created_at
                         OR (q.created_at = me.created_at AND q.request_id < me.request_id))))",
        )
        .bind(request_id)
        .fetch_one(self.pool())
        .await?;
        Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0))
    }

    async fn apps_with_work(&self, now: Timestamp) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT owner, name FROM queue_requests
             WHERE status = 'IN_QUEUE' OR (status = 'IN_PROGRESS' AND lease_until < $1)",
        )
        .bind(now.millis())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("owner")?, r.try_get("name")?)))
            .collect()
    }

    async fn claim_many(&self, ask: ClaimAsk<'_>) -> Result<Claims, StoreError> {
        self.claim_batch(ask).await
    }

    async fn renew_claim(
        &self,
        request_id: &str,
        worker: &str,
        lease_until: Timestamp,
    ) -> Result<Option<bool>, StoreError> {
        let _turn = self.queue_write_turn().await;
        let mut conn = self.queue_conn(false, false).await?;
        conn.fetch_optional(
            "UPDATE queue_requests SET lease_until = $1
             WHERE request_id = $2 AND claimed_by = $3 AND status = 'IN_PROGRESS'
             RETURNING cancel_requested",
            vec![
                lease_until.millis().into(),
                request_id.into(),
                worker.into(),
            ],
            |r| Ok(r.int_of("cancel_requested")? != 0),
        )
        .await
    }

    async fn complete_many(
        &self,
        worker: &str,
        done: &[(&str, &QueueResult)],
        at: Timestamp,
    ) -> Result<Vec<bool>, StoreError> {
        self.complete_batch(worker, done, at).await
    }

    async fn cancel(&self, request_id: &str, at: Timestamp) -> Result<CancelOutcome, StoreError> {
        let mut turn = self.queue_write_turn().await;
        let mut conn = self.queue_conn(false, false).await?;
        let waiting = conn
            .fetch_optional(
                "UPDATE queue_requests SET status = 'COMPLETED', completed_at = $1,
                     cancel_requested = 1, result_status = 499, error = $2, error_type = 'cancelled',
                     webhook_state = CASE WHEN webhook IS NULL THEN NULL ELSE 'pending' END,
                     webhook_next_at = CASE WHEN webhook IS NULL THEN NULL ELSE $1 END
                 WHERE request_id = $3 AND status = 'IN_QUEUE'
                 RETURNING owner, name, priority",
                vec![at.millis().into(), CANCELLED.into(), request_id.into()],
                |r| Ok((r.text_of("owner")?, r.text_of("name")?, r.int_of("priority")?)),
            )
            .await?;
        if let Some((owner, name, priority)) = waiting {
            if let Some(Some(counts)) = turn.as_deref_mut() {
                queue_waiting::left(counts, &owner, &name, priority);
            }
            return Ok(CancelOutcome::WasQueued);
        }
        let running = conn
            .execute(
                "UPDATE queue_requests SET cancel_requested = 1
                 WHERE request_id = $1 AND status = 'IN_PROGRESS'",
                vec![request_id.into()],
            )
            .await?;
        if running == 1 {
            return Ok(CancelOutcome::WasRunning);
        }
        drop(conn);
        Ok(match self.queue_view(request_id).await? {
            Some(_) => CancelOutcome::AlreadyCompleted,
            None => CancelOutcome::NotFound,
        })
    }

    async fn queue_result(&self, request_id: &str) -> Result<Option<QueueResult>, StoreError> {
        let row = sqlx::query(
            "SELECT result_status, result_content_type, result_body, result_file, error, error_type
             FROM queue_requests WHERE request_id = $1 AND status = 'COMPLETED'",
        )
        .bind(request_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(QueueResult {
                status_code: r.try_get::<Option<i64>, _>("result_status")?.unwrap_or(500),
                content_type: r.try_get("result_content_type")?,
                body: r.try_get("result_body")?,
                file: r.try_get("result_file")?,
                error: r.try_get("error")?,
                error_type: r.try_get("error_type")?,
            })
        })
        .transpose()
    }

    async fn due_webhooks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<WebhookDue>, StoreError> {
        let rows = sqlx::query(
            "SELECT request_id, webhook, webhook_attempts FROM queue_requests
             WHERE webhook_state = 'pending' AND webhook_next_at <= $1
             ORDER BY webhook_next_at LIMIT $2",
        )
        .bind(now.millis())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WebhookDue {
                    request_id: r.try_get("request_id")?,
                    url: r
                        .try_get::<Option<String>, _>("webhook")?
                        .ok_or_else(|| corrupt("webhook"))?,
                    attempts: r.try_get("webhook_attempts")?,
                })
            })
            .collect()
    }

    async fn webhook_attempted(
        &self,
        request_id: &str,
        delivered: bool,
        next: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let _turn = self.queue_write_turn().await;
        let state = match (delivered, next) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        self.queue_conn(false, false)
            .await?
            .execute(
                "UPDATE queue_requests SET webhook_state = $1, webhook_next_at = $2,
                     webhook_attempts = webhook_attempts + 1
                 WHERE request_id = $3",
                vec![
                    state.into(),
                    next.map(Timestamp::millis).into(),
                    request_id.into(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn prune_queue(&self, before: Timestamp) -> Result<Vec<Option<String>>, StoreError> {
        let _turn = self.queue_write_turn().await;
        self.queue_conn(false, false)
            .await?
            .fetch(
                "DELETE FROM queue_requests WHERE status = 'COMPLETED' AND completed_at < $1
                 RETURNING result_file",
                vec![before.millis().into()],
                |r| r.text("result_file"),
            )
            .await
    }
}

impl SqlStore {
    /// Completes as cancelled the app's requests that were cancelled while
    /// running on a server that died (their lease ran out).
    pub(crate) async fn complete_dead_cancelled(
        &self,
        owner: &str,
        name: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.queue_conn(false, false)
            .await?
            .execute(
                "UPDATE queue_requests SET status = 'COMPLETED', completed_at = $1,
                     claimed_by = NULL, lease_until = NULL, result_status = 499, error = $2,
                     error_type = 'cancelled',
                     webhook_state = CASE WHEN webhook IS NULL THEN NULL ELSE 'pending' END,
                     webhook_next_at = CASE WHEN webhook IS NULL THEN NULL ELSE $1 END
                 WHERE owner = $3 AND name = $4 AND status = 'IN_PROGRESS'
                   AND cancel_requested = 1 AND lease_until < $1",
                vec![
                    now.millis().into(),
                    CANCELLED.into(),
                    owner.into(),
                    name.into(),
                ],
            )
            .await?;
        Ok(())
    }
}
