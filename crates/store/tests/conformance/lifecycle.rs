//! Conformance cases for a key's lifecycle: its expiry and lifetime are
//! stored, read for verification and listed; a roll stores the new pair
//! like the old, ends the old one (and its dashboard sessions) at the end
//! of the grace, logs both keys, and refuses revoked, expired and already
//! rolled keys.

use fal_core::{Grace, RateLimit, Span};
use fal_store::RollOutcome;

use super::sessions::session;
use super::*;

const DAY: i64 = 86_400_000;

pub(crate) async fn a_keys_expiry_and_lifetime_are_stored_and_listed(s: SqlStore) {
    let h = hasher();
    let a = user("exp");
    s.create_user(&a).await.unwrap();
    let (mut life, _) = new_key(&h, &a.user_id, Scope::Api, 10);
    life.record.expires_at = Some(Timestamp(10 + 30 * DAY));
    life.lifetime = Some(Span::from_millis(30 * DAY));
    let (mut dated, _) = new_key(&h, &a.user_id, Scope::Admin, 11);
    dated.record.expires_at = Some(Timestamp(5 * DAY));
    let (never, _) = new_key(&h, &a.user_id, Scope::Api, 12);
    for k in [&life, &dated, &never] {
        s.create_key(k).await.unwrap();
    }
    for k in [&life, &dated, &never] {
        let read = s.key_record(&k.record.key_id).await.unwrap().unwrap();
        assert_eq!(read.expires_at, k.record.expires_at);
        assert!(!read.rolled);
        let listed = s
            .key_summary(&a.user_id, &k.record.key_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(listed.expires_at, k.record.expires_at);
        assert_eq!(listed.lifetime, k.lifetime);
        assert_eq!(listed.rolled_to, None);
    }
    let page = s.list_keys(&a.user_id, 10, None).await.unwrap();
    let expiries: Vec<_> = page.keys.iter().map(|k| k.expires_at).collect();
    assert_eq!(
        expiries,
        [
            None,
            Some(Timestamp(5 * DAY)),
            Some(Timestamp(10 + 30 * DAY))
        ]
    );
    // The records a cache is filled with carry it too.
    let all = s.key_records_after(None, 10).await.unwrap();
    let of = |id: KeyId| all.iter().find(|r| r.key_id == id).unwrap().expires_at;
    assert_eq!(of(dated.record.key_id), Some(Timestamp(5 * DAY)));
}

fn grace(s: &str) -> Grace {
    s.parse().unwrap()
}

async fn roll(s: &SqlStore, u: &User, id: KeyId, g: &str, at: i64) -> RollOutcome {
    let h = hasher();
    let new_id = KeyId::generate(&OsRandom).unwrap();
    let hash = h.hash(&KeySecret::generate(&OsRandom).unwrap());
    s.roll_key(&u.user_id, &id, new_id, hash, grace(g), Timestamp(at))
        .await
        .unwrap()
}

pub(crate) async fn a_roll_makes_a_like_pair_and_ends_the_old_after_its_grace(s: SqlStore) {
    let h = hasher();
    let a = user("roller");
    s.create_user(&a).await.unwrap();
    let (mut k, _) = new_key(&h, &a.user_id, Scope::Admin, 100);
    k.alias = "deploy".into();
    k.record.rate_limit = RateLimit::parse("5/min").ok();
    k.record.expires_at = Some(Timestamp(100 + 30 * DAY));
    k.lifetime = Some(Span::from_millis(30 * DAY));
    s.create_key(&k).await.unwrap();
    let old = k.record.key_id;
    let at = 100 + DAY;
    let mut web = session("web-old", &a.user_id, SessionKind::Web, Some(old), 0);
    web.access_expires_at = Timestamp(at + 12 * 3_600_000);
    s.create_session(&web).await.unwrap();
    let before = s.last_key_change().await.unwrap();
    let RollOutcome::Rolled { new, old_until } = roll(&s, &a, old, "1h", at).await else {
        panic!("not rolled")
    };
    assert_eq!(old_until, Timestamp(at + 3_600_000));
    // Like the old: alias, scope, rate limit; the lifetime again from now.
    assert_eq!(new.alias, "deploy");
    assert_eq!(new.record.scope, Scope::Admin);
    assert_eq!(new.record.rate_limit, k.record.rate_limit);
    assert_eq!(new.record.expires_at, Some(Timestamp(at + 30 * DAY)));
    let stored = s.key_record(&new.record.key_id).await.unwrap().unwrap();
    assert_eq!(stored.secret_hash, new.record.secret_hash);
    assert_eq!(stored.expires_at, new.record.expires_at);
    let listed = s
        .key_summary(&a.user_id, &new.record.key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.lifetime, k.lifetime);
    // The old pair: rolled, ending with its grace; its session with it.
    let old_rec = s.key_record(&old).await.unwrap().unwrap();
    assert!(old_rec.rolled && !old_rec.revoked);
    assert_eq!(old_rec.expires_at, Some(old_until));
    let old_listed = s.key_summary(&a.user_id, &old).await.unwrap().unwrap();
    assert_eq!(old_listed.rolled_to, Some(new.record.key_id));
    let web = s
        .session_by_access("access-web-old")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(web.access_expires_at, old_until);
    // Both keys are in the change log.
    let logged: Vec<KeyId> = s
        .key_changes_after(before, 10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.key_id)
        .collect();
    assert!(logged.contains(&old) && logged.contains(&new.record.key_id));

    // Rolling the new key does not move the old one's deadline.
    let at2 = at + 60_000;
    let RollOutcome::Rolled { new: third, .. } = roll(&s, &a, new.record.key_id, "2h", at2).await
    else {
        panic!("not rolled")
    };
    assert_eq!(
        s.key_record(&old).await.unwrap().unwrap().expires_at,
        Some(old_until)
    );
    assert_eq!(
        s.key_record(&new.record.key_id)
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        Some(Timestamp(at2 + 7_200_000))
    );
    assert_eq!(third.record.expires_at, Some(Timestamp(at2 + 30 * DAY)));
    // An already rolled key is not rolled again.
    assert!(matches!(
        roll(&s, &a, old, "0", at2).await,
        RollOutcome::AlreadyRolled(to) if to == new.record.key_id
    ));
}

pub(crate) async fn a_roll_keeps_a_date_and_refuses_dead_keys(s: SqlStore) {
    let h = hasher();
    let (a, b) = (user("dates"), user("other"));
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();
    let (mut dated, _) = new_key(&h, &a.user_id, Scope::Api, 1);
    dated.record.expires_at = Some(Timestamp(10 * DAY));
    let (never, _) = new_key(&h, &a.user_id, Scope::Api, 2);
    let (revoked, _) = new_key(&h, &a.user_id, Scope::Api, 3);
    for k in [&dated, &never, &revoked] {
        s.create_key(k).await.unwrap();
    }
    s.revoke_key(&a.user_id, &revoked.record.key_id, Timestamp(4))
        .await
        .unwrap();
    // Not bob's: not found, and nothing changes.
    assert!(matches!(
        roll(&s, &b, dated.record.key_id, "0", 5).await,
        RollOutcome::NotFound
    ));
    assert!(matches!(
        roll(&s, &a, revoked.record.key_id, "0", 5).await,
        RollOutcome::Revoked
    ));
    // A grace never lengthens a life: the old pair ends at its own date.
    let RollOutcome::Rolled { new, old_until } =
        roll(&s, &a, dated.record.key_id, "7d", 9 * DAY).await
    else {
        panic!("not rolled")
    };
    assert_eq!(old_until, Timestamp(10 * DAY));
    assert_eq!(
        new.record.expires_at,
        Some(Timestamp(10 * DAY)),
        "a date stays"
    );
    assert!(matches!(
        roll(&s, &a, new.record.key_id, "0", 10 * DAY).await,
        RollOutcome::Expired(t) if t == Timestamp(10 * DAY)
    ));
    // No expiry stays none; no grace ends the old pair at once.
    let RollOutcome::Rolled { new, old_until } = roll(&s, &a, never.record.key_id, "0", 6).await
    else {
        panic!("not rolled")
    };
    assert_eq!(new.record.expires_at, None);
    assert_eq!(old_until, Timestamp(6));
}
