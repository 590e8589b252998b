//! A key's usage: calls accepted, and refused by reason, per hour (UTC),
//! kept for [`RETENTION_DAYS`] days. Servers count in memory and add their
//! counts to storage in batches, so counts from several servers add up.

use crate::time::Timestamp;

/// One hour, in milliseconds.
pub const HOUR_MS: i64 = 60 * 60 * 1000;
/// One day, in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// How many days of hourly counts are kept.
pub const RETENTION_DAYS: i64 = 30;

/// Why a call with a known key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The key's id with a secret that does not match.
    WrongSecret,
    /// The right secret of a revoked key.
    Revoked,
    /// The key's rate limit was used up.
    RateLimited,
    /// The right secret of a key past its expiry.
    Expired,
}

impl Refusal {
    /// Why a key's own record refused a call, as its counts keep it: a
    /// rolled key past its grace counts as expired. (`Invalid` with the
    /// key's record at hand is a wrong secret.)
    pub fn of(e: crate::VerifyError) -> Refusal {
        match e {
            crate::VerifyError::Invalid => Refusal::WrongSecret,
            crate::VerifyError::Revoked => Refusal::Revoked,
            crate::VerifyError::Expired(_) | crate::VerifyError::Rolled(_) => Refusal::Expired,
        }
    }

    /// Every reason, in the order of [`UsageCounts`]' fields.
    pub const ALL: [Refusal; 4] = [
        Refusal::WrongSecret,
        Refusal::Revoked,
        Refusal::RateLimited,
        Refusal::Expired,
    ];

    /// The name in the API's JSON and the CLI's table.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::WrongSecret => "wrong_secret",
            Refusal::Revoked => "revoked",
            Refusal::RateLimited => "rate_limited",
            Refusal::Expired => "expired",
        }
    }
}

/// The outcome of one call made with a known key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Authenticated.
    Accepted,
    /// Refused, and why.
    Refused(Refusal),
}

impl Outcome {
    /// The index of this outcome's counter in [`UsageCounts::as_array`].
    pub fn index(self) -> usize {
        match self {
            Outcome::Accepted => 0,
            Outcome::Refused(Refusal::WrongSecret) => 1,
            Outcome::Refused(Refusal::Revoked) => 2,
            Outcome::Refused(Refusal::RateLimited) => 3,
            Outcome::Refused(Refusal::Expired) => 4,
        }
    }
}

/// Calls counted, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageCounts {
    /// Authenticated.
    pub accepted: u64,
    /// Refused: a wrong secret.
    pub wrong_secret: u64,
    /// Refused: the key is revoked.
    pub revoked: u64,
    /// Refused: the rate limit was used up.
    pub rate_limited: u64,
    /// Refused: the key has expired.
    pub expired: u64,
}

impl UsageCounts {
    /// The counts in [`Outcome::index`] order.
    pub fn as_array(&self) -> [u64; 5] {
        [
            self.accepted,
            self.wrong_secret,
            self.revoked,
            self.rate_limited,
            self.expired,
        ]
    }

    /// Counts from an array in [`Outcome::index`] order.
    pub fn from_array(a: [u64; 5]) -> UsageCounts {
        UsageCounts {
            accepted: a[0],
            wrong_secret: a[1],
            revoked: a[2],
            rate_limited: a[3],
            expired: a[4],
        }
    }

    /// The count of one refusal reason.
    pub fn refused_for(&self, reason: Refusal) -> u64 {
        self.as_array()[Outcome::Refused(reason).index()]
    }

    /// Every refusal, whatever the reason.
    pub fn refused(&self) -> u64 {
        Refusal::ALL
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(self.refused_for(*r)))
    }

    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        self.as_array().iter().all(|c| *c == 0)
    }

    /// Adds `other` (saturating).
    pub fn add(&mut self, other: &UsageCounts) {
        let mut a = self.as_array();
        for (mine, theirs) in a.iter_mut().zip(other.as_array()) {
            *mine = mine.saturating_add(theirs);
        }
        *self = UsageCounts::from_array(a);
    }

    /// Counts one call.
    pub fn count(&mut self, outcome: Outcome) {
        let mut a = self.as_array();
        a[outcome.index()] = a[outcome.index()].saturating_add(1);
        *self = UsageCounts::from_array(a);
    }
}

/// An hour (UTC), by its first millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(i64);

impl Hour {
    /// The hour `t` falls in (before the epoch too).
    pub fn of(t: Timestamp) -> Hour {
        Hour(t.millis().div_euclid(HOUR_MS) * HOUR_MS)
    }

    /// The hour starting at `ms`, which must be the first millisecond of
    /// one (as stored); `None` otherwise.
    pub fn from_start(ms: i64) -> Option<Hour> {
        (ms.rem_euclid(HOUR_MS) == 0).then_some(Hour(ms))
    }

    /// Its first millisecond.
    pub fn start(self) -> Timestamp {
        Timestamp(self.0)
    }

    /// The first millisecond of its day (UTC).
    pub fn day(self) -> Timestamp {
        Timestamp(self.0.div_euclid(DAY_MS) * DAY_MS)
    }
}

/// The first hour still kept at `now`: the hour [`RETENTION_DAYS`] days
/// before the current one. Older hours are pruned.
pub fn retained_since(now: Timestamp) -> Hour {
    Hour::of(now.plus_millis(-RETENTION_DAYS * DAY_MS))
}

/// The last `days` days up to and including `now`'s (UTC), oldest first,
/// each with the sum of `hours` that fall in it; days without counts are
/// there with zeros, hours outside the range are left out.
pub fn by_day(
    hours: &[(Hour, UsageCounts)],
    now: Timestamp,
    days: usize,
) -> Vec<(Timestamp, UsageCounts)> {
    let today = Hour::of(now).day().millis();
    let span = i64::try_from(days).unwrap_or(i64::MAX);
    let first = today.saturating_sub(span.saturating_sub(1).saturating_mul(DAY_MS));
    let mut out: Vec<(Timestamp, UsageCounts)> = (0..span)
        .map(|i| (Timestamp(first + i * DAY_MS), UsageCounts::default()))
        .collect();
    for (hour, counts) in hours {
        let day = hour.day().millis();
        if day < first || day > today {
            continue;
        }
        let i = usize::try_from((day - first) / DAY_MS).unwrap_or(usize::MAX);
        if let Some((_, sum)) = out.get_mut(i) {
            sum.add(counts);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01T10:00:00Z.
    const TEN_AM: i64 = 1_796_119_200_000;

    #[test]
    fn each_refusal_of_a_keys_record_is_counted_under_its_reason() {
        use crate::VerifyError;
        let at = Timestamp(TEN_AM);
        assert_eq!(Refusal::of(VerifyError::Invalid), Refusal::WrongSecret);
        assert_eq!(Refusal::of(VerifyError::Revoked), Refusal::Revoked);
        assert_eq!(Refusal::of(VerifyError::Expired(at)), Refusal::Expired);
        assert_eq!(Refusal::of(VerifyError::Rolled(at)), Refusal::Expired);
    }

    #[test]
    fn an_hour_is_the_floor_of_the_instant() {
        assert_eq!(Hour::of(Timestamp(TEN_AM)).start(), Timestamp(TEN_AM));
        assert_eq!(
            Hour::of(Timestamp(TEN_AM + HOUR_MS - 1)).start(),
            Timestamp(TEN_AM)
        );
        assert_eq!(
            Hour::of(Timestamp(TEN_AM + HOUR_MS)).start(),
            Timestamp(TEN_AM + HOUR_MS)
        );
        assert_eq!(Hour::of(Timestamp(-1)).start(), Timestamp(-HOUR_MS));
        assert_eq!(
            Hour::of(Timestamp(TEN_AM)).day(),
            Timestamp(TEN_AM - 10 * HOUR_MS)
        );
    }

    #[test]
    fn only_the_start_of_an_hour_is_read_back() {
        assert_eq!(Hour::from_start(TEN_AM), Some(Hour::of(Timestamp(TEN_AM))));
        assert_eq!(Hour::from_start(TEN_AM + 1), None);
    }

    #[test]
    fn thirty_days_are_kept() {
        let now = Timestamp(TEN_AM + 5);
        assert_eq!(retained_since(now).start(), Timestamp(TEN_AM - 30 * DAY_MS));
    }

    #[test]
    fn counts_add_up_by_outcome() {
        let mut c = UsageCounts::default();
        assert!(c.is_empty());
        c.count(Outcome::Accepted);
        c.count(Outcome::Accepted);
        for r in Refusal::ALL {
            c.count(Outcome::Refused(r));
        }
        c.count(Outcome::Refused(Refusal::RateLimited));
        assert_eq!(c.accepted, 2);
        assert_eq!(c.rate_limited, 2);
        assert_eq!(c.expired, 1);
        assert_eq!(c.refused(), 5);
        let mut d = c;
        d.add(&c);
        assert_eq!(d.accepted, 4);
        assert_eq!(d.refused_for(Refusal::WrongSecret), 2);
        assert_eq!(UsageCounts::from_array(d.as_array()), d);
    }

    #[test]
    fn days_sum_their_hours_and_empty_days_are_zeros() {
        let now = Timestamp(TEN_AM);
        let one = UsageCounts {
            accepted: 1,
            revoked: 2,
            ..UsageCounts::default()
        };
        let hours = [
            (Hour::of(Timestamp(TEN_AM)), one),
            (Hour::of(Timestamp(TEN_AM - HOUR_MS)), one),
            (Hour::of(Timestamp(TEN_AM - 2 * DAY_MS)), one),
            // Too old for a 3-day view, and in the future: left out.
            (Hour::of(Timestamp(TEN_AM - 3 * DAY_MS)), one),
            (Hour::of(Timestamp(TEN_AM + DAY_MS)), one),
        ];
        let days = by_day(&hours, now, 3);
        assert_eq!(days.len(), 3);
        assert_eq!(days[2].0, Hour::of(now).day());
        assert_eq!(days[2].1.accepted, 2);
        assert_eq!(days[2].1.revoked, 4);
        assert!(days[1].1.is_empty());
        assert_eq!(days[0].1.accepted, 1);
        assert_eq!(days[0].0, Timestamp(days[2].0.millis() - 2 * DAY_MS));
    }
}
