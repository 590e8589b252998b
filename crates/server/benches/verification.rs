//! Cost of verifying a key: the keyed hash alone, a cached verification
//! (parse + cache lookup + keyed hash + constant-time compare + use
//! tracking; also for a key that expires, whose expiry is checked on
//! every use), and one full `GET /users/current` round trip over loopback.
//!
//! Run: `cargo bench -p fal-server --bench verification`.
//! Target (issue 2): cached verification within 3x the keyed hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fal_core::header::{AuthHeader, parse_authorization};
use fal_core::{OsRandom, Pepper, Scope, SecretHasher, SystemClock, Timestamp};
use fal_server::auth::Verifier;
use fal_server::{App, Config};
use fal_store::SqlStore;
use fal_store::testing::{seed_key, seed_user};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // A store with one key, and a verifier over it.
    let pepper = Pepper::generate(&OsRandom).unwrap();
    let hasher = SecretHasher::new(&pepper);
    let (store, header, expiring_header) = rt.block_on(async {
        let store = SqlStore::open_sqlite(&dir.path().join("bench.db"), Timestamp(0))
            .await
            .unwrap();
        let user = seed_user(&store, "bench", None).await.unwrap();
        let key = seed_key(&store, &pepper, &user.user_id, Scope::Api, "")
            .await
            .unwrap();
        // A second key that expires (far in the future): the expiry is
        // checked on every cached use.
        let (mut record, secret) =
            fal_core::mint_key(&OsRandom, &hasher, &user.user_id, Scope::Api).unwrap();
        record.expires_at = Some(Timestamp(i64::MAX / 2));
        let expiring = format!("Key {}:{}", record.key_id, secret.expose());
        let new = fal_store::NewKey {
            record,
            alias: "expiring".into(),
            created_at: Timestamp(1),
            lifetime: None,
        };
        fal_store::KeyAdmin::create_key(&store, &new).await.unwrap();
        (store, key.header(), expiring)
    });
    let verifier = Verifier::new(
        hasher.clone(),
        Arc::new(store),
        Arc::new(SystemClock),
        10_000,
        Duration::from_secs(3600),
    );
    let creds = match parse_authorization(&header).unwrap() {
        AuthHeader::Key(c) => c,
        AuthHeader::Bearer(_) => unreachable!(),
    };
    rt.block_on(verifier.verify(&creds)).unwrap();
    let AuthHeader::Key(expiring) = parse_authorization(&expiring_header).unwrap() else {
        unreachable!()
    };
    rt.block_on(verifier.verify(&expiring)).unwrap();

    let mut g = c.benchmark_group("verification");
    g.bench_function("keyed_hash_only", |b| {
        b.iter(|| black_box(hasher.hash(black_box(&creds.secret))))
    });
    g.bench_function("parse_header_only", |b| {
        b.iter(|| black_box(parse_authorization(black_box(&header)).unwrap()))
    });
    g.bench_function("cached_verify_preparsed", |b| {
        b.iter(|| black_box(verifier.verify_cached(black_box(&creds)).unwrap().unwrap()))
    });
    g.bench_function("cached_verify_preparsed_expiring_key", |b| {
        b.iter(|| {
            black_box(
                verifier
                    .verify_cached(black_box(&expiring))
                    .unwrap()
                    .unwrap(),
            )
        })
    });
    g.bench_function("cached_verify", |b| {
        b.iter(|| {
            let AuthHeader::Key(creds) = parse_authorization(black_box(&header)).unwrap() else {
                unreachable!()
            };
            black_box(verifier.verify_cached(&creds).unwrap().unwrap())
        })
    });
    g.finish();

    // One full round trip: HTTP over loopback, routing, verification, user lookup.
    let (server, admin_header) = rt.block_on(async {
        let mut config = Config::new(dir.path().join("server"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        let mut app = App::build(config, Arc::new(SystemClock), Arc::new(OsRandom))
            .await
            .unwrap();
        let key = app.take_bootstrap_key().unwrap();
        let header = format!("Key {}:{}", key.key_id, key.secret.expose());
        (app.spawn().await.unwrap(), header)
    });
    let http = fal_client::http_client();
    let url = format!("{}/users/current", server.url());
    c.bench_function("round_trip/users_current", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = http
                    .get(&url)
                    .header("authorization", &admin_header)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                black_box(r.bytes().await.unwrap())
            })
        })
    });
    rt.block_on(server.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);
