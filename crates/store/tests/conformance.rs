//! One storage conformance suite, run unchanged against SQLite and PostgreSQL.
//!
//! SQLite cases use a fresh file each. PostgreSQL cases each create their
//! own database on the server named by `FAL_TEST_DATABASE_URL`; without that
//! variable they print a loud SKIPPED line (and in CI, where `CI` is set,
//! they fail instead, so they can never silently not run there).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;

#[path = "conformance/audit.rs"]
mod audit;
#[path = "conformance/key_changes.rs"]
mod key_changes;
#[path = "conformance/leaks.rs"]
mod leaks;
#[path = "conformance/lifecycle.rs"]
mod lifecycle;
#[path = "conformance/queue.rs"]
mod queue;
#[path = "conformance/queue_batches.rs"]
mod queue_batches;
#[path = "conformance/rate_limits.rs"]
mod rate_limits;
#[path = "conformance/sessions.rs"]
mod sessions;
#[path = "conformance/usage.rs"]
mod usage;
#[path = "conformance/users.rs"]
mod users;

use audit::*;
use key_changes::*;
use leaks::*;
use lifecycle::*;
use queue::*;
use queue_batches::*;
use rate_limits::*;
use sessions::*;
use usage::*;
use users::*;

use fal_core::{
    KeyId, KeyRecord, KeySecret, OsRandom, Pepper, Scope, SecretHasher, Timestamp, UserId,
};
use fal_store::{
    AppAdmin, AppLookup, AppRecord, Cursor, KeyAdmin, KeyLookup, MetaStore, NewKey, SessionKind,
    SessionRecord, SessionStore, SqlStore, StoreError, User, UserAdmin, UserStatus, UserStore,
};

/// Keeps a test's database alive (the temp dir) until the test ends.
enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { base: String, url: String },
}

async fn sqlite_store() -> (SqlStore, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open_sqlite(&dir.path().join("fal.db"), Timestamp(0))
        .await
        .unwrap();
    (store, Guard::Sqlite(dir))
}

async fn postgres_store(base: &str) -> (SqlStore, Guard) {
    let url = fal_store::testing::create_database(base, "fal_conf")
        .await
        .unwrap();
    let store = SqlStore::open(&url, Timestamp(0)).await.unwrap();
    let guard = Guard::Postgres {
        base: base.to_owned(),
        url,
    };
    (store, guard)
}

async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let (store, _guard) = sqlite_store().await;
    case(store).await;
}

async fn on_postgres<F, Fut>(name: &str, case: F)
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(base) = fal_store::testing::postgres_url_or_skip(name) else {
        return;
    };
    let (store, guard) = postgres_store(&base).await;
    case(store.clone()).await;
    store.close().await;
    // Drop the case's database so repeated runs do not pile them up.
    if let Guard::Postgres { base, url } = guard {
        fal_store::testing::drop_database(&base, &url)
            .await
            .unwrap();
    }
}

/// Runs one case on both backends, as two tests.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::on_sqlite(super::$name).await }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::on_postgres(stringify!($name), super::$name).await }
        )* }
    };
}

conformance!(
    keys_round_trip,
    listing_pages_newest_first,
    users_see_only_their_own_keys,
    revocation_is_idempotent_and_kept,
    bootstrap_happens_once,
    meta_first_writer_wins,
    key_use_only_moves_forward,
    concurrent_creates_lose_nothing,
    duplicate_key_id_is_a_conflict,
    apps_round_trip,
    sessions_end_with_the_key_they_were_opened_with,
    spent_refresh_tokens_are_recognised_then_pruned,
    disabling_a_user_revokes_everything_at_once,
    disabling_works_while_other_writes_go_on,
    every_key_change_is_logged_in_order,
    records_can_be_read_in_pages,
    a_keys_rate_limit_is_kept_and_changed_by_its_owner,
    rate_counts_add_up_under_concurrent_leases,
    queued_requests_are_claimed_in_order_and_completed_once,
    a_batch_of_requests_is_stored_all_or_none,
    the_position_given_at_submit_is_the_counted_one,
    cancels_depend_on_where_the_request_is,
    concurrent_claimers_each_get_a_different_request,
    an_apps_running_requests_are_capped_across_claimers,
    a_batch_claim_takes_requests_in_queue_order_up_to_its_room,
    dead_leases_are_taken_over_only_when_asked,
    concurrent_batch_claimers_share_the_limit_and_the_requests,
    a_batch_of_answers_completes_only_what_the_worker_holds,
    keys_are_found_by_their_secret_hash_only,
    audit_events_are_listed_newest_first_in_pages,
    audit_events_filter_by_kind_and_key,
    audit_events_are_pruned_by_age_and_never_updated,
    a_keys_expiry_and_lifetime_are_stored_and_listed,
    a_roll_makes_a_like_pair_and_ends_the_old_after_its_grace,
    a_roll_keeps_a_date_and_refuses_dead_keys,
    usage_adds_up_and_only_its_owner_reads_it,
    usage_batches_from_many_writers_add_up,
    usage_older_than_the_cutoff_is_pruned,
);

fn hasher() -> SecretHasher {
    SecretHasher::new(&Pepper::generate(&OsRandom).unwrap())
}

fn user(n: &str) -> User {
    User {
        user_id: UserId::generate(&OsRandom).unwrap(),
        nickname: n.into(),
        full_name: format!("{n} Example"),
        github_id: None,
        created_at: Timestamp(1),
    }
}

fn new_key(h: &SecretHasher, owner: &UserId, scope: Scope, at: i64) -> (NewKey, KeySecret) {
    let secret = KeySecret::generate(&OsRandom).unwrap();
    let key = NewKey {
        record: KeyRecord {
            key_id: KeyId::generate(&OsRandom).unwrap(),
            user_id: owner.clone(),
            scope,
            secret_hash: h.hash(&secret),
            revoked: false,
            rate_limit: None,
            expires_at: None,
            rolled: false,
        },
        alias: format!("key at {at}"),
        created_at: Timestamp(at),
        lifetime: None,
    };
    (key, secret)
}

async fn keys_round_trip(s: SqlStore) {
    let h = hasher();
    let u = user("ada");
    s.create_user(&u).await.unwrap();
    assert_eq!(s.user(&u.user_id).await.unwrap(), Some(u.clone()));
    let (k, secret) = new_key(&h, &u.user_id, Scope::Admin, 10);
    s.create_key(&k).await.unwrap();
    let rec = s.key_record(&k.record.key_id).await.unwrap().unwrap();
    assert_eq!(rec.user_id, u.user_id);
    assert_eq!(rec.scope, Scope::Admin);
    assert!(!rec.revoked);
    assert!(h.verify(&secret, &rec.secret_hash));
    let unknown = KeyId::generate(&OsRandom).unwrap();
    assert!(s.key_record(&unknown).await.unwrap().is_none());
}

async fn listing_pages_newest_first(s: SqlStore) {
    let h = hasher();
    let u = user("bob");
    s.create_user(&u).await.unwrap();
    let mut ids = Vec::new();
    // Two keys share each millisecond, so ties are broken by key id.
    for i in 0..7 {
        let (k, _) = new_key(&h, &u.user_id, Scope::Api, 100 + i / 2);
        s.create_key(&k).await.unwrap();
        ids.push((k.created_at, k.record.key_id));
    }
    ids.sort();
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = s.list_keys(&u.user_id, 3, cursor.as_ref()).await.unwrap();
        assert!(page.keys.len() <= 3);
        seen.extend(page.keys.iter().map(|k| (k.created_at, k.key_id)));
        match page.next_cursor {
            Some(c) => cursor = Some(Cursor::decode(&c.encode()).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

async fn users_see_only_their_own_keys(s: SqlStore) {
    let h = hasher();
    let (a, b) = (user("a"), user("b"));
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();
    let (ka, _) = new_key(&h, &a.user_id, Scope::Api, 5);
    s.create_key(&ka).await.unwrap();
    assert!(
        s.list_keys(&b.user_id, 10, None)
            .await
            .unwrap()
            .keys
            .is_empty()
    );
    // b cannot revoke a's key, and it stays valid.
    assert!(
        !s.revoke_key(&b.user_id, &ka.record.key_id, Timestamp(6))
            .await
            .unwrap()
    );
    assert!(
        !s.key_record(&ka.record.key_id)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert_eq!(
        s.list_keys(&a.user_id, 10, None).await.unwrap().keys.len(),
        1
    );
}

async fn revocation_is_idempotent_and_kept(s: SqlStore) {
    let h = hasher();
    let u = user("c");
    s.create_user(&u).await.unwrap();
    let (k, _) = new_key(&h, &u.user_id, Scope::Api, 5);
    s.create_key(&k).await.unwrap();
    assert!(
        s.revoke_key(&u.user_id, &k.record.key_id, Timestamp(6))
            .await
            .unwrap()
    );
    assert!(
        s.revoke_key(&u.user_id, &k.record.key_id, Timestamp(7))
            .await
            .unwrap()
    );
    assert!(
        s.key_record(&k.record.key_id)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        s.list_keys(&u.user_id, 10, None)
            .await
            .unwrap()
            .keys
            .is_empty()
    );
    let unknown = KeyId::generate(&OsRandom).unwrap();
    assert!(
        !s.revoke_key(&u.user_id, &unknown, Timestamp(8))
            .await
            .unwrap()
    );
}

async fn bootstrap_happens_once(s: SqlStore) {
    let h = hasher();
    assert_eq!(s.bootstrap_user().await.unwrap(), None);
    let first = user("admin");
    let (k1, _) = new_key(&h, &first.user_id, Scope::Admin, 1);
    assert!(s.create_bootstrap(&first, &k1).await.unwrap());
    let second = user("admin2");
    let (k2, _) = new_key(&h, &second.user_id, Scope::Admin, 2);
    assert!(!s.create_bootstrap(&second, &k2).await.unwrap());
    assert_eq!(
        s.bootstrap_user().await.unwrap(),
        Some(first.user_id.clone())
    );
    assert!(s.key_record(&k2.record.key_id).await.unwrap().is_none());
    assert!(s.user(&second.user_id).await.unwrap().is_none());
}

async fn meta_first_writer_wins(s: SqlStore) {
    assert_eq!(s.meta("x").await.unwrap(), None);
    assert_eq!(s.meta_set_if_absent("x", "one").await.unwrap(), "one");
    assert_eq!(s.meta_set_if_absent("x", "two").await.unwrap(), "one");
    assert_eq!(s.meta("x").await.unwrap().as_deref(), Some("one"));
}

async fn key_use_only_moves_forward(s: SqlStore) {
    let h = hasher();
    let u = user("d");
    s.create_user(&u).await.unwrap();
    let (k, _) = new_key(&h, &u.user_id, Scope::Api, 5);
    s.create_key(&k).await.unwrap();
    let id = k.record.key_id;
    s.record_key_use(&[(id, Timestamp(50))]).await.unwrap();
    s.record_key_use(&[(id, Timestamp(40))]).await.unwrap();
    let listed = s.list_keys(&u.user_id, 10, None).await.unwrap();
    assert_eq!(listed.keys[0].last_used_at, Some(Timestamp(50)));
}

async fn concurrent_creates_lose_nothing(s: SqlStore) {
    let h = hasher();
    let u = user("e");
    s.create_user(&u).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (s, h, uid) = (s.clone(), h.clone(), u.user_id.clone());
        tasks.push(tokio::spawn(async move {
            let (k, _) = new_key(&h, &uid, Scope::Api, 1000 + i);
            s.create_key(&k).await.unwrap();
            k.record.key_id
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        created.push(t.await.unwrap());
    }
    let page = s.list_keys(&u.user_id, 100, None).await.unwrap();
    let mut listed: Vec<_> = page.keys.iter().map(|k| k.key_id).collect();
    listed.sort();
    created.sort();
    assert_eq!(listed, created);
}

async fn duplicate_key_id_is_a_conflict(s: SqlStore) {
    let h = hasher();
    let u = user("f");
    s.create_user(&u).await.unwrap();
    let (k, _) = new_key(&h, &u.user_id, Scope::Api, 5);
    s.create_key(&k).await.unwrap();
    let err = s.create_key(&k).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fal.db");
    let s = SqlStore::open_sqlite(&path, Timestamp(0)).await.unwrap();
    sqlx::query("INSERT INTO fal_schema_version (version, applied_at) VALUES (999, 0)")
        .execute(s.pool())
        .await
        .unwrap();
    s.close().await;
    let err = SqlStore::open_sqlite(&path, Timestamp(0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade fal"));
}

async fn apps_round_trip(s: SqlStore) {
    let u = user("g");
    s.create_user(&u).await.unwrap();
    let app = |owner: &str, name: &str| AppRecord {
        owner: owner.into(),
        name: name.into(),
        upstream: format!("http://127.0.0.1:9/{name}"),
        timeout_ms: 1500,
        concurrency: (name == "zeta").then_some(3),
        created_by: u.user_id.clone(),
        created_at: Timestamp(3),
    };
    s.create_app(&app("fal-ai", "echo")).await.unwrap();
    s.create_app(&app("acme", "zeta")).await.unwrap();
    s.create_app(&app("acme", "alpha")).await.unwrap();
    assert_eq!(
        s.app("fal-ai", "echo").await.unwrap(),
        Some(app("fal-ai", "echo"))
    );
    assert_eq!(s.app("fal-ai", "nope").await.unwrap(), None);
    let err = s.create_app(&app("fal-ai", "echo")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let names: Vec<_> = s
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| format!("{}/{}", a.owner, a.name))
        .collect();
    assert_eq!(names, ["acme/alpha", "acme/zeta", "fal-ai/echo"]);
    // Only its creator's delete removes an app when a creator is named.
    let other = user("h");
    s.create_user(&other).await.unwrap();
    assert!(
        !s.delete_app("acme", "zeta", Some(&other.user_id))
            .await
            .unwrap()
    );
    assert!(s.app("acme", "zeta").await.unwrap().is_some());
    assert!(
        s.delete_app("acme", "zeta", Some(&u.user_id))
            .await
            .unwrap()
    );
    assert!(!s.delete_app("acme", "zeta", None).await.unwrap());
    assert!(s.delete_app("acme", "alpha", None).await.unwrap());
    assert_eq!(s.list_apps().await.unwrap().len(), 1);
}

/// A key's secret is shown once: its row must survive a power cut, which
/// SQLite in WAL mode promises only with `synchronous = FULL` (2), not
/// `NORMAL` (1). Every pooled connection (any of them may create a key)
/// runs with it.
#[tokio::test]
async fn sqlite_writes_are_durable_on_every_connection() {
    let (store, _guard) = sqlite_store().await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = store.pool().acquire().await.unwrap();
        let mode: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(mode, 2, "synchronous must be FULL");
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        held.push(conn);
    }
}
