//! Conformance cases for claiming several requests at once
//! (`QueueStore::claim_many`): queue order, the running limit across
//! claimers, whether the queue was emptied, and leases taken over only
//! when asked.

use std::sync::Arc;

use fal_store::queue::{ClaimAsk, Claims, NewQueued, QueueStore};

use super::*;

fn ask<'a>(worker: &'a str, now: i64, running: i64, want: u32, take_over: bool) -> ClaimAsk<'a> {
    ClaimAsk {
        app: ("fal-ai", "echo"),
        worker,
        now: Timestamp(now),
        lease_until: Timestamp(now + 1_000),
        running,
        want,
        take_over,
    }
}

fn ids(c: &Claims) -> Vec<&str> {
    c.requests
        .iter()
        .map(|c| c.request.request_id.as_str())
        .collect()
}

pub(crate) async fn a_batch_claim_takes_requests_in_queue_order_up_to_its_room(s: SqlStore) {
    let u = user("bo");
    s.create_user(&u).await.unwrap();
    s.enqueue(&queued("low", &u.user_id, 1, 1)).await.unwrap();
    for i in 0..5 {
        s.enqueue(&queued(&format!("n{i}"), &u.user_id, 0, 10 + i))
            .await
            .unwrap();
    }
    let c = s.claim_many(ask("w1", 100, 100, 3, false)).await.unwrap();
    assert_eq!(
        ids(&c),
        ["n0", "n1", "n2"],
        "normal before low, oldest first"
    );
    assert!(!c.exhausted, "it took all it wanted: more may wait");
    assert!(c.requests.iter().all(|c| c.attempts == 0));

    // Four may run; three do: one more, whatever is wanted.
    let c = s.claim_many(ask("w2", 100, 4, 10, false)).await.unwrap();
    assert_eq!(ids(&c), ["n3"]);
    assert!(!c.exhausted, "the limit stopped it, not an empty queue");
    let c = s.claim_many(ask("w2", 100, 4, 10, false)).await.unwrap();
    assert!(c.requests.is_empty() && !c.exhausted, "no room at all");

    let c = s.claim_many(ask("w3", 100, 100, 10, false)).await.unwrap();
    assert_eq!(ids(&c), ["n4", "low"]);
    assert!(c.exhausted, "fewer than wanted: nothing left");
    let c = s.claim_many(ask("w3", 100, 100, 10, false)).await.unwrap();
    assert!(c.requests.is_empty() && c.exhausted);
    for id in ["n0", "n4", "low"] {
        assert_eq!(
            s.queue_view(id).await.unwrap().unwrap().status,
            fal_store::queue::QueueStatus::InProgress
        );
    }
    assert_eq!(
        s.apps_with_work(Timestamp(100)).await.unwrap(),
        Vec::<(String, String)>::new()
    );
}

pub(crate) async fn dead_leases_are_taken_over_only_when_asked(s: SqlStore) {
    let u = user("cal");
    s.create_user(&u).await.unwrap();
    for i in 0..3 {
        s.enqueue(&queued(&format!("d{i}"), &u.user_id, 0, i))
            .await
            .unwrap();
    }
    // w1 holds two until 1,100 and dies.
    let c = s.claim_many(ask("w1", 100, 100, 2, false)).await.unwrap();
    assert_eq!(ids(&c), ["d0", "d1"]);
    // Later: a claim that does not look at leases takes only the waiting one.
    let c = s.claim_many(ask("w2", 5_000, 100, 5, false)).await.unwrap();
    assert_eq!(ids(&c), ["d2"]);
    assert!(c.exhausted);
    // A sweep's claim takes the dead ones over, counted as second attempts.
    let c = s.claim_many(ask("w2", 5_000, 100, 5, true)).await.unwrap();
    assert_eq!(ids(&c), ["d0", "d1"]);
    assert!(c.requests.iter().all(|c| c.attempts == 1));
    // Their old claimer cannot complete them any more.
    let done = fal_store::queue::QueueResult {
        status_code: 200,
        content_type: None,
        body: Some(b"x".to_vec()),
        file: None,
        error: None,
        error_type: None,
    };
    assert!(
        !s.complete("d0", "w1", &done, Timestamp(5_001))
            .await
            .unwrap()
    );
    assert!(
        s.complete("d0", "w2", &done, Timestamp(5_001))
            .await
            .unwrap()
    );
}

pub(crate) async fn concurrent_batch_claimers_share_the_limit_and_the_requests(s: SqlStore) {
    let u = user("dex");
    s.create_user(&u).await.unwrap();
    let batch: Vec<NewQueued> = (0..40)
        .map(|i| queued(&format!("c{i:02}"), &u.user_id, 0, i))
        .collect();
    s.enqueue_many(&batch).await.unwrap();
    let s = Arc::new(s);
    // Six claimers wanting four each, with at most ten running: exactly
    // ten are claimed, each once.
    let tasks: Vec<_> = (0..6)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let worker = format!("w{w}");
                let c = s.claim_many(ask(&worker, 100, 10, 4, true)).await.unwrap();
                c.requests
                    .into_iter()
                    .map(|c| c.request.request_id)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("c{i:02}")).collect();
    assert_eq!(
        all_claimed(tasks).await,
        expected,
        "the first ten, each claimed once"
    );
}

pub(crate) async fn a_batch_of_answers_completes_only_what_the_worker_holds(s: SqlStore) {
    let u = user("eve");
    s.create_user(&u).await.unwrap();
    for i in 0..4 {
        s.enqueue(&queued(&format!("e{i}"), &u.user_id, 0, i))
            .await
            .unwrap();
    }
    let mine = s.claim_many(ask("w1", 100, 100, 3, false)).await.unwrap();
    assert_eq!(ids(&mine), ["e0", "e1", "e2"]);
    let answer = |n: i64, body: &[u8]| fal_store::queue::QueueResult {
        status_code: n,
        content_type: Some("text/plain".into()),
        body: Some(body.to_vec()),
        file: None,
        error: (n >= 400).then(|| "no".to_owned()),
        error_type: (n >= 400).then(|| "upstream_error".to_owned()),
    };
    let (a, b, c) = (
        answer(200, b"zero"),
        answer(500, b"one"),
        answer(200, b"three"),
    );
    // e3 is still waiting (not held): not completed; the others are.
    let done = s
        .complete_many("w1", &[("e0", &a), ("e1", &b), ("e3", &c)], Timestamp(150))
        .await
        .unwrap();
    assert_eq!(done, [true, true, false]);
    let r0 = s.queue_result("e0").await.unwrap().unwrap();
    assert_eq!(
        (r0.status_code, r0.body.as_deref()),
        (200, Some(&b"zero"[..]))
    );
    let r1 = s.queue_result("e1").await.unwrap().unwrap();
    assert_eq!(
        (
            r1.status_code,
            r1.error.as_deref(),
            r1.error_type.as_deref()
        ),
        (500, Some("no"), Some("upstream_error"))
    );
    assert!(s.queue_result("e3").await.unwrap().is_none());
    // Once only; another worker cannot complete what w1 holds.
    let again = s
        .complete_many("w1", &[("e0", &c), ("e2", &c)], Timestamp(160))
        .await
        .unwrap();
    assert_eq!(again, [false, true]);
    assert!(!s.complete("e2", "w9", &a, Timestamp(170)).await.unwrap());
    let r0 = s.queue_result("e0").await.unwrap().unwrap();
    assert_eq!(
        r0.body.as_deref(),
        Some(&b"zero"[..]),
        "the first answer stays"
    );
}
