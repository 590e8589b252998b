//! Conformance cases for the key change log: every change a verifier must
//! learn of is logged, in order, once; records can be read in pages.

use super::*;

pub(crate) async fn every_key_change_is_logged_in_order(s: SqlStore) {
    let h = hasher();
    let (a, b) = (user("alice"), user("bob"));
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();
    assert_eq!(s.last_key_change().await.unwrap(), 0);
    let (k1, _) = new_key(&h, &a.user_id, Scope::Api, 10);
    let (k2, _) = new_key(&h, &b.user_id, Scope::Api, 11);
    let (k3, _) = new_key(&h, &b.user_id, Scope::Admin, 12);
    for k in [&k1, &k2, &k3] {
        s.create_key(k).await.unwrap();
    }
    s.revoke_key(&a.user_id, &k1.record.key_id, Timestamp(20))
        .await
        .unwrap();
    // Revoking again changes nothing, so logs nothing.
    s.revoke_key(&a.user_id, &k1.record.key_id, Timestamp(21))
        .await
        .unwrap();
    s.disable_user(&b.user_id, Timestamp(30)).await.unwrap();

    let all = s.key_changes_after(0, 100).await.unwrap();
    let ids: Vec<KeyId> = all.iter().map(|c| c.key_id).collect();
    let (i1, i2, i3) = (k1.record.key_id, k2.record.key_id, k3.record.key_id);
    assert_eq!(&ids[..4], &[i1, i2, i3, i1]);
    let mut disabled = ids[4..].to_vec();
    disabled.sort();
    let mut expected = vec![i2, i3];
    expected.sort();
    assert_eq!(disabled, expected);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(s.last_key_change().await.unwrap(), all[5].seq);
    // Paged from any point.
    let after = s.key_changes_after(all[2].seq, 2).await.unwrap();
    assert_eq!(after, all[3..5].to_vec());
    assert!(
        s.key_changes_after(all[5].seq, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Retention: changes before a time go, later ones stay.
    assert_eq!(s.prune_key_changes(Timestamp(20)).await.unwrap(), 3);
    assert_eq!(
        s.key_changes_after(0, 100).await.unwrap(),
        all[3..].to_vec()
    );
}

pub(crate) async fn records_can_be_read_in_pages(s: SqlStore) {
    let h = hasher();
    let a = user("alice");
    s.create_user(&a).await.unwrap();
    let mut made = Vec::new();
    for i in 0..5 {
        let (k, _) = new_key(&h, &a.user_id, Scope::Api, i);
        s.create_key(&k).await.unwrap();
        made.push(k.record);
    }
    s.revoke_key(&a.user_id, &made[0].key_id, Timestamp(9))
        .await
        .unwrap();
    made[0].revoked = true;
    made.sort_by_key(|r| r.key_id.to_string());
    let first = s.key_records_after(None, 3).await.unwrap();
    let rest = s
        .key_records_after(Some(&first[2].key_id), 3)
        .await
        .unwrap();
    let shown = |r: &KeyRecord| {
        (
            r.key_id,
            r.user_id.clone(),
            r.scope,
            r.revoked,
            r.secret_hash.to_hex(),
        )
    };
    let read: Vec<_> = first.iter().chain(&rest).map(shown).collect();
    assert_eq!(read, made.iter().map(shown).collect::<Vec<_>>());
}
