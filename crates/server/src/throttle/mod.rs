//! Failed-auth throttling: past [`ThrottleConfig::failures`] refused
//! credentials from one client in a window, that client is refused (429,
//! `Retry-After`) until the window ends, before any hashing or storage
//! work. Other clients are untouched.
//!
//! Counting is per [`ClientKey`]: an IPv4 address or an IPv6 /64. The
//! window is fixed: it opens at a client's first failure and lasts
//! [`ThrottleConfig::window`]; reaching the threshold inside it blocks the
//! client until it closes, and the count starts again after. A blocked
//! client is refused even with a correct key: telling it the key was right
//! would let it go on guessing at full speed.
//!
//! The hot path is the check before verification. While no client is
//! blocked it is one atomic load; while some are, a clock read and one
//! lookup in one of [`SHARDS`] small tables. An accepted call never writes.
//! Failures take one shard's lock. The answer to a blocked client is held
//! back [`BLOCKED_ANSWER_DELAY`], so that a flood waiting for its answers
//! slows to a trickle instead of taking CPU from everyone else.
//!
//! Memory is bounded: at most [`ThrottleConfig::max_clients`] clients are
//! tracked (about 40 bytes each), split evenly over the shards. A shard
//! that is full first drops clients whose window has closed (at most once
//! a second), then one client that is not blocked; if every client in it
//! is blocked, a new client's failure is not counted until a window
//! closes. So an attacker with many addresses can at worst stop new
//! addresses from being counted, never unblock one, and cannot grow the
//! table.
//!
//! # Layout
//! - this file: [`Throttle`], the table.
//! - [`client`]: who the client is (`--trusted-proxies`,
//!   `X-Forwarded-For`) and [`ClientKey`].
//!
//! A leaf: no tokio, no state; time comes from the injected [`Clock`].

pub mod client;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fal_core::Clock;

pub use client::{BadCidr, Cidr, ClientKey, TrustedProxies, X_FORWARDED_FOR};

/// How long the answer to a blocked client is held back. A flood that
/// waits for its answers (as guessing must: it needs to know which guess
/// worked) then gets one per connection per this long, and takes next to
/// no CPU from other clients; the connection was held by the client
/// anyway. Not a sleep of this module (it has no runtime): the caller's.
pub const BLOCKED_ANSWER_DELAY: Duration = Duration::from_millis(100);

/// How many tables the clients are spread over, so that failures from
/// different clients seldom wait for the same lock.
pub const SHARDS: usize = 64;

/// The settings (`fal serve --auth-failures-per-minute`,
/// `--trusted-proxies`).
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Refused credentials from one client in a window that block it; 0
    /// turns throttling off.
    pub failures: u32,
    /// How long a window lasts.
    pub window: Duration,
    /// The most clients tracked at once.
    pub max_clients: usize,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
}

impl Default for ThrottleConfig {
    /// 20 failures a minute; 100,000 clients (about 4 MB at most); no
    /// trusted proxy.
    fn default() -> ThrottleConfig {
        ThrottleConfig {
            failures: 20,
            window: Duration::from_secs(60),
            max_clients: 100_000,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// A refusal: the client is blocked for this many more seconds (at least
/// one), for `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// Seconds until the window closes, rounded up.
    pub retry_after_secs: u64,
}

/// One client's count in its current window.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the window opened (ms since the epoch).
    opened: i64,
    /// Failures in it.
    failures: u32,
}

/// One shard of the table.
#[derive(Default)]
struct Shard {
    /// The clients in it.
    clients: HashMap<ClientKey, Entry, foldhash::fast::RandomState>,
    /// When closed windows were last dropped from it.
    swept: i64,
}

/// Failure counts per client. Shared by every worker.
pub struct Throttle {
    /// The settings.
    config: ThrottleConfig,
    /// The window in milliseconds.
    window_ms: i64,
    /// The most clients per shard.
    per_shard: usize,
    /// The tables.
    shards: Box<[Mutex<Shard>]>,
    /// Picks a client's shard.
    hasher: foldhash::fast::RandomState,
    /// The latest instant until which some client is blocked (0: none ever
    /// was): while it is past, the check looks nothing up.
    blocked_until: AtomicI64,
    /// Now.
    clock: Arc<dyn Clock>,
}

impl Throttle {
    /// A throttle with `config`, on `clock`.
    pub fn new(config: ThrottleConfig, clock: Arc<dyn Clock>) -> Throttle {
        let window_ms = i64::try_from(config.window.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let per_shard = config.max_clients.div_ceil(SHARDS).max(1);
        Throttle {
            window_ms,
            per_shard,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            blocked_until: AtomicI64::new(0),
            clock,
            config,
        }
    }

    /// Whose `X-Forwarded-For` is believed.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.config.trusted_proxies
    }

    /// The client behind a connection from `peer` with these
    /// `X-Forwarded-For` values (see [`TrustedProxies::client`]).
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        self.config.trusted_proxies.client(peer, forwarded)
    }

    /// `Err` when `client` is blocked. Writes nothing.
    pub fn check(&self, client: IpAddr) -> Result<(), Blocked> {
        let until = self.blocked_until.load(Ordering::Relaxed);
        if until == 0 {
            return Ok(());
        }
        let now = self.clock.now().millis();
        if now >= until {
            return Ok(());
        }
        let key = ClientKey::of(client);
        let shard = self.shard(&key);
        let entry = shard.clients.get(&key).copied();
        drop(shard);
        match entry {
            Some(e) if e.failures >= self.config.failures && now < self.closes(e) => {
                Err(self.blocked(self.closes(e), now))
            }
            _ => Ok(()),
        }
    }

    /// Counts one refused credential from `client`. Returns the refusal
    /// when this failure is the one that blocks it (and logs one warning).
    pub fn failed(&self, client: IpAddr) -> Option<Blocked> {
        if self.config.failures == 0 {
            return None;
        }
        let now = self.clock.now().millis();
        let key = ClientKey::of(client);
        let mut shard = self.shard(&key);
        let shard = &mut *shard;
        if !shard.clients.contains_key(&key) && !self.make_room(shard, now) {
            return None;
        }
        let entry = shard.clients.entry(key).or_insert(Entry {
            opened: now,
            failures: 0,
        });
        if now >= self.closes(*entry) {
            *entry = Entry {
                opened: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
        if entry.failures != self.config.failures {
            return None;
        }
        let until = self.closes(*entry);
        self.blocked_until.fetch_max(until, Ordering::Relaxed);
        let blocked = self.blocked(until, now);
        tracing::warn!(
            client = %key,
            failures = entry.failures,
            window_secs = self.config.window.as_secs(),
            retry_after_secs = blocked.retry_after_secs,
            "client blocked after refused credentials"
        );
        Some(blocked)
    }

    /// How many clients are tracked.
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clients.len())
            .sum()
    }

    /// Room for one more client in a full `shard`; `false` when every
    /// client in it is blocked.
    fn make_room(&self, shard: &mut Shard, now: i64) -> bool {
        if shard.clients.len() < self.per_shard {
            return true;
        }
        if now.saturating_sub(shard.swept) >= 1000 {
            shard.swept = now;
            shard
                .clients
                .retain(|_, e| now < e.opened.saturating_add(self.window_ms));
            if shard.clients.len() < self.per_shard {
                return true;
            }
        }
        let failures = self.config.failures;
        let victim = shard
            .clients
            .iter()
            .find(|(_, e)| e.failures < failures)
            .map(|(k, _)| *k);
        match victim {
            Some(k) => {
                shard.clients.remove(&k);
                true
            }
            None => false,
        }
    }

    /// When `e`'s window closes.
    fn closes(&self, e: Entry) -> i64 {
        e.opened.saturating_add(self.window_ms)
    }

    /// The refusal for a block ending at `until`.
    fn blocked(&self, until: i64, now: i64) -> Blocked {
        let ms = u64::try_from(until.saturating_sub(now)).unwrap_or(0);
        Blocked {
            retry_after_secs: ms.div_ceil(1000).max(1),
        }
    }

    /// The locked shard `key` lives in.
    fn shard(&self, key: &ClientKey) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(key) >> 32) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fal_core::{ManualClock, Timestamp};

    fn throttle(failures: u32, max_clients: usize) -> (Throttle, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
        let config = ThrottleConfig {
            failures,
            max_clients,
            ..ThrottleConfig::default()
        };
        (Throttle::new(config, clock.clone()), clock)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_threshold_blocks_one_client_until_its_window_closes() {
        let (t, clock) = throttle(3, 1000);
        let bad = ip("203.0.113.7");
        assert_eq!(t.failed(bad), None);
        clock.advance_millis(10_000);
        assert_eq!(t.failed(bad), None);
        assert_eq!(t.check(bad), Ok(()));
        assert_eq!(
            t.failed(bad),
            Some(Blocked {
                retry_after_secs: 50
            })
        );
        clock.advance_millis(400);
        assert_eq!(
            t.check(bad),
            Err(Blocked {
                retry_after_secs: 50
            })
        );
        assert_eq!(t.check(ip("203.0.113.8")), Ok(()));
        clock.advance_millis(49_599);
        assert_eq!(
            t.check(bad),
            Err(Blocked {
                retry_after_secs: 1
            })
        );
        clock.advance_millis(1);
        assert_eq!(t.check(bad), Ok(()));
        // A new window: counting starts again.
        assert_eq!(t.failed(bad), None);
        assert_eq!(t.check(bad), Ok(()));
    }

    #[test]
    fn a_slash_64_is_one_client() {
        let (t, _) = throttle(2, 1000);
        t.failed(ip("2001:db8:0:1::1"));
        assert!(t.failed(ip("2001:db8:0:1::2")).is_some());
        assert!(t.check(ip("2001:db8:0:1:abcd::9")).is_err());
        assert_eq!(t.check(ip("2001:db8:0:2::1")), Ok(()));
    }

    #[test]
    fn zero_turns_it_off() {
        let (t, _) = throttle(0, 1000);
        for _ in 0..100 {
            assert_eq!(t.failed(ip("192.0.2.1")), None);
        }
        assert_eq!(t.check(ip("192.0.2.1")), Ok(()));
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn many_addresses_cannot_grow_the_table_or_unblock_a_client() {
        let cap = SHARDS * 4;
        let (t, clock) = throttle(3, cap);
        let bad = ip("198.51.100.1");
        for _ in 0..3 {
            t.failed(bad);
        }
        assert!(t.check(bad).is_err());
        for i in 0..50_000u32 {
            t.failed(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            if i % 997 == 0 {
                clock.advance_millis(1);
            }
        }
        assert!(t.tracked() <= cap, "{} > {cap}", t.tracked());
        assert!(t.check(bad).is_err(), "a blocked client is never dropped");
        // Once the windows close, the table makes room again.
        clock.advance_millis(60_000);
        assert_eq!(t.check(bad), Ok(()));
        t.failed(ip("192.0.2.77"));
        assert!(t.tracked() <= cap);
    }

    #[test]
    fn a_table_full_of_blocked_clients_counts_no_new_ones() {
        let (t, _) = throttle(1, 1);
        // One client per shard at most: fill every shard with blocked ones.
        let mut i = 0u32;
        while t.tracked() < SHARDS {
            t.failed(IpAddr::from(std::net::Ipv4Addr::from(i)));
            i += 1;
        }
        let newcomer = ip("192.0.2.200");
        assert_eq!(t.failed(newcomer), None);
        assert_eq!(t.check(newcomer), Ok(()));
        assert_eq!(t.tracked(), SHARDS);
    }
}
