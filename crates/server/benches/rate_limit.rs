//! Cost of a key's rate limit on the cached path: [`RateLimiter::take`]
//! alone (held here, and leased in a cluster), and a cached verification
//! of a limited key beside the same verification of an unlimited one.
//!
//! Run: `cargo bench -p fal-server --bench rate_limit`.
//! Target (issue 14): under 100 ns per call for the limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fal_core::header::{AuthHeader, Credentials, parse_authorization};
use fal_core::{KeyId, OsRandom, Pepper, RateLimit, Scope, SecretHasher, SystemClock, Timestamp};
use fal_server::auth::Verifier;
use fal_server::quota::RateLimiter;
use fal_store::testing::{seed_key, seed_user};
use fal_store::{KeyAdmin, SqlStore};

/// A limit no benchmark reaches: every call is admitted.
fn roomy() -> RateLimit {
    RateLimit::parse("1000000000/h").unwrap()
}

fn creds_of(header: &str) -> Credentials {
    match parse_authorization(header).unwrap() {
        AuthHeader::Key(c) => c,
        AuthHeader::Bearer(_) => unreachable!(),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp(1_800_000_000_000);
    let key = KeyId::generate(&OsRandom).unwrap();

    let roomy = roomy();
    let mut g = c.benchmark_group("rate_limit");
    let local = RateLimiter::local(1_000_000);
    g.bench_function("take_held_here", |b| {
        b.iter(|| black_box(local.take(black_box(&key), black_box(roomy), now).unwrap()))
    });
    // In a cluster, once the first lease is answered (a tenth of the limit
    // at a time), calls are taken from it.
    let (shared, mut queue) = RateLimiter::shared(1_000_000);
    shared.take(&key, roomy, now).unwrap();
    let lease = queue.try_recv().unwrap();
    lease.answer(Some(lease.ask.adds()));
    g.bench_function("take_leased", |b| {
        b.iter(|| black_box(shared.take(black_box(&key), black_box(roomy), now).unwrap()))
    });
    // The same verification, for a key without a limit and one with.
    let pepper = Pepper::generate(&OsRandom).unwrap();
    let hasher = SecretHasher::new(&pepper);
    let (store, free, limited) = rt.block_on(async {
        let store = SqlStore::open_sqlite(&dir.path().join("bench.db"), Timestamp(0))
            .await
            .unwrap();
        let user = seed_user(&store, "bench", None).await.unwrap();
        let free = seed_key(&store, &pepper, &user.user_id, Scope::Api, "")
            .await
            .unwrap();
        let limited = seed_key(&store, &pepper, &user.user_id, Scope::Api, "")
            .await
            .unwrap();
        let id = limited.key_id.parse().unwrap();
        let set = store.set_rate_limit(&user.user_id, &id, Some(roomy), Timestamp(1));
        assert!(set.await.unwrap());
        (store, free.header(), limited.header())
    });
    let verifier = Verifier::new(
        hasher,
        Arc::new(store),
        Arc::new(SystemClock),
        10_000,
        Duration::from_secs(3600),
    );
    let (free, limited) = (creds_of(&free), creds_of(&limited));
    for creds in [&free, &limited] {
        rt.block_on(verifier.verify(creds)).unwrap();
    }
    assert!(
        verifier
            .verify_cached(&free)
            .unwrap()
            .unwrap()
            .quota
            .is_none()
    );
    assert!(
        verifier
            .verify_cached(&limited)
            .unwrap()
            .unwrap()
            .quota
            .is_some()
    );
    g.bench_function("cached_verify_unlimited", |b| {
        b.iter(|| black_box(verifier.verify_cached(black_box(&free)).unwrap().unwrap()))
    });
    g.bench_function("cached_verify_limited", |b| {
        b.iter(|| {
            black_box(
                verifier
                    .verify_cached(black_box(&limited))
                    .unwrap()
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
