//! The audit log: appended events read back whole, newest first in pages,
//! filtered by kind and key, other users' never shown, pruned by age, and
//! never updated.

use fal_core::{AuditEvent, AuditKind, KeyId, OsRandom, Timestamp, UserAgent, UserId};
use fal_store::{AuditCursor, AuditFilter, AuditStore, SqlStore};

fn event(kind: AuditKind, at: i64, user: &UserId, key: Option<KeyId>) -> AuditEvent {
    let mut e = AuditEvent::new(kind, Timestamp(at), Some(user.clone()));
    e.actor.user_id = Some(user.clone());
    e.actor.session_id = Some(format!("s{at}"));
    e.source = "203.0.113.7".parse().ok();
    e.user_agent = UserAgent::new("conformance/1.0");
    e.key_id = key;
    e.detail.insert("n".into(), serde_json::json!(at));
    e
}

/// Every page of `user`'s events under `filter`, newest first.
async fn all(s: &SqlStore, user: &UserId, filter: &AuditFilter, page: u32) -> Vec<AuditEvent> {
    let mut seen = Vec::new();
    let mut cursor: Option<AuditCursor> = None;
    loop {
        let p = s
            .list_audit(user, filter, page, cursor.as_ref())
            .await
            .unwrap();
        assert!(p.events.len() <= page as usize);
        seen.extend(p.events.into_iter().map(|e| e.event));
        match p.next_cursor {
            Some(c) => cursor = Some(AuditCursor::decode(&c.encode()).unwrap()),
            None => return seen,
        }
    }
}

pub async fn audit_events_are_listed_newest_first_in_pages(s: SqlStore) {
    let (u, other) = (
        UserId::generate(&OsRandom).unwrap(),
        UserId::generate(&OsRandom).unwrap(),
    );
    let key = KeyId::generate(&OsRandom).unwrap();
    let mut want = Vec::new();
    // Two events share each millisecond: ties go by order of appending.
    for i in 0..7 {
        let e = event(AuditKind::KeyGenerated, 100 + i / 2, &u, Some(key));
        s.append_audit(&e).await.unwrap();
        want.push(e);
    }
    s.append_audit(&event(AuditKind::KeyRevoked, 50, &other, Some(key)))
        .await
        .unwrap();
    want.reverse();
    let got = all(&s, &u, &AuditFilter::default(), 3).await;
    assert_eq!(got, want, "read back whole, newest first, without others'");
    assert_eq!(all(&s, &other, &AuditFilter::default(), 3).await.len(), 1);
}

pub async fn audit_events_filter_by_kind_and_key(s: SqlStore) {
    let u = UserId::generate(&OsRandom).unwrap();
    let (k1, k2) = (
        KeyId::generate(&OsRandom).unwrap(),
        KeyId::generate(&OsRandom).unwrap(),
    );
    s.append_audit(&event(AuditKind::KeyGenerated, 1, &u, Some(k1)))
        .await
        .unwrap();
    s.append_audit(&event(AuditKind::KeyGenerated, 2, &u, Some(k2)))
        .await
        .unwrap();
    s.append_audit(&event(AuditKind::KeyRevoked, 3, &u, Some(k1)))
        .await
        .unwrap();
    // Done with k2 (its actor), about no key.
    let mut signed = event(AuditKind::SessionSignedIn, 4, &u, None);
    signed.actor.key_id = Some(k2);
    s.append_audit(&signed).await.unwrap();
    let times = |events: Vec<AuditEvent>| -> Vec<i64> { events.iter().map(|e| e.at.0).collect() };
    let by_kind = AuditFilter {
        kind: Some(AuditKind::KeyGenerated),
        key_id: None,
    };
    assert_eq!(times(all(&s, &u, &by_kind, 10).await), [2, 1]);
    let by_key = |k| AuditFilter {
        kind: None,
        key_id: Some(k),
    };
    assert_eq!(times(all(&s, &u, &by_key(k1), 1).await), [3, 1]);
    assert_eq!(times(all(&s, &u, &by_key(k2), 10).await), [4, 2]);
    let both = AuditFilter {
        kind: Some(AuditKind::KeyRevoked),
        key_id: Some(k2),
    };
    assert!(all(&s, &u, &both, 10).await.is_empty());
}

pub async fn audit_events_are_pruned_by_age_and_never_updated(s: SqlStore) {
    let u = UserId::generate(&OsRandom).unwrap();
    for at in [10, 20, 30] {
        s.append_audit(&event(AuditKind::AppAdded, at, &u, None))
            .await
            .unwrap();
    }
    assert_eq!(s.prune_audit(Timestamp(20)).await.unwrap(), 1);
    assert_eq!(s.prune_audit(Timestamp(20)).await.unwrap(), 0);
    let left: Vec<i64> = all(&s, &u, &AuditFilter::default(), 10)
        .await
        .iter()
        .map(|e| e.at.0)
        .collect();
    assert_eq!(left, [30, 20]);
    // The database itself refuses to change an event.
    let changed = sqlx::query("UPDATE audit_events SET kind = 'key.revoked'")
        .execute(s.pool())
        .await;
    assert!(changed.is_err(), "an event was updated");
    assert_eq!(all(&s, &u, &AuditFilter::default(), 10).await.len(), 2);
}
