//! [`Budget`]: one server's share of one key's rate limit in the current
//! window, as a state machine over passed-in time, with no I/O.
//!
//! Alone (SQLite: one server), a server holds the whole limit and counts
//! calls against it. In a cluster (servers sharing PostgreSQL), the count
//! for each window lives in the shared store, and a server *leases* calls
//! from it in chunks, ahead of need: [`Budget::take`] never waits for the
//! store; when this server's share runs low it returns an [`Ask`], which
//! the caller sends to the store in the background, and the store's total
//! comes back through [`Budget::answer`]. The store adds unconditionally
//! and answers with the window's new total, so a lease is granted only out
//! of what no other server holds: the cluster never leases more than the
//! limit. What can go over it is bounded and rare:
//! - before the first answer in a window the server has heard nothing, and
//!   admits up to a tenth of the limit on trust (its *debt*, charged to
//!   the store with its next ask) rather than refuse a key's first call
//!   after a quiet window; a server busy with a key leases the next window
//!   in the second half of this one, so it does not start on trust;
//! - when the store cannot be reached, a server counts the window alone
//!   (fails open), so a cluster of N may then admit up to N times the
//!   limit until the store is back.
//!
//! And what can go under it: calls leased by a server that then gets no
//! more traffic for the key in that window are not used by others. Chunks
//! are at most a tenth of the limit, and a quarter of what the cluster has
//! left, so little is stranded.

use crate::rate::{Quota, RateLimit};

/// Where a budget's calls come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leasing {
    /// This server is the only one: it holds the whole limit.
    Local,
    /// Leased from a store that the servers of a cluster share.
    Shared,
}

/// A request to the shared store: add `debt + want` to the key's count for
/// the window starting at `window` (ms), and say the new total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// Start of the window (ms since the epoch).
    pub window: i64,
    /// Length of the window (ms): windows of different periods are
    /// counted apart.
    pub period_ms: i64,
    /// Calls already admitted on trust, charged now.
    pub debt: u64,
    /// Calls wanted for this server.
    pub want: u64,
}

impl Ask {
    /// What the store adds to the window's count.
    pub fn adds(&self) -> u64 {
        self.debt + self.want
    }
}

/// What [`Budget::take`] decided about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// The call may go on.
    pub admitted: bool,
    /// The `RateLimit-*` headers' values.
    pub quota: Quota,
    /// For a refused call: when to try again (seconds). The window's end
    /// when the cluster's limit is used up; 1 when only this server's
    /// share is, and more is being leased.
    pub retry_after_secs: u32,
    /// Send this to the shared store, then pass its answer to
    /// [`Budget::answer`].
    pub ask: Option<Ask>,
}

/// A lease for the next window, taken before it starts.
#[derive(Debug, Clone, Copy)]
struct Prefetched {
    window: i64,
    granted: u64,
    total: u64,
}

/// One server's share of one key's limit, for the current window.
#[derive(Debug, Clone)]
pub struct Budget {
    limit: RateLimit,
    leasing: Leasing,
    /// Start of the current window (ms).
    window: i64,
    /// Calls admitted here in this window.
    used: u64,
    /// Calls this server holds: leased, plus debts charged.
    charged: u64,
    /// The store has answered for this window (or it need not).
    answered: bool,
    /// The store said the cluster has nothing left in this window.
    exhausted: bool,
    /// An ask for this window is out.
    asking: bool,
    /// The window's total across the cluster, as last answered.
    seen_total: u64,
    /// An ask for the next window is out.
    prefetching: bool,
    /// The next window's lease, when taken early.
    next: Option<Prefetched>,
}

impl Budget {
    /// A budget for `limit`, in the window `now_ms` falls in.
    pub fn new(limit: RateLimit, leasing: Leasing, now_ms: i64) -> Budget {
        let mut b = Budget {
            limit,
            leasing,
            window: i64::MIN,
            used: 0,
            charged: 0,
            answered: false,
            exhausted: false,
            asking: false,
            seen_total: 0,
            prefetching: false,
            next: None,
        };
        b.roll(limit.window_start(now_ms));
        b
    }

    fn calls(&self) -> u64 {
        u64::from(self.limit.calls())
    }

    /// The most this server takes on trust, or leases at once: a tenth of
    /// the limit, rounded up.
    fn tenth(&self) -> u64 {
        self.calls().div_ceil(10)
    }

    /// How much to ask for: a quarter of what the cluster has left, from 1
    /// to a tenth of the limit.
    fn chunk(&self) -> u64 {
        let left = self.calls().saturating_sub(self.seen_total);
        (left / 4).clamp(1, self.tenth())
    }

    /// Starts the window at `window`, with the lease taken for it early if
    /// there is one.
    fn roll(&mut self, window: i64) {
        let early = self.next.take().filter(|n| n.window == window);
        self.window = window;
        self.used = 0;
        self.asking = false;
        self.prefetching = false;
        match (self.leasing, early) {
            (Leasing::Local, _) => {
                self.charged = self.calls();
                self.seen_total = 0;
                self.answered = true;
                self.exhausted = false;
            }
            (Leasing::Shared, Some(n)) => {
                self.charged = n.granted;
                self.seen_total = n.total;
                self.answered = true;
                self.exhausted = n.total >= self.calls();
            }
            (Leasing::Shared, None) => {
                self.charged = 0;
                self.seen_total = 0;
                self.answered = false;
                self.exhausted = false;
            }
        }
    }

    /// Takes one call at `now_ms` under `limit` (the key's limit as it is
    /// now: a change applies from this call on).
    pub fn take(&mut self, now_ms: i64, limit: RateLimit) -> Take {
        if limit != self.limit {
            let period_changed = limit.period() != self.limit.period();
            self.limit = limit;
            if period_changed {
                self.next = None;
                self.window = i64::MIN;
            } else if self.leasing == Leasing::Local {
                self.charged = self.calls();
            } else {
                self.exhausted = self.seen_total >= self.calls();
            }
        }
        let window = limit.window_start(now_ms);
        if window != self.window {
            self.roll(window);
        }
        let admitted = if self.used < self.charged {
            true
        } else {
            // Before the store has answered, a tenth of the limit on trust.
            !self.answered && self.used < self.tenth()
        };
        if admitted {
            self.used += 1;
        }
        let ask = match self.leasing {
            Leasing::Local => None,
            Leasing::Shared => self.ask(now_ms),
        };
        let reset_secs = self.reset_secs(now_ms);
        let remaining = if admitted { self.remaining() } else { 0 };
        let quota = Quota {
            limit: limit.calls(),
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_secs,
        };
        let transient = self.leasing == Leasing::Shared && !self.exhausted;
        Take {
            admitted,
            quota,
            retry_after_secs: if transient { 1 } else { reset_secs },
            ask,
        }
    }

    /// Gives back a call admitted at `now_ms` that will be taken again
    /// (one request, decided twice).
    pub fn give_back(&mut self, now_ms: i64) {
        if self.limit.window_start(now_ms) == self.window {
            self.used = self.used.saturating_sub(1);
        }
    }

    /// Calls left in the window as far as this server knows: what it holds
    /// unused, plus what the rest of the cluster had not taken.
    fn remaining(&self) -> u64 {
        let mine = self.charged.saturating_sub(self.used);
        let others = self
            .calls()
            .saturating_sub(self.seen_total.max(self.charged));
        (mine + others).min(self.calls().saturating_sub(self.used))
    }

    fn reset_secs(&self, now_ms: i64) -> u32 {
        let end = self.window.saturating_add(self.limit.period().millis());
        let ms = end.saturating_sub(now_ms).max(1);
        u32::try_from((ms + 999) / 1000).unwrap_or(u32::MAX)
    }

    /// The ask to send after a call, if any: more for this window when this
    /// server's share is half a chunk from running out (or ran out, or it
    /// has heard nothing yet); else, in the second half of a window in
    /// which the key was used, a lease for the next window.
    fn ask(&mut self, now_ms: i64) -> Option<Ask> {
        let period_ms = self.limit.period().millis();
        let chunk = self.chunk();
        let held = self.charged.saturating_sub(self.used);
        if !self.asking && !self.exhausted && held <= chunk.div_ceil(2) {
            let debt = self.used.saturating_sub(self.charged);
            self.charged += debt;
            self.asking = true;
            return Some(Ask {
                window: self.window,
                period_ms,
                debt,
                want: chunk,
            });
        }
        let second_half = now_ms.saturating_sub(self.window) >= period_ms / 2;
        if second_half && !self.prefetching && self.next.is_none() && self.used > 0 {
            self.prefetching = true;
            return Some(Ask {
                window: self.window + period_ms,
                period_ms,
                debt: 0,
                want: self.tenth(),
            });
        }
        None
    }

    /// The store's answer to `ask`: the window's new total, or `None` when
    /// it could not be reached (the server then counts the rest of the
    /// window alone). Answers for windows gone by are dropped.
    pub fn answer(&mut self, ask: Ask, total: Option<u64>) {
        if ask.period_ms != self.limit.period().millis() {
            return;
        }
        let calls = self.calls();
        let granted = |total: u64| {
            let before = total.saturating_sub(ask.adds());
            let free = calls.saturating_sub(before + ask.debt);
            (ask.want.min(free), total)
        };
        if ask.window == self.window {
            self.asking = false;
            self.answered = true;
            match total.map(granted) {
                Some((got, total)) => {
                    self.charged += got;
                    self.seen_total = self.seen_total.max(total);
                    self.exhausted = got < ask.want;
                }
                None => {
                    self.charged = self.charged.max(self.calls());
                    self.exhausted = false;
                }
            }
        } else if ask.window == self.window.saturating_add(ask.period_ms) {
            self.prefetching = false;
            if let Some((got, total)) = total.map(granted) {
                self.next = Some(Prefetched {
                    window: ask.window,
                    granted: got,
                    total,
                });
            }
        }
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
