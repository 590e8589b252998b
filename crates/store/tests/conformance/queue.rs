//! Conformance cases for the request queue: stored before acknowledged,
//! claimed once (normal before low, oldest first), taken over when a
//! claimer's lease runs out, completed once, cancelled in every state,
//! webhooks scheduled, pruned after retention.

use std::collections::HashSet;
use std::sync::Arc;

use fal_store::queue::{CancelOutcome, NewQueued, QueueResult, QueueStatus, QueueStore};

use super::*;

pub(crate) fn queued(id: &str, owner: &UserId, priority: i64, at: i64) -> NewQueued {
    NewQueued {
        request_id: id.to_owned(),
        user_id: owner.clone(),
        key_id: None,
        owner: "fal-ai".into(),
        name: "echo".into(),
        path: "/x?y=1".into(),
        method: "POST".into(),
        content_type: Some("application/json".into()),
        body: br#"{"a":1}"#.to_vec(),
        priority,
        webhook: Some("https://hooks.example/x".into()),
        timeout_ms: None,
        created_at: Timestamp(at),
    }
}

fn ok(body: &[u8]) -> QueueResult {
    QueueResult {
        status_code: 200,
        content_type: Some("application/json".into()),
        body: Some(body.to_vec()),
        file: None,
        error: None,
        error_type: None,
    }
}

pub(crate) async fn queued_requests_are_claimed_in_order_and_completed_once(s: SqlStore) {
    let u = user("ada");
    s.create_user(&u).await.unwrap();
    s.enqueue(&queued("r1", &u.user_id, 1, 10)).await.unwrap(); // low
    s.enqueue(&queued("r2", &u.user_id, 0, 20)).await.unwrap();
    s.enqueue(&queued("r3", &u.user_id, 0, 30)).await.unwrap();
    let v = s.queue_view("r3").await.unwrap().unwrap();
    assert_eq!(
        (v.status, v.user_id.clone()),
        (QueueStatus::InQueue, u.user_id.clone())
    );
    assert_eq!(s.queue_position("r2").await.unwrap(), 0);
    assert_eq!(s.queue_position("r3").await.unwrap(), 1);
    assert_eq!(
        s.queue_position("r1").await.unwrap(),
        2,
        "low waits for normal"
    );
    assert_eq!(
        s.apps_with_work(Timestamp(40)).await.unwrap(),
        [("fal-ai".into(), "echo".into())]
    );

    let lease = Timestamp(1_000);
    let c = s
        .claim(("fal-ai", "echo"), "w1", Timestamp(40), lease, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.request.request_id.as_str(), c.attempts), ("r2", 0));
    assert_eq!(c.request.body, br#"{"a":1}"#.to_vec());
    assert_eq!(c.request.path, "/x?y=1");
    assert_eq!(s.queue_position("r3").await.unwrap(), 0);
    assert_eq!(
        s.renew_claim("r2", "w1", Timestamp(2_000)).await.unwrap(),
        Some(false)
    );
    assert_eq!(
        s.renew_claim("r2", "w2", Timestamp(2_000)).await.unwrap(),
        None
    );
    // Only the holder completes it.
    assert!(
        !s.complete("r2", "w2", &ok(b"no"), Timestamp(50))
            .await
            .unwrap()
    );
    assert!(
        s.complete("r2", "w1", &ok(b"yes"), Timestamp(50))
            .await
            .unwrap()
    );
    assert!(
        !s.complete("r2", "w1", &ok(b"again"), Timestamp(51))
            .await
            .unwrap()
    );
    let r = s.queue_result("r2").await.unwrap().unwrap();
    assert_eq!(r.body.as_deref(), Some(&b"yes"[..]));
    assert_eq!(
        s.queue_view("r2").await.unwrap().unwrap().status,
        QueueStatus::Completed
    );
    assert!(
        s.queue_result("r3").await.unwrap().is_none(),
        "not done yet"
    );

    // A claimer that dies: its request is taken over after its lease.
    let c = s
        .claim(("fal-ai", "echo"), "w1", Timestamp(60), Timestamp(500), 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.request.request_id, "r3");
    let next = s
        .claim(
            ("fal-ai", "echo"),
            "w2",
            Timestamp(100),
            Timestamp(900),
            100,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.request.request_id, "r1", "r3 is still leased");
    let taken = s
        .claim(
            ("fal-ai", "echo"),
            "w2",
            Timestamp(600),
            Timestamp(1_600),
            100,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (taken.request.request_id.as_str(), taken.attempts),
        ("r3", 1)
    );
    assert!(
        !s.complete("r3", "w1", &ok(b"late"), Timestamp(700))
            .await
            .unwrap()
    );
    assert!(
        s.complete("r3", "w2", &ok(b"done"), Timestamp(700))
            .await
            .unwrap()
    );
    assert!(
        s.claim(
            ("fal-ai", "echo"),
            "w3",
            Timestamp(800),
            Timestamp(1_800),
            100
        )
        .await
        .unwrap()
        .is_none()
    );
    assert!(s.queue_view("nope").await.unwrap().is_none());
}

pub(crate) async fn cancels_depend_on_where_the_request_is(s: SqlStore) {
    let u = user("bo");
    s.create_user(&u).await.unwrap();
    for (id, at) in [("c1", 1), ("c2", 2)] {
        s.enqueue(&queued(id, &u.user_id, 0, at)).await.unwrap();
    }
    let c = s
        .claim(("fal-ai", "echo"), "w", Timestamp(5), Timestamp(1_000), 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.request.request_id, "c1");
    assert_eq!(
        s.cancel("c2", Timestamp(6)).await.unwrap(),
        CancelOutcome::WasQueued
    );
    let v = s.queue_view("c2").await.unwrap().unwrap();
    assert_eq!(
        (v.status, v.error_type.as_deref()),
        (QueueStatus::Completed, Some("cancelled"))
    );
    assert!(
        s.claim(("fal-ai", "echo"), "w", Timestamp(7), Timestamp(1_000), 100)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.cancel("c1", Timestamp(8)).await.unwrap(),
        CancelOutcome::WasRunning
    );
    assert_eq!(
        s.renew_claim("c1", "w", Timestamp(2_000)).await.unwrap(),
        Some(true)
    );
    assert!(
        s.complete("c1", "w", &ok(b"x"), Timestamp(9))
            .await
            .unwrap()
    );
    assert_eq!(
        s.cancel("c1", Timestamp(10)).await.unwrap(),
        CancelOutcome::AlreadyCompleted
    );
    assert_eq!(
        s.cancel("zz", Timestamp(10)).await.unwrap(),
        CancelOutcome::NotFound
    );
    // Webhooks of completed requests are due; attempts are recorded.
    let due = s.due_webhooks(Timestamp(100), 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|d| d.request_id.as_str())
            .collect::<HashSet<_>>(),
        HashSet::from(["c1", "c2"])
    );
    s.webhook_attempted("c1", false, Some(Timestamp(200)))
        .await
        .unwrap();
    s.webhook_attempted("c2", true, None).await.unwrap();
    assert!(s.due_webhooks(Timestamp(150), 10).await.unwrap().is_empty());
    let again = s.due_webhooks(Timestamp(200), 10).await.unwrap();
    assert_eq!((again[0].request_id.as_str(), again[0].attempts), ("c1", 1));
    // Retention: completed before 10 go, with their files named.
    let mut big = ok(b"");
    big.body = None;
    big.file = Some("c3.bin".into());
    s.enqueue(&queued("c3", &u.user_id, 0, 3)).await.unwrap();
    s.claim(
        ("fal-ai", "echo"),
        "w",
        Timestamp(11),
        Timestamp(1_000),
        100,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(s.complete("c3", "w", &big, Timestamp(9)).await.unwrap());
    let mut pruned = s.prune_queue(Timestamp(10)).await.unwrap();
    pruned.sort();
    assert_eq!(pruned, [None, None, Some("c3.bin".to_owned())]);
    assert!(s.queue_view("c3").await.unwrap().is_none());
    assert!(s.queue_view("c1").await.unwrap().is_none());
    // Waiting requests are never pruned, however old.
    s.enqueue(&queued("c4", &u.user_id, 0, 1)).await.unwrap();
    assert!(
        s.prune_queue(Timestamp(1_000_000))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.queue_view("c4").await.unwrap().is_some());
}

pub(crate) async fn an_apps_running_requests_are_capped_across_claimers(s: SqlStore) {
    let u = user("di");
    s.create_user(&u).await.unwrap();
    for i in 0..6 {
        s.enqueue(&queued(&format!("k{i}"), &u.user_id, 0, i))
            .await
            .unwrap();
    }
    let app = ("fal-ai", "echo");
    let now = Timestamp(100);
    let lease = Timestamp(1_000);
    assert!(s.claim(app, "a", now, lease, 2).await.unwrap().is_some());
    assert!(s.claim(app, "b", now, lease, 2).await.unwrap().is_some());
    assert!(
        s.claim(app, "c", now, lease, 2).await.unwrap().is_none(),
        "two run already"
    );
    assert!(s.complete("k0", "a", &ok(b"x"), now).await.unwrap());
    assert!(
        s.claim(app, "c", now, lease, 2).await.unwrap().is_some(),
        "one ended"
    );
    // Claims whose lease ran out do not count (their requests are taken over).
    let later = Timestamp(2_000);
    let c = s
        .claim(app, "d", later, Timestamp(3_000), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.attempts, 1, "taken over");
    assert!(
        s.claim(app, "e", later, Timestamp(3_000), 1)
            .await
            .unwrap()
            .is_none()
    );
}

pub(crate) async fn concurrent_claimers_each_get_a_different_request(s: SqlStore) {
    let u = user("cy");
    s.create_user(&u).await.unwrap();
    for i in 0..20 {
        s.enqueue(&queued(&format!("q{i:02}"), &u.user_id, 0, i))
            .await
            .unwrap();
    }
    let s = Arc::new(s);
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let worker = format!("w{w}");
                while let Some(c) = s
                    .claim(
                        ("fal-ai", "echo"),
                        &worker,
                        Timestamp(100),
                        Timestamp(10_000),
                        100,
                    )
                    .await
                    .unwrap()
                {
                    got.push(c.request.request_id);
                }
                got
            })
        })
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("q{i:02}")).collect();
    assert_eq!(
        all_claimed(tasks).await,
        expected,
        "every request claimed exactly once"
    );
}

/// The request ids concurrent claimers got, all together and sorted.
pub(crate) async fn all_claimed(tasks: Vec<tokio::task::JoinHandle<Vec<String>>>) -> Vec<String> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

pub(crate) async fn a_batch_of_requests_is_stored_all_or_none(s: SqlStore) {
    let u = user("ada");
    s.create_user(&u).await.unwrap();
    let batch: Vec<NewQueued> = (0..5)
        .map(|i| queued(&format!("b{i}"), &u.user_id, 0, i))
        .collect();
    s.enqueue_many(&batch).await.unwrap();
    for r in &batch {
        let v = s.queue_view(&r.request_id).await.unwrap().unwrap();
        assert_eq!(v.status, QueueStatus::InQueue);
    }
    assert_eq!(s.queue_position("b4").await.unwrap(), 4);
    // One id already taken: nothing of the batch is stored.
    let mut clash = vec![queued("n1", &u.user_id, 0, 9)];
    clash.push(queued("b2", &u.user_id, 0, 9));
    assert!(s.enqueue_many(&clash).await.is_err());
    assert!(s.queue_view("n1").await.unwrap().is_none());
    assert!(s.enqueue_many(&[]).await.is_ok());
    // More than one statement's worth (500): still all or none.
    let mut big: Vec<NewQueued> = (0..1100)
        .map(|i| queued(&format!("g{i:04}"), &u.user_id, 0, 10 + i))
        .collect();
    big.push(queued("b3", &u.user_id, 0, 9));
    assert!(s.enqueue_many(&big).await.is_err());
    assert!(s.queue_view("g0000").await.unwrap().is_none());
    big.pop();
    s.enqueue_many(&big).await.unwrap();
    assert_eq!(s.queue_position("g1099").await.unwrap(), 5 + 1099);
}

pub(crate) async fn the_position_given_at_submit_is_the_counted_one(s: SqlStore) {
    let u = user("ada");
    s.create_user(&u).await.unwrap();
    let mut other = queued("o1", &u.user_id, 0, 1);
    other.name = "other".into();
    assert_eq!(s.enqueue(&other).await.unwrap(), 0, "another app's queue");
    // Normal (0) and low (1) priority, one millisecond apart.
    let plan = [("p1", 0), ("p2", 1), ("p3", 0), ("p4", 1), ("p5", 0)];
    let mut given = Vec::new();
    for (i, (id, priority)) in plan.iter().enumerate() {
        given.push(
            s.enqueue(&queued(id, &u.user_id, *priority, 10 + i as i64))
                .await
                .unwrap(),
        );
    }
    assert_eq!(given, [0, 1, 1, 3, 2]);
    // Counted now, later normal requests have gone ahead of the low ones.
    let mut counted = Vec::new();
    for (id, _) in plan {
        counted.push(s.queue_position(id).await.unwrap());
    }
    assert_eq!(counted, [0, 3, 1, 4, 2]);
    // A claim (p1) and a cancel (p3) while waiting: later positions agree
    // with the count.
    let claimed = s
        .claim(
            ("fal-ai", "echo"),
            "w",
            Timestamp(100),
            Timestamp(1_000),
            100,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.request.request_id, "p1");
    s.cancel("p3", Timestamp(101)).await.unwrap();
    let batch = [
        queued("p6", &u.user_id, 0, 200),
        queued("p7", &u.user_id, 1, 201),
    ];
    let positions = s.enqueue_many(&batch).await.unwrap();
    assert_eq!(
        positions,
        [1, 4],
        "p5 ahead of p6; p5, p6, p2, p4 ahead of p7"
    );
    assert_eq!(s.queue_position("p6").await.unwrap(), 1);
    assert_eq!(s.queue_position("p7").await.unwrap(), 4);
}
