//! The key change log keeps every server's key cache current with one
//! query per interval: a change made by another process is seen well
//! within the staleness bound, and a cached record is not read again just
//! because it is old while the log vouches for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fal_core::{KeyId, KeyRecord, ManualClock, Scope, SecretHasher, SystemClock, Timestamp};
use fal_server::auth::Verifier;
use fal_server::auth::key_feed::KeyFeed;
use fal_store::{KeyAdmin, KeyChange, KeyLookup, SqlStore, StoreError};

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn a_key_revoked_by_another_process_is_refused_within_a_second() {
    // A staleness bound of a minute: only the change log explains a
    // refusal within the two seconds allowed below.
    let app = spawn_app_with(
        |c| c.max_staleness = Duration::from_secs(60),
        Arc::new(SystemClock),
    )
    .await;
    let auth = app.key_for(&admin_user(&app).await, Scope::Api).await;
    let (status, _, _) = app
        .call(reqwest::Method::GET, "/auth/verify", Some(&auth), None)
        .await;
    assert_eq!(status, 204, "the key works and is now cached");

    // Another process (a second connection to the same database file).
    let other = app.store().await;
    let id: KeyId = auth[4..auth.find(':').unwrap()].parse().unwrap();
    let owner = other.key_record(&id).await.unwrap().unwrap().user_id;
    assert!(other.revoke_key(&owner, &id, Timestamp(5)).await.unwrap());
    other.close().await;

    let mut refused_after = None;
    for i in 0..40 {
        let (status, _, _) = app
            .call(reqwest::Method::GET, "/auth/verify", Some(&auth), None)
            .await;
        if status == 401 {
            refused_after = Some(i * 50);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ms = refused_after.expect("still accepted 2 s after another process revoked it");
    assert!(ms <= 1_500, "refused only after {ms} ms");
}

/// The bootstrap admin's user id, read from storage.
async fn admin_user(app: &crate::helpers::TestApp) -> String {
    let store = app.store().await;
    let id: KeyId = app.admin_id.parse().unwrap();
    let user = store.key_record(&id).await.unwrap().unwrap().user_id;
    store.close().await;
    user.as_str().to_owned()
}

/// A store that counts the records read.
struct Counting {
    inner: SqlStore,
    reads: AtomicUsize,
    uses_written: AtomicUsize,
}

#[async_trait]
impl KeyLookup for Counting {
    async fn key_record(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.key_record(key_id).await
    }
    async fn key_changes_after(&self, seq: i64, limit: u32) -> Result<Vec<KeyChange>, StoreError> {
        self.inner.key_changes_after(seq, limit).await
    }
    async fn last_key_change(&self) -> Result<i64, StoreError> {
        self.inner.last_key_change().await
    }
    async fn prune_key_changes(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.inner.prune_key_changes(before).await
    }
    async fn key_records_after(
        &self,
        after: Option<&KeyId>,
        limit: u32,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.key_records_after(after, limit).await
    }
    async fn record_key_use(&self, uses: &[(KeyId, Timestamp)]) -> Result<(), StoreError> {
        self.uses_written.fetch_add(uses.len(), Ordering::Relaxed);
        self.inner.record_key_use(uses).await
    }
    async fn add_key_usage(&self, rows: &[fal_store::HourlyUsage]) -> Result<(), StoreError> {
        self.inner.add_key_usage(rows).await
    }
    async fn prune_key_usage(&self, before: fal_core::Hour) -> Result<u64, StoreError> {
        self.inner.prune_key_usage(before).await
    }
}

#[tokio::test]
async fn old_cached_records_are_not_read_again_while_the_log_vouches_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open_sqlite(&dir.path().join("fal.db"), Timestamp(0))
        .await
        .unwrap();
    let pepper = fal_core::Pepper::generate(&fal_core::OsRandom).unwrap();
    let user = fal_store::testing::seed_user(&store, "ada", None)
        .await
        .unwrap();
    let key = fal_store::testing::seed_key(&store, &pepper, &user.user_id, Scope::Api, "k")
        .await
        .unwrap();
    let counting = Arc::new(Counting {
        inner: store.clone(),
        reads: AtomicUsize::new(0),
        uses_written: AtomicUsize::new(0),
    });
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
    let staleness = Duration::from_secs(5);
    let verifier = Arc::new(Verifier::new(
        SecretHasher::new(&pepper),
        counting.clone(),
        clock.clone(),
        1_000,
        staleness,
    ));
    let mut feed = KeyFeed::start(verifier.clone(), staleness).await.unwrap();
    let header = key.header();
    let verify = || verifier.authenticate(Some(&header));
    // The feed's start cached every key: no read.
    assert!(verify().await.is_ok());
    assert_eq!(counting.reads.load(Ordering::Relaxed), 0);

    // A minute later, the feed read to its end just now: no read.
    clock.advance_millis(60_000);
    feed.poll().await.unwrap();
    assert!(verify().await.is_ok());
    assert_eq!(
        counting.reads.load(Ordering::Relaxed),
        0,
        "read again despite the log"
    );

    // The feed falls silent: past the bound, the record is read again.
    clock.advance_millis(6_000);
    assert!(verify().await.is_ok());
    assert_eq!(counting.reads.load(Ordering::Relaxed), 1);

    // A change in the log drops the record at the next round.
    let id: KeyId = key.key_id.parse().unwrap();
    assert!(
        store
            .revoke_key(&user.user_id, &id, Timestamp(7))
            .await
            .unwrap()
    );
    feed.poll().await.unwrap();
    assert!(verify().await.is_err(), "a revoked key still verified");
    assert_eq!(counting.reads.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn made_up_key_ids_are_refused_without_reading_storage() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open_sqlite(&dir.path().join("fal.db"), Timestamp(0))
        .await
        .unwrap();
    let pepper = fal_core::Pepper::generate(&fal_core::OsRandom).unwrap();
    let hasher = SecretHasher::new(&pepper);
    let user = fal_store::testing::seed_user(&store, "ada", None)
        .await
        .unwrap();
    // A key whose id was minted before ids carried a tag (a random UUID).
    let legacy_secret = fal_core::KeySecret::generate(&fal_core::OsRandom).unwrap();
    let legacy_id = KeyId::generate(&fal_core::OsRandom).unwrap();
    assert!(!hasher.minted_here(&legacy_id));
    let legacy = |id: KeyId| fal_store::NewKey {
        record: KeyRecord {
            key_id: id,
            user_id: user.user_id.clone(),
            scope: Scope::Api,
            secret_hash: hasher.hash(&legacy_secret),
            revoked: false,
            rate_limit: None,
            expires_at: None,
            rolled: false,
        },
        alias: "old".into(),
        created_at: Timestamp(1),
        lifetime: None,
    };
    store.create_key(&legacy(legacy_id)).await.unwrap();
    let counting = Arc::new(Counting {
        inner: store.clone(),
        reads: AtomicUsize::new(0),
        uses_written: AtomicUsize::new(0),
    });
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
    let verifier = Arc::new(Verifier::new(
        hasher.clone(),
        counting.clone(),
        clock.clone(),
        1_000,
        Duration::from_secs(5),
    ));
    let reads = || counting.reads.load(Ordering::Relaxed);
    let header = |id: &KeyId| format!("Key {id}:{}", legacy_secret.expose());
    let made_up = KeyId::generate(&fal_core::OsRandom).unwrap();

    // Before the feed has listed the untagged ids, any id may exist.
    assert!(
        verifier
            .authenticate(Some(&header(&made_up)))
            .await
            .is_err()
    );
    assert_eq!(reads(), 1);

    let mut feed = KeyFeed::start(verifier.clone(), Duration::from_secs(5))
        .await
        .unwrap();
    for _ in 0..3 {
        let id = KeyId::generate(&fal_core::OsRandom).unwrap();
        let refused = verifier.authenticate(Some(&header(&id))).await;
        assert_eq!(refused, Err(fal_server::auth::AuthFailure::Invalid));
    }
    assert_eq!(reads(), 1, "a made-up id was looked up");
    // The old key still works (cached when the feed started), and so does
    // a key minted now, never seen before (its tag says it may exist).
    assert!(
        verifier
            .authenticate(Some(&header(&legacy_id)))
            .await
            .is_ok()
    );
    assert_eq!(reads(), 1);
    let fresh = fal_store::testing::seed_key(&store, &pepper, &user.user_id, Scope::Api, "new")
        .await
        .unwrap();
    assert!(verifier.authenticate(Some(&fresh.header())).await.is_ok());
    assert_eq!(reads(), 2);

    // An untagged key made after the start (by a server that predates the
    // tag) works once the feed has read its creation.
    let late_id = KeyId::generate(&fal_core::OsRandom).unwrap();
    store.create_key(&legacy(late_id)).await.unwrap();
    assert!(
        verifier
            .authenticate(Some(&header(&late_id)))
            .await
            .is_err()
    );
    feed.poll().await.unwrap();
    assert!(verifier.authenticate(Some(&header(&late_id))).await.is_ok());
}

#[tokio::test]
async fn a_key_in_constant_use_is_written_back_once_an_hour() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open_sqlite(&dir.path().join("fal.db"), Timestamp(0))
        .await
        .unwrap();
    let pepper = fal_core::Pepper::generate(&fal_core::OsRandom).unwrap();
    let user = fal_store::testing::seed_user(&store, "ada", None)
        .await
        .unwrap();
    let key = fal_store::testing::seed_key(&store, &pepper, &user.user_id, Scope::Api, "k")
        .await
        .unwrap();
    let counting = Arc::new(Counting {
        inner: store.clone(),
        reads: AtomicUsize::new(0),
        uses_written: AtomicUsize::new(0),
    });
    let clock = Arc::new(ManualClock::new(Timestamp(1_000_000)));
    let verifier = Verifier::new(
        SecretHasher::new(&pepper),
        counting.clone(),
        clock.clone(),
        1_000,
        Duration::from_secs(3_600),
    );
    let header = key.header();
    let written = || counting.uses_written.load(Ordering::Relaxed);
    // The first use is written at the next flush.
    assert!(verifier.authenticate(Some(&header)).await.is_ok());
    verifier.flush_usage().await;
    assert_eq!(written(), 1);
    // Uses for the next hour are not written again...
    for _ in 0..10 {
        clock.advance_millis(5 * 60 * 1000);
        assert!(verifier.authenticate(Some(&header)).await.is_ok());
        verifier.flush_usage().await;
    }
    assert_eq!(written(), 1);
    // ...the first one past it is.
    clock.advance_millis(11 * 60 * 1000);
    assert!(verifier.authenticate(Some(&header)).await.is_ok());
    verifier.flush_usage().await;
    assert_eq!(written(), 2);
    let listed = fal_store::KeyAdmin::list_keys(&store, &user.user_id, 10, None)
        .await
        .unwrap();
    assert_eq!(
        listed.keys[0].last_used_at,
        Some(Timestamp(1_000_000 + 61 * 60 * 1000))
    );
}
