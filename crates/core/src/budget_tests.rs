use super::*;
use crate::rate::RateLimit;

fn limit(text: &str) -> RateLimit {
    RateLimit::parse(text).unwrap()
}

#[test]
fn alone_a_server_admits_exactly_the_limit_per_window() {
    let l = limit("5/s");
    let mut b = Budget::new(l, Leasing::Local, 10_000);
    let takes: Vec<Take> = (0..8).map(|i| b.take(10_000 + i, l)).collect();
    let admitted: Vec<bool> = takes.iter().map(|t| t.admitted).collect();
    assert_eq!(
        admitted,
        [true, true, true, true, true, false, false, false]
    );
    assert!(
        takes.iter().all(|t| t.ask.is_none()),
        "alone, nothing to ask"
    );
    let remaining: Vec<u32> = takes.iter().map(|t| t.quota.remaining).collect();
    assert_eq!(remaining, [4, 3, 2, 1, 0, 0, 0, 0]);
    assert_eq!(takes[5].quota.limit, 5);
    assert_eq!(takes[5].retry_after_secs, 1);
    // The next window starts afresh.
    assert!(b.take(11_000, l).admitted);
}

#[test]
fn a_call_given_back_can_be_taken_again() {
    let l = limit("1/s");
    let mut b = Budget::new(l, Leasing::Local, 0);
    assert!(b.take(0, l).admitted);
    b.give_back(1);
    assert!(b.take(2, l).admitted);
    assert!(!b.take(3, l).admitted);
    b.give_back(1_000); // another window: nothing to give back
    assert!(!b.take(4, l).admitted);
}

#[test]
fn reset_counts_whole_seconds_to_the_windows_end() {
    let l = limit("2/min");
    let mut b = Budget::new(l, Leasing::Local, 60_000);
    assert_eq!(b.take(60_000, l).quota.reset_secs, 60);
    assert_eq!(b.take(60_001, l).quota.reset_secs, 60);
    let refused = b.take(119_500, l);
    assert!(!refused.admitted);
    assert_eq!((refused.quota.reset_secs, refused.retry_after_secs), (1, 1));
    assert_eq!(b.take(75_000, limit("2/min")).quota.reset_secs, 45);
}

#[test]
fn a_changed_limit_applies_from_the_next_call() {
    let mut b = Budget::new(limit("2/h"), Leasing::Local, 0);
    assert!(b.take(1, limit("2/h")).admitted);
    assert!(b.take(2, limit("2/h")).admitted);
    assert!(!b.take(3, limit("2/h")).admitted);
    assert!(b.take(4, limit("3/h")).admitted, "raised within the window");
    assert!(!b.take(5, limit("3/h")).admitted);
    // A new period starts a new window.
    assert!(b.take(6, limit("3/s")).admitted);
}

#[test]
fn the_first_call_goes_on_trust_and_asks() {
    let l = limit("100/s");
    let mut b = Budget::new(l, Leasing::Shared, 0);
    let t = b.take(0, l);
    assert!(t.admitted);
    let ask = t.ask.expect("asks at once");
    assert_eq!(
        ask,
        Ask {
            window: 0,
            period_ms: 1000,
            debt: 1,
            want: 10
        }
    );
    // On trust up to a tenth of the limit, no second ask meanwhile.
    for i in 1..10 {
        let t = b.take(i, l);
        assert!(t.admitted, "call {i}");
        assert!(t.ask.is_none());
    }
    let refused = b.take(10, l);
    assert!(!refused.admitted, "a tenth on trust, no more");
    assert_eq!(refused.retry_after_secs, 1, "more is being leased");
    // The store had nothing before us: 11 counted (the first call, and 10
    // leased), of which the 9 calls on trust since the ask took 9.
    b.answer(ask, Some(11));
    let after: Vec<bool> = (11..30).map(|i| b.take(i, l).admitted).collect();
    assert_eq!(after.iter().filter(|a| **a).count(), 1);
}

#[test]
fn a_lease_is_only_what_others_left() {
    let l = limit("10/s");
    let mut b = Budget::new(l, Leasing::Shared, 0);
    let ask = b.take(0, l).ask.unwrap(); // debt 1, want 1
    assert_eq!(ask.adds(), 2);
    // Others had taken 9 already: 9 + 2 = 11, our debt takes the last one.
    b.answer(ask, Some(11));
    let t = b.take(1, l);
    assert!(!t.admitted);
    assert_eq!(t.quota.remaining, 0);
    assert_eq!(
        t.retry_after_secs, 1,
        "used up for the window: retry at its end"
    );
    assert!(t.ask.is_none(), "nothing left to ask for");
}

#[test]
fn answers_for_windows_gone_by_are_dropped() {
    let l = limit("10/s");
    let mut b = Budget::new(l, Leasing::Shared, 0);
    let old = b.take(0, l).ask.unwrap();
    let t = b.take(1_000, l); // the next window
    let new = t.ask.unwrap();
    b.answer(old, Some(2));
    assert_eq!(new.window, 1_000);
    b.answer(new, Some(2));
    assert!(b.take(1_001, l).admitted);
}

#[test]
fn an_unreachable_store_means_counting_alone() {
    let l = limit("3/s");
    let mut b = Budget::new(l, Leasing::Shared, 0);
    let ask = b.take(0, l).ask.unwrap();
    b.answer(ask, None);
    let admitted = (1..10).filter(|i| b.take(*i, l).admitted).count();
    assert_eq!(admitted, 2, "the limit, counted here");
}

#[test]
fn a_busy_key_leases_the_next_window_early() {
    let l = limit("100/s");
    let mut b = Budget::new(l, Leasing::Shared, 0);
    let first = b.take(0, l).ask.unwrap();
    b.answer(first, Some(11));
    let mut prefetch = None;
    for i in 1..1000 {
        if let Some(a) = b.take(i, l).ask {
            if a.window == 1_000 {
                assert!(i >= 500, "only in the second half");
                prefetch = Some(a);
                break;
            }
            b.answer(a, Some(a.adds() + 11));
        }
    }
    let prefetch = prefetch.expect("leases the next window");
    assert_eq!((prefetch.debt, prefetch.want), (0, 10));
    b.answer(prefetch, Some(10));
    // The new window starts with its lease: nothing on trust, no ask yet.
    let t = b.take(1_000, l);
    assert!(t.admitted);
    assert!(t.ask.is_none());
}

/// Servers that share a store whose answers arrive `lag` calls later, all
/// hammered: over ten windows, the cluster admits the limit within 10%.
fn cluster(servers: usize, calls: &str, lag: usize) -> (u64, u64) {
    let l = limit(calls);
    let period = l.period().millis();
    let mut store: std::collections::HashMap<i64, u64> = Default::default();
    let mut budgets: Vec<Budget> = (0..servers)
        .map(|_| Budget::new(l, Leasing::Shared, 0))
        .collect();
    let mut inflight: Vec<(usize, usize, Ask, u64)> = Vec::new();
    let (mut admitted, mut worst) = (0u64, 0u64);
    let steps = 2_000usize;
    for window in 0..10 {
        let mut this_window = 0;
        for step in 0..steps {
            let now = window * period + (step as i64 * period) / steps as i64;
            for (s, b) in budgets.iter_mut().enumerate() {
                let t = b.take(now, l);
                if t.admitted {
                    this_window += 1;
                }
                if let Some(a) = t.ask {
                    let total = store.entry(a.window).or_default();
                    *total += a.adds();
                    inflight.push((step + lag, s, a, *total));
                }
            }
            let (due, later): (Vec<_>, Vec<_>) =
                inflight.drain(..).partition(|(at, ..)| *at <= step);
            inflight = later;
            for (_, s, a, total) in due {
                budgets[s].answer(a, Some(total));
            }
        }
        admitted += this_window;
        worst = worst.max(this_window);
    }
    (admitted, worst)
}

#[test]
fn a_hammered_cluster_holds_the_limit_within_a_tenth() {
    for (servers, calls, lag) in [
        (3, "100/s", 5),
        (3, "50/s", 20),
        (5, "1000/s", 3),
        (2, "7/s", 10),
        (4, "100/min", 50),
    ] {
        let per_window = u64::from(limit(calls).calls());
        let (admitted, worst) = cluster(servers, calls, lag);
        let want = per_window * 10;
        let off = admitted.abs_diff(want) as f64 / want as f64;
        assert!(
            off <= 0.10,
            "{servers} servers at {calls}, lag {lag}: {admitted} of {want}"
        );
        assert!(
            worst <= per_window + per_window.div_ceil(10),
            "{servers} servers at {calls}: {worst} in one window"
        );
    }
}
