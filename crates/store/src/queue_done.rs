//! [`QueueStore::complete_many`](crate::queue::QueueStore::complete_many)
//! for [`SqlStore`]: the answers of several requests stored by one
//! `UPDATE … FROM (VALUES …)` (one statement and one commit for all of
//! them, on SQLite and PostgreSQL alike).

use crate::queue::QueueResult;
use crate::queue_conn::Value;
use crate::{SqlStore, StoreError};
use fal_core::Timestamp;

/// The most answers one statement carries (7 parameters each).
const CHUNK: usize = 100;

/// `($first, …), (…)`: `rows` groups of `per_row` numbered parameters,
/// each group ended by `tail` (e.g. `, 'IN_QUEUE'`, or nothing).
pub(crate) fn placeholders(first: usize, rows: usize, per_row: usize, tail: &str) -> String {
    let mut sql = String::new();
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for p in 0..per_row {
            if p > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", first + row * per_row + p));
        }
        sql.push_str(tail);
        sql.push(')');
    }
    sql
}

impl SqlStore {
    /// See `QueueStore::complete_many`.
    pub(crate) async fn complete_batch(
        &self,
        worker: &str,
        done: &[(&str, &QueueResult)],
        at: Timestamp,
    ) -> Result<Vec<bool>, StoreError> {
        let _turn = self.queue_write_turn().await;
        let mut conn = self.queue_conn(false, false).await?;
        let mut completed = std::collections::HashSet::new();
        for chunk in done.chunks(CHUNK) {
            let sql = format!(
                "WITH done (request_id, result_status, result_content_type, result_body,
                            result_file, error, error_type) AS (VALUES {})
                 UPDATE queue_requests SET status = 'COMPLETED', completed_at = $1,
                     claimed_by = NULL, lease_until = NULL,
                     result_status = done.result_status,
                     result_content_type = done.result_content_type,
                     result_body = done.result_body, result_file = done.result_file,
                     error = done.error, error_type = done.error_type,
                     webhook_state = CASE WHEN webhook IS NULL THEN NULL ELSE 'pending' END,
                     webhook_next_at = CASE WHEN webhook IS NULL THEN NULL ELSE $1 END
                 FROM done
                 WHERE queue_requests.request_id = done.request_id
                   AND queue_requests.claimed_by = $2 AND queue_requests.status = 'IN_PROGRESS'
                 RETURNING queue_requests.request_id",
                placeholders(3, chunk.len(), 7, "")
            );
            let mut args: Vec<Value> = Vec::with_capacity(2 + chunk.len() * 7);
            args.extend([at.millis().into(), worker.into()]);
            for (id, r) in chunk {
                args.extend([
                    (*id).into(),
                    r.status_code.into(),
                    r.content_type.clone().into(),
                    r.body.clone().into(),
                    r.file.clone().into(),
                    r.error.clone().into(),
                    r.error_type.clone().into(),
                ]);
            }
            completed.extend(conn.fetch(&sql, args, |r| r.text_of("request_id")).await?);
        }
        Ok(done.iter().map(|(id, _)| completed.contains(*id)).collect())
    }
}
