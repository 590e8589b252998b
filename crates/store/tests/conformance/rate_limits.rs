//! Conformance cases for rate limits: a key's limit is stored, changed by
//! its owner only and logged as a key change; the shared per-window counts
//! add up exactly under concurrent leases, and are pruned when over.

use std::sync::Arc;

use fal_core::RateLimit;
use fal_store::RateCounts;

use super::*;

pub(crate) async fn a_keys_rate_limit_is_kept_and_changed_by_its_owner(s: SqlStore) {
    let h = hasher();
    let (a, b) = (user("alice"), user("bob"));
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();
    let (mut k, _) = new_key(&h, &a.user_id, Scope::Api, 10);
    k.record.rate_limit = Some(RateLimit::parse("100/s").unwrap());
    s.create_key(&k).await.unwrap();
    let id = k.record.key_id;
    let read = s.key_record(&id).await.unwrap().unwrap();
    assert_eq!(read.rate_limit.unwrap().to_string(), "100/s");
    let listed = s.list_keys(&a.user_id, 10, None).await.unwrap();
    assert_eq!(listed.keys[0].rate_limit, read.rate_limit);
    let one = s.key_summary(&a.user_id, &id).await.unwrap();
    assert_eq!(one.as_ref(), Some(&listed.keys[0]));
    assert_eq!(
        s.key_summary(&b.user_id, &id).await.unwrap(),
        None,
        "not bob's"
    );

    let before = s.last_key_change().await.unwrap();
    let per_min = RateLimit::parse("5/min").ok();
    // Somebody else's key is not found, and nothing is logged.
    assert!(
        !s.set_rate_limit(&b.user_id, &id, per_min, Timestamp(11))
            .await
            .unwrap()
    );
    assert_eq!(s.last_key_change().await.unwrap(), before);
    assert!(
        s.set_rate_limit(&a.user_id, &id, per_min, Timestamp(12))
            .await
            .unwrap()
    );
    assert_eq!(
        s.key_record(&id).await.unwrap().unwrap().rate_limit,
        per_min
    );
    let logged = s.key_changes_after(before, 10).await.unwrap();
    assert_eq!(logged.iter().map(|c| c.key_id).collect::<Vec<_>>(), [id]);
    // Lifted.
    assert!(
        s.set_rate_limit(&a.user_id, &id, None, Timestamp(13))
            .await
            .unwrap()
    );
    assert_eq!(s.key_record(&id).await.unwrap().unwrap().rate_limit, None);
    // A revoked key's limit is not changed.
    s.revoke_key(&a.user_id, &id, Timestamp(14)).await.unwrap();
    assert!(
        !s.set_rate_limit(&a.user_id, &id, per_min, Timestamp(15))
            .await
            .unwrap()
    );
}

pub(crate) async fn rate_counts_add_up_under_concurrent_leases(s: SqlStore) {
    let s = Arc::new(s);
    let key = KeyId::generate(&OsRandom).unwrap();
    let other = KeyId::generate(&OsRandom).unwrap();
    assert_eq!(s.add_rate_usage(&key, 1_000, 5_000, 3).await.unwrap(), 3);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.add_rate_usage(&key, 1_000, 5_000, 2).await.unwrap() })
        })
        .collect();
    let mut totals = Vec::new();
    for t in tasks {
        totals.push(t.await.unwrap());
    }
    totals.sort();
    // Every lease saw a different total: none was lost or counted twice.
    assert_eq!(totals, (0..16).map(|i| 5 + 2 * i).collect::<Vec<u64>>());
    // Other windows, periods and keys count apart.
    assert_eq!(s.add_rate_usage(&key, 1_000, 6_000, 1).await.unwrap(), 1);
    assert_eq!(s.add_rate_usage(&key, 60_000, 0, 1).await.unwrap(), 1);
    assert_eq!(s.add_rate_usage(&other, 1_000, 5_000, 1).await.unwrap(), 1);
    // Windows over before 6,500 ms: the one of 5,000..6,000 only.
    assert_eq!(s.prune_rate_usage(Timestamp(6_500)).await.unwrap(), 2);
    assert_eq!(s.add_rate_usage(&key, 1_000, 5_000, 1).await.unwrap(), 1);
    assert_eq!(s.add_rate_usage(&key, 60_000, 0, 1).await.unwrap(), 2);
}
