//! Cost of failed-auth throttling on the request path: the check every
//! call makes before verification, while nobody is blocked (the usual
//! case), and while one address is (an attack under way); and the count
//! of one failure. The check of an accepted call writes nothing.
//!
//! Run: `cargo bench -p fal-server --bench throttle`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use fal_core::SystemClock;
use fal_server::throttle::{Throttle, ThrottleConfig, TrustedProxies};

fn bench(c: &mut Criterion) {
    let legit: IpAddr = "10.0.0.1".parse().unwrap();
    let attacker: IpAddr = "10.6.6.6".parse().unwrap();
    let quiet = Throttle::new(ThrottleConfig::default(), Arc::new(SystemClock));
    let attacked = Throttle::new(ThrottleConfig::default(), Arc::new(SystemClock));
    while attacked.check(attacker).is_ok() {
        attacked.failed(attacker);
    }
    let counting = Throttle::new(
        ThrottleConfig {
            failures: u32::MAX,
            ..ThrottleConfig::default()
        },
        Arc::new(SystemClock),
    );
    let proxies = TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap()]);
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let xff = [b"198.51.100.7, 10.0.0.1".as_slice()];

    let mut g = c.benchmark_group("throttle");
    g.bench_function("check_nobody_blocked", |b| {
        b.iter(|| black_box(quiet.check(black_box(legit))))
    });
    g.bench_function("check_while_one_address_is_blocked", |b| {
        b.iter(|| black_box(attacked.check(black_box(legit))))
    });
    g.bench_function("check_the_blocked_address", |b| {
        b.iter(|| black_box(attacked.check(black_box(attacker))))
    });
    g.bench_function("count_a_failure", |b| {
        b.iter(|| black_box(counting.failed(black_box(attacker))))
    });
    g.bench_function("client_behind_a_trusted_proxy", |b| {
        b.iter(|| black_box(proxies.client(black_box(peer), xff.into_iter())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
