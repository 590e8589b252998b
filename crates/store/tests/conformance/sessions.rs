//! Conformance cases for sessions: the key they were opened with, spent
//! refresh tokens.

use super::*;

pub(crate) fn session(
    id: &str,
    user: &UserId,
    kind: SessionKind,
    key_id: Option<KeyId>,
    refresh_expires: i64,
) -> SessionRecord {
    SessionRecord {
        session_id: id.into(),
        user_id: user.clone(),
        kind,
        access_hash: format!("access-{id}"),
        refresh_hash: (kind == SessionKind::Cli).then(|| format!("refresh-{id}")),
        access_expires_at: Timestamp(1_000),
        refresh_expires_at: (kind == SessionKind::Cli).then_some(Timestamp(refresh_expires)),
        created_at: Timestamp(1),
        revoked: false,
        key_id,
        github_token: (kind == SessionKind::Cli).then(|| format!("sealed-{id}")),
    }
}

pub(crate) async fn sessions_end_with_the_key_they_were_opened_with(s: SqlStore) {
    let h = hasher();
    let u = user("s");
    s.create_user(&u).await.unwrap();
    let (k, _) = new_key(&h, &u.user_id, Scope::Admin, 2);
    let (other, _) = new_key(&h, &u.user_id, Scope::Admin, 3);
    s.create_key(&k).await.unwrap();
    s.create_key(&other).await.unwrap();
    let kid = k.record.key_id;
    let with_k = session("w1", &u.user_id, SessionKind::Web, Some(kid), 0);
    let with_other = session(
        "w2",
        &u.user_id,
        SessionKind::Web,
        Some(other.record.key_id),
        0,
    );
    let cli = session("c1", &u.user_id, SessionKind::Cli, None, 9_000);
    for x in [&with_k, &with_other, &cli] {
        s.create_session(x).await.unwrap();
    }
    // The new columns round-trip.
    assert_eq!(
        s.session_by_access("access-w1").await.unwrap(),
        Some(with_k.clone())
    );
    assert_eq!(
        s.session_by_refresh("refresh-c1").await.unwrap(),
        Some(cli.clone())
    );
    // By id, as a short-lived token's session is checked.
    assert_eq!(s.session_by_id("c1").await.unwrap(), Some(cli.clone()));
    assert_eq!(s.session_by_id("nope").await.unwrap(), None);
    assert!(s.revoke_key(&u.user_id, &kid, Timestamp(50)).await.unwrap());
    let state = |id: &'static str| {
        let s = s.clone();
        async move {
            s.session_by_access(&format!("access-{id}"))
                .await
                .unwrap()
                .unwrap()
                .revoked
        }
    };
    assert!(state("w1").await, "the key's session ended with it");
    assert!(!state("w2").await, "another key's session lives");
    assert!(!state("c1").await, "a session without a key lives");
}

pub(crate) async fn spent_refresh_tokens_are_recognised_then_pruned(s: SqlStore) {
    let u = user("r");
    s.create_user(&u).await.unwrap();
    let long = session("long", &u.user_id, SessionKind::Cli, None, 10_000);
    let short = session("short", &u.user_id, SessionKind::Cli, None, 100);
    s.create_session(&long).await.unwrap();
    s.create_session(&short).await.unwrap();
    assert_eq!(
        s.session_of_spent_refresh("refresh-long").await.unwrap(),
        None
    );
    assert!(
        s.rotate_session("refresh-short", "a2", "r2", Timestamp(90), Timestamp(50))
            .await
            .unwrap()
    );
    assert!(
        s.rotate_session("refresh-long", "a3", "r3", Timestamp(300), Timestamp(60))
            .await
            .unwrap()
    );
    // Spent tokens work once, and are recognised as spent.
    assert!(
        !s.rotate_session("refresh-long", "a4", "r4", Timestamp(300), Timestamp(70))
            .await
            .unwrap()
    );
    assert_eq!(
        s.session_of_spent_refresh("refresh-long")
            .await
            .unwrap()
            .as_deref(),
        Some("long")
    );
    assert_eq!(
        s.session_of_spent_refresh("refresh-short")
            .await
            .unwrap()
            .as_deref(),
        Some("short")
    );
    // A later rotation drops entries past their session's refresh expiry.
    assert!(
        s.rotate_session("r3", "a5", "r5", Timestamp(400), Timestamp(200))
            .await
            .unwrap()
    );
    assert_eq!(
        s.session_of_spent_refresh("refresh-short").await.unwrap(),
        None
    );
    assert_eq!(
        s.session_of_spent_refresh("r3").await.unwrap().as_deref(),
        Some("long")
    );
}
