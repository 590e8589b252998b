//! Conformance cases for users: disabling someone revokes everything.

use super::*;

pub(crate) async fn disabling_a_user_revokes_everything_at_once(s: SqlStore) {
    let h = hasher();
    let (mut a, b) = (user("alice"), user("bob"));
    a.github_id = Some(11);
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();
    let (ka1, _) = new_key(&h, &a.user_id, Scope::Admin, 5);
    let (ka2, _) = new_key(&h, &a.user_id, Scope::Api, 6);
    let (kb, _) = new_key(&h, &b.user_id, Scope::Api, 7);
    for k in [&ka1, &ka2, &kb] {
        s.create_key(k).await.unwrap();
    }
    s.revoke_key(&a.user_id, &ka2.record.key_id, Timestamp(8))
        .await
        .unwrap();
    let session = |user: &User, n: &str| SessionRecord {
        session_id: format!("s-{n}"),
        user_id: user.user_id.clone(),
        kind: SessionKind::Cli,
        access_hash: format!("a-{n}"),
        refresh_hash: Some(format!("r-{n}")),
        access_expires_at: Timestamp(1_000_000),
        refresh_expires_at: Some(Timestamp(2_000_000)),
        created_at: Timestamp(9),
        revoked: false,
        key_id: None,
        github_token: None,
    };
    s.create_session(&session(&a, "a")).await.unwrap();
    s.create_session(&session(&b, "b")).await.unwrap();

    let listed = s.list_users().await.unwrap();
    let of = |id: &UserId| listed.iter().find(|u| &u.user.user_id == id).unwrap();
    assert_eq!(of(&a.user_id).active_keys, 1);
    assert_eq!(of(&a.user_id).disabled_at, None);
    assert_eq!(s.users_by_nickname("ALICE").await.unwrap(), vec![a.clone()]);
    assert!(s.users_by_nickname("carol").await.unwrap().is_empty());
    assert_eq!(s.disabled_at(&a.user_id).await.unwrap(), None);

    let done = s
        .disable_user(&a.user_id, Timestamp(50))
        .await
        .unwrap()
        .unwrap();
    // Only the key still live is reported (the other was revoked before).
    assert_eq!(done.revoked_keys, vec![ka1.record.key_id]);
    assert_eq!(done.revoked_sessions, 1);
    assert_eq!(
        s.disabled_at(&a.user_id).await.unwrap(),
        Some(Timestamp(50))
    );
    assert!(
        s.key_record(&ka1.record.key_id)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(s.session_by_access("a-a").await.unwrap().unwrap().revoked);
    // Bob keeps everything.
    assert!(
        !s.key_record(&kb.record.key_id)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(!s.session_by_access("a-b").await.unwrap().unwrap().revoked);
    assert_eq!(s.disabled_at(&b.user_id).await.unwrap(), None);
    // Again: nothing left to revoke, the first time stays recorded.
    let again = s
        .disable_user(&a.user_id, Timestamp(60))
        .await
        .unwrap()
        .unwrap();
    assert!(again.revoked_keys.is_empty());
    assert_eq!(
        s.disabled_at(&a.user_id).await.unwrap(),
        Some(Timestamp(50))
    );
    let listed = s.list_users().await.unwrap();
    let a_now = listed.iter().find(|u| u.user.user_id == a.user_id).unwrap();
    assert_eq!(
        (a_now.active_keys, a_now.disabled_at),
        (0, Some(Timestamp(50)))
    );
    let unknown = UserId::generate(&OsRandom).unwrap();
    assert_eq!(s.disable_user(&unknown, Timestamp(70)).await.unwrap(), None);
}

/// The server flushes `last_used_at` while an operator disables someone:
/// the disabling must not fail on a concurrent commit (SQLite's lock upgrade).
pub(crate) async fn disabling_works_while_other_writes_go_on(s: SqlStore) {
    let h = hasher();
    let busy = user("busy");
    s.create_user(&busy).await.unwrap();
    let (k, _) = new_key(&h, &busy.user_id, Scope::Api, 1);
    s.create_key(&k).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, stop, id) = (s.clone(), stop.clone(), k.record.key_id);
        tokio::spawn(async move {
            let mut t = 10;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                t += 1;
                s.record_key_use(&[(id, Timestamp(t))]).await.unwrap();
            }
        })
    };
    for i in 0..30 {
        let u = user(&format!("u{i}"));
        s.create_user(&u).await.unwrap();
        let (k, _) = new_key(&h, &u.user_id, Scope::Api, 2);
        s.create_key(&k).await.unwrap();
        let done = s.disable_user(&u.user_id, Timestamp(100)).await.unwrap();
        assert_eq!(done.unwrap().revoked_keys.len(), 1);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
}
