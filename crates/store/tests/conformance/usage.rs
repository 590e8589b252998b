//! Conformance cases for per-key usage: hourly counts are added to (never
//! overwritten) by batches from any number of writers, read by the key's
//! owner only, summed per key for listings, and pruned by age.

use std::sync::Arc;

use fal_core::usage::{HOUR_MS, Hour};
use fal_core::{KeyId, UsageCounts};
use fal_store::HourlyUsage;

use super::*;

/// 2026-12-01T10:00:00Z.
const TEN_AM: i64 = 1_796_119_200_000;

fn hour(n: i64) -> Hour {
    Hour::of(Timestamp(TEN_AM + n * HOUR_MS))
}

fn row(key_id: KeyId, h: i64, counts: [u64; 5]) -> HourlyUsage {
    HourlyUsage {
        key_id,
        hour: hour(h),
        counts: UsageCounts::from_array(counts),
    }
}

pub(crate) async fn usage_adds_up_and_only_its_owner_reads_it(s: SqlStore) {
    let h = hasher();
    let (a, b) = (user("alice"), user("bob"));
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();
    let (k1, _) = new_key(&h, &a.user_id, Scope::Api, 10);
    let (k2, _) = new_key(&h, &a.user_id, Scope::Api, 11);
    let (kb, _) = new_key(&h, &b.user_id, Scope::Api, 12);
    for k in [&k1, &k2, &kb] {
        s.create_key(k).await.unwrap();
    }
    let (id1, id2, idb) = (k1.record.key_id, k2.record.key_id, kb.record.key_id);
    // One batch may name a key and hour twice (a retried flush merged in).
    s.add_key_usage(&[
        row(id1, 0, [3, 1, 0, 0, 0]),
        row(id1, 0, [2, 0, 0, 1, 0]),
        row(id1, -5, [1, 0, 0, 0, 0]),
        row(id2, 0, [7, 0, 0, 0, 0]),
        row(idb, 0, [100, 0, 0, 0, 0]),
    ])
    .await
    .unwrap();
    // A second batch adds to the first.
    s.add_key_usage(&[row(id1, 0, [10, 0, 4, 0, 2])])
        .await
        .unwrap();
    s.add_key_usage(&[]).await.unwrap();

    let read = s.key_usage(&a.user_id, &id1, hour(-24)).await.unwrap();
    let expected = vec![
        (hour(-5), UsageCounts::from_array([1, 0, 0, 0, 0])),
        (hour(0), UsageCounts::from_array([15, 1, 4, 1, 2])),
    ];
    assert_eq!(read, Some(expected));
    // `since` leaves older hours out.
    let recent = s.key_usage(&a.user_id, &id1, hour(-1)).await.unwrap();
    assert_eq!(recent.unwrap().len(), 1);
    // Somebody else's key reads as unknown, like a key that does not exist.
    assert_eq!(
        s.key_usage(&b.user_id, &id1, hour(-24)).await.unwrap(),
        None
    );
    let unknown = KeyId::generate(&OsRandom).unwrap();
    assert_eq!(
        s.key_usage(&a.user_id, &unknown, hour(-24)).await.unwrap(),
        None
    );
    // A key with no calls has no hours.
    let (k3, _) = new_key(&h, &a.user_id, Scope::Api, 13);
    s.create_key(&k3).await.unwrap();
    let none = s.key_usage(&a.user_id, &k3.record.key_id, hour(-24)).await;
    assert_eq!(none.unwrap(), Some(vec![]));
    // A revoked key's usage is still its owner's to read.
    assert!(s.revoke_key(&a.user_id, &id1, Timestamp(20)).await.unwrap());
    let after = s.key_usage(&a.user_id, &id1, hour(-24)).await.unwrap();
    assert_eq!(after.unwrap().len(), 2);

    let all = s.user_key_usage(&a.user_id, hour(-24)).await.unwrap();
    let mut seen: Vec<(KeyId, Hour, u64)> = all
        .iter()
        .map(|r| (r.key_id, r.hour, r.counts.accepted))
        .collect();
    seen.sort();
    let mut want = vec![(id1, hour(-5), 1), (id1, hour(0), 15), (id2, hour(0), 7)];
    want.sort();
    assert_eq!(seen, want, "alice's keys only");
    let bobs = s.user_key_usage(&b.user_id, hour(-24)).await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].key_id, idb);

    let mut requests = s.key_requests(&a.user_id, hour(-24)).await.unwrap();
    requests.sort();
    let mut want = vec![(id1, 16), (id2, 7)];
    want.sort();
    assert_eq!(requests, want);
    let since_now = s.key_requests(&a.user_id, hour(0)).await.unwrap();
    assert!(since_now.contains(&(id1, 15)), "{since_now:?}");
}

pub(crate) async fn usage_batches_from_many_writers_add_up(s: SqlStore) {
    let h = hasher();
    let u = user("carol");
    s.create_user(&u).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let (k, _) = new_key(&h, &u.user_id, Scope::Api, 10 + i);
        s.create_key(&k).await.unwrap();
        ids.push(k.record.key_id);
    }
    let ids = Arc::new(ids);
    // Eight writers, each flushing 20 batches touching every key in two
    // hours, in an order of their own; one batch is larger than a single
    // statement holds.
    let mut tasks = Vec::new();
    for w in 0..8usize {
        let (s, ids) = (s.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..20usize {
                let mut batch = Vec::new();
                for (i, id) in ids.iter().enumerate() {
                    let h = i64::try_from((i + w + round) % 2).unwrap();
                    batch.push(row(*id, h, [1, 0, 0, 0, 0]));
                    batch.push(row(*id, 1 - h, [0, 0, 0, 1, 0]));
                }
                if w == 0 && round == 0 {
                    for extra in 0..450 {
                        batch.push(row(ids[0], -100 - extra, [1, 0, 0, 0, 0]));
                    }
                }
                s.add_key_usage(&batch).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for id in ids.iter() {
        let hours = s.key_usage(&u.user_id, id, hour(0)).await.unwrap().unwrap();
        let mut total = UsageCounts::default();
        for (_, c) in &hours {
            total.add(c);
        }
        assert_eq!(total.accepted, 8 * 20, "{id}");
        assert_eq!(total.rate_limited, 8 * 20, "{id}");
    }
    let old = s
        .key_usage(&u.user_id, &ids[0], hour(-1000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.len(), 450 + 2);
}

pub(crate) async fn usage_older_than_the_cutoff_is_pruned(s: SqlStore) {
    let h = hasher();
    let u = user("dan");
    s.create_user(&u).await.unwrap();
    let (k, _) = new_key(&h, &u.user_id, Scope::Api, 10);
    s.create_key(&k).await.unwrap();
    let id = k.record.key_id;
    let rows: Vec<HourlyUsage> = (0..5).map(|n| row(id, -n, [1, 0, 0, 0, 0])).collect();
    s.add_key_usage(&rows).await.unwrap();
    assert_eq!(s.prune_key_usage(hour(-2)).await.unwrap(), 2);
    assert_eq!(s.prune_key_usage(hour(-2)).await.unwrap(), 0);
    let left = s
        .key_usage(&u.user_id, &id, hour(-10))
        .await
        .unwrap()
        .unwrap();
    let hours: Vec<Hour> = left.iter().map(|(h, _)| *h).collect();
    assert_eq!(hours, vec![hour(-2), hour(-1), hour(0)]);
}
