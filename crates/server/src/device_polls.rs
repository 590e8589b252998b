//! Throttling the device flow's polls before they reach GitHub.
//!
//! `POST /auth/device/token` used to forward every poll to GitHub. Now each
//! device code has an entry: the interval GitHub asked for and when a poll
//! was last forwarded. A poll sooner than the interval is answered
//! `slow_down` here, with the interval raised by 5 seconds as RFC 8628
//! §3.5 (and GitHub) do, and GitHub is not called; so of twenty polls in a
//! burst one reaches GitHub. Once GitHub has given a final answer for a code
//! (expired, denied, unknown, or tokens handed out), later polls get that
//! answer from here.
//!
//! Memory is bounded: codes started here are at most [`MAX_STARTED`]
//! (`POST /auth/device` answers 429 beyond that, before calling GitHub),
//! and entries end with the code's `expires_in`. Codes started elsewhere
//! (another server behind the same load balancer, or made up) have a table
//! of their own of at most [`MAX_OTHER`], the oldest dropped first, so a
//! flood of made-up codes cannot keep real sign-ins from starting.
//! Device codes are kept only as SHA-256 digests.

use std::collections::HashMap;
use std::sync::Mutex;

use fal_core::Timestamp;
use sha2::{Digest, Sha256};

/// Device flows started here and not yet expired, at most.
pub const MAX_STARTED: usize = 10_000;
/// Codes this server did not start, remembered at most.
pub const MAX_OTHER: usize = 10_000;
/// The interval for a code this server did not start (RFC 8628's default).
const DEFAULT_INTERVAL_MS: i64 = 5_000;
/// How long a code this server did not start is remembered (GitHub's codes
/// live 15 minutes).
const OTHER_TTL_MS: i64 = 15 * 60 * 1000;
/// What RFC 8628 adds to the interval at each `slow_down`.
const SLOW_DOWN_STEP_MS: i64 = 5_000;
/// Clock and network jitter forgiven: a poll this much early still goes.
const SLACK_MS: i64 = 100;

/// A final answer for a code, repeated without asking GitHub again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code expired.
    Expired,
    /// The user refused.
    Denied,
    /// GitHub does not know the code, or it was already used.
    Unknown,
}

/// What to do with one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Ask GitHub.
    Forward,
    /// Too soon: answer `slow_down` with this interval (seconds).
    SlowDown(u64),
    /// Answer this without asking GitHub.
    Final(Verdict),
}

/// What GitHub answered to a forwarded poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Still waiting for the user.
    Pending,
    /// Poll less often: the new interval in seconds.
    SlowDown(u64),
    /// Final.
    Final(Verdict),
    /// Tokens were handed out: the code is used up.
    Done,
}

#[derive(Debug)]
struct Entry {
    interval_ms: i64,
    last_ms: i64,
    expires_ms: i64,
    verdict: Option<Verdict>,
}

type Key = [u8; 32];

#[derive(Default)]
struct Tables {
    started: HashMap<Key, Entry>,
    other: HashMap<Key, Entry>,
}

/// Per-device-code poll state, shared by every worker.
#[derive(Default)]
pub struct DevicePolls {
    inner: Mutex<Tables>,
}

fn key(device_code: &str) -> Key {
    Sha256::digest(device_code.as_bytes()).into()
}

fn secs_to_ms(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

impl DevicePolls {
    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another device flow may start (expired entries are dropped
    /// to make room).
    pub fn has_room(&self, now: Timestamp) -> bool {
        let mut t = self.tables();
        if t.started.len() >= MAX_STARTED {
            t.started.retain(|_, e| e.expires_ms > now.millis());
        }
        t.started.len() < MAX_STARTED
    }

    /// A device flow started here: GitHub's interval and lifetime for it.
    /// The first poll may come one interval from now.
    pub fn started(&self, device_code: &str, interval_s: u64, expires_in_s: u64, now: Timestamp) {
        let entry = Entry {
            interval_ms: secs_to_ms(interval_s.max(1)),
            last_ms: now.millis(),
            expires_ms: now.millis().saturating_add(secs_to_ms(expires_in_s)),
            verdict: None,
        };
        self.tables().started.insert(key(device_code), entry);
    }

    /// Decides one poll; when it says [`Gate::Forward`] the poll counts as
    /// made now (so of concurrent polls only one goes).
    pub fn gate(&self, device_code: &str, now: Timestamp) -> Gate {
        let k = key(device_code);
        let now = now.millis();
        let mut t = self.tables();
        let Tables { started, other } = &mut *t;
        if started.get(&k).is_some_and(|e| e.expires_ms <= now) {
            started.remove(&k);
            return Gate::Final(Verdict::Expired);
        }
        if other.get(&k).is_some_and(|e| e.expires_ms <= now) {
            other.remove(&k);
        }
        if !started.contains_key(&k) && !other.contains_key(&k) {
            if other.len() >= MAX_OTHER {
                other.retain(|_, e| e.expires_ms > now);
            }
            if other.len() >= MAX_OTHER
                && let Some(oldest) = other.iter().min_by_key(|(_, e)| e.last_ms).map(|(k, _)| *k)
            {
                other.remove(&oldest);
            }
            other.insert(
                k,
                Entry {
                    interval_ms: DEFAULT_INTERVAL_MS,
                    last_ms: now,
                    expires_ms: now.saturating_add(OTHER_TTL_MS),
                    verdict: None,
                },
            );
            return Gate::Forward;
        }
        let Some(e) = started.get_mut(&k).or_else(|| other.get_mut(&k)) else {
            return Gate::Forward;
        };
        if let Some(v) = e.verdict {
            return Gate::Final(v);
        }
        if now.saturating_sub(e.last_ms) < e.interval_ms - SLACK_MS {
            e.interval_ms = e.interval_ms.saturating_add(SLOW_DOWN_STEP_MS);
            e.last_ms = now;
            return Gate::SlowDown(u64::try_from(e.interval_ms / 1000).unwrap_or(u64::MAX));
        }
        e.last_ms = now;
        Gate::Forward
    }

    /// Records GitHub's answer to a forwarded poll.
    pub fn answered(&self, device_code: &str, answer: Answered) {
        let k = key(device_code);
        let mut t = self.tables();
        let Tables { started, other } = &mut *t;
        let Some(e) = started.get_mut(&k).or_else(|| other.get_mut(&k)) else {
            return;
        };
        match answer {
            Answered::Pending => {}
            Answered::SlowDown(s) => e.interval_ms = e.interval_ms.max(secs_to_ms(s)),
            Answered::Final(v) => e.verdict = Some(v),
            Answered::Done => e.verdict = Some(Verdict::Unknown),
        }
    }

    /// How many codes are remembered (tests).
    pub fn len(&self) -> usize {
        let t = self.tables();
        t.started.len() + t.other.len()
    }

    /// Whether no code is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_inside_the_interval_slow_down_and_raise_it() {
        let p = DevicePolls::default();
        p.started("c", 1, 900, Timestamp(0));
        assert_eq!(p.gate("c", Timestamp(0)), Gate::SlowDown(6));
        assert_eq!(p.gate("c", Timestamp(5_000)), Gate::SlowDown(11));
        assert_eq!(p.gate("c", Timestamp(16_000)), Gate::Forward);
        assert_eq!(p.gate("c", Timestamp(16_001)), Gate::SlowDown(16));
        p.answered("c", Answered::SlowDown(30));
        assert_eq!(p.gate("c", Timestamp(40_000)), Gate::SlowDown(35));
        assert_eq!(p.gate("c", Timestamp(75_000)), Gate::Forward);
    }

    #[test]
    fn final_answers_are_repeated_and_codes_expire() {
        let p = DevicePolls::default();
        p.started("c", 5, 900, Timestamp(0));
        assert_eq!(p.gate("c", Timestamp(5_000)), Gate::Forward);
        p.answered("c", Answered::Done);
        assert_eq!(
            p.gate("c", Timestamp(99_000)),
            Gate::Final(Verdict::Unknown)
        );
        p.started("d", 5, 10, Timestamp(0));
        assert_eq!(
            p.gate("d", Timestamp(10_000)),
            Gate::Final(Verdict::Expired)
        );
    }

    #[test]
    fn codes_started_elsewhere_are_throttled_in_a_bounded_table() {
        let p = DevicePolls::default();
        assert_eq!(p.gate("x", Timestamp(0)), Gate::Forward);
        assert_eq!(p.gate("x", Timestamp(1_000)), Gate::SlowDown(10));
        p.answered("x", Answered::Final(Verdict::Unknown));
        assert_eq!(
            p.gate("x", Timestamp(60_000)),
            Gate::Final(Verdict::Unknown)
        );
        for i in 0..MAX_OTHER + 5 {
            assert_eq!(
                p.gate(&format!("junk{i}"), Timestamp(61_000)),
                Gate::Forward
            );
        }
        assert_eq!(p.len(), MAX_OTHER);
        assert!(
            p.has_room(Timestamp(61_000)),
            "junk does not block real starts"
        );
        // Forgotten after 15 minutes.
        assert_eq!(p.gate("y", Timestamp(0)), Gate::Forward);
        assert_eq!(p.gate("z", Timestamp(OTHER_TTL_MS + 61_000)), Gate::Forward);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn starts_are_bounded() {
        let p = DevicePolls::default();
        for i in 0..MAX_STARTED {
            p.started(&format!("c{i}"), 5, 900, Timestamp(0));
        }
        assert!(!p.has_room(Timestamp(1)));
        assert!(p.has_room(Timestamp(900_000)), "expired entries make room");
    }
}
