//! SQLite: the count of waiting requests per app and priority
//! ([`WaitingCounts`]), kept beside the rows in the queue's write turn, so
//! that a new request's position is known without counting the requests
//! ahead of it (a count that grows with the backlog: 1.8 ms for 5,000).

use crate::StoreError;
use crate::queue::NewQueued;
use crate::queue_conn::QueueConn;
use crate::sql::WaitingCounts;

/// The counts as stored now.
pub(crate) async fn load(conn: &mut QueueConn) -> Result<WaitingCounts, StoreError> {
    let rows = conn
        .fetch(
            "SELECT owner, name, priority, COUNT(*) AS n FROM queue_requests
             WHERE status = 'IN_QUEUE' GROUP BY owner, name, priority",
            Vec::new(),
            |r| {
                let n = u64::try_from(r.int_of("n")?).unwrap_or(0);
                Ok((
                    (
                        r.text_of("owner")?,
                        r.text_of("name")?,
                        r.int_of("priority")?,
                    ),
                    n,
                ))
            },
        )
        .await?;
    Ok(rows.into_iter().collect())
}

/// Counts `requests`, just stored in this order, as waiting; returns each
/// one's position: how many waiting requests of its app, stored before it,
/// have its priority or a more urgent one (a lower number).
pub(crate) fn stored(counts: &mut WaitingCounts, requests: &[NewQueued]) -> Vec<u64> {
    requests
        .iter()
        .map(|r| {
            let ahead = counts
                .iter()
                .filter(|((o, n, p), _)| *o == r.owner && *n == r.name && *p <= r.priority)
                .map(|(_, c)| *c)
                .sum();
            *counts
                .entry((r.owner.clone(), r.name.clone(), r.priority))
                .or_default() += 1;
            ahead
        })
        .collect()
}

/// Counts one request of `owner/name` at `priority` as no longer waiting
/// (claimed, or cancelled while it waited).
pub(crate) fn left(counts: &mut WaitingCounts, owner: &str, name: &str, priority: i64) {
    if let Some(c) = counts.get_mut(&(owner.to_owned(), name.to_owned(), priority)) {
        *c = c.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(owner: &str, name: &str, priority: i64) -> NewQueued {
        NewQueued {
            request_id: String::new(),
            user_id: fal_core::UserId::from_stored(String::new()),
            key_id: None,
            owner: owner.into(),
            name: name.into(),
            path: String::new(),
            method: "POST".into(),
            content_type: None,
            body: Vec::new(),
            priority,
            webhook: None,
            timeout_ms: None,
            created_at: fal_core::Timestamp(0),
        }
    }

    #[test]
    fn a_new_request_counts_its_app_s_waiting_requests_of_its_priority_or_more_urgent() {
        let mut counts = WaitingCounts::new();
        let first = stored(
            &mut counts,
            &[
                req("a", "x", 0),
                req("a", "x", 1),
                req("a", "x", 0),
                req("b", "x", 0),
            ],
        );
        assert_eq!(first, [0, 1, 1, 0]);
        // A low-priority request waits behind all three; a normal one
        // behind the two normal ones only.
        assert_eq!(stored(&mut counts, &[req("a", "x", 1)]), [3]);
        assert_eq!(stored(&mut counts, &[req("a", "x", 0)]), [2]);
        left(&mut counts, "a", "x", 0);
        left(&mut counts, "a", "x", 0);
        left(&mut counts, "a", "x", 0);
        left(&mut counts, "a", "x", 0);
        assert_eq!(stored(&mut counts, &[req("a", "x", 0)]), [0]);
        assert_eq!(stored(&mut counts, &[req("a", "x", 1)]), [3]);
    }
}
