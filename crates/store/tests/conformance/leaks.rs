//! Conformance cases for finding keys by their secret's hash (leaked-key
//! revocation): only the key whose secret it is, revoked or not.

use fal_store::LeakedKeys;

use super::*;

pub(crate) async fn keys_are_found_by_their_secret_hash_only(s: SqlStore) {
    let h = hasher();
    let (a, b) = (user("alice"), user("bob"));
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();
    let (ka, secret_a) = new_key(&h, &a.user_id, Scope::Api, 10);
    let (kb, secret_b) = new_key(&h, &b.user_id, Scope::Admin, 11);
    s.create_key(&ka).await.unwrap();
    s.create_key(&kb).await.unwrap();

    let shown = |found: Vec<KeyRecord>| -> Vec<(KeyId, UserId, Scope, bool)> {
        found
            .into_iter()
            .map(|r| (r.key_id, r.user_id, r.scope, r.revoked))
            .collect()
    };
    let found = s.keys_with_secret_hash(&h.hash(&secret_a)).await.unwrap();
    assert_eq!(
        shown(found),
        vec![(ka.record.key_id, a.user_id.clone(), Scope::Api, false)]
    );
    let found = s.keys_with_secret_hash(&h.hash(&secret_b)).await.unwrap();
    assert_eq!(
        shown(found),
        vec![(kb.record.key_id, b.user_id.clone(), Scope::Admin, false)]
    );

    // A secret nobody holds, and a real one hashed under another pepper,
    // find nothing.
    let stranger = KeySecret::generate(&OsRandom).unwrap();
    assert!(
        s.keys_with_secret_hash(&h.hash(&stranger))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.keys_with_secret_hash(&hasher().hash(&secret_a))
            .await
            .unwrap()
            .is_empty()
    );

    // A revoked key is still found, marked revoked: revoking it again is
    // how a report of an old leak is answered.
    assert!(
        s.revoke_key(&a.user_id, &ka.record.key_id, Timestamp(20))
            .await
            .unwrap()
    );
    let found = s.keys_with_secret_hash(&h.hash(&secret_a)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key_id, ka.record.key_id);
    assert!(found[0].revoked);
    let other = s.keys_with_secret_hash(&h.hash(&secret_b)).await.unwrap();
    assert!(!other[0].revoked, "revoking one key touched another");
}
