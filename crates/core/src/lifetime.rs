//! A key's lifetime: when it stops working ([`ExpiryPolicy`]), and how long
//! the old pair of a rolled key keeps working ([`Grace`]). Parsed once from
//! what a person typed (`30d`, `1h`, RFC 3339 dates) into these types.
//!
//! The rules:
//! - a key expires at one instant; from then on it is refused like a
//!   revoked key (see [`crate::verify`]);
//! - a key made with a lifetime (`30d`) keeps that policy when rolled: the
//!   new pair lives as long again from the roll; a key made with a date
//!   keeps the date;
//! - rolling gives the old pair a grace of 0 (at once) to [`MAX_GRACE_MS`];
//!   it never lengthens the old pair's life.

use std::fmt;
use std::str::FromStr;

use crate::time::Timestamp;

const SECOND_MS: i64 = 1000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The longest grace a rolled key's old pair may have: 7 days.
pub const MAX_GRACE_MS: i64 = 7 * DAY_MS;

/// The longest lifetime a key may be given: 10 years.
pub const MAX_LIFETIME_MS: i64 = 3650 * DAY_MS;

/// A length of time, written `<number><unit>` with unit `s`, `m`, `h`,
/// `d` or `w` (`90s`, `15m`, `12h`, `30d`, `2w`), or `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span(i64);

/// Why a text is not a [`Span`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a length of time is a whole number and a unit: 90s, 15m, 12h, 30d or 2w")]
pub struct SpanError;

impl Span {
    /// A span of `ms` milliseconds (negative counts as 0).
    pub fn from_millis(ms: i64) -> Span {
        Span(ms.max(0))
    }

    /// Its length in milliseconds.
    pub fn millis(self) -> i64 {
        self.0
    }
}

impl FromStr for Span {
    type Err = SpanError;
    fn from_str(s: &str) -> Result<Span, SpanError> {
        let s = s.trim();
        if s == "0" {
            return Ok(Span(0));
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or(SpanError)?;
        let (digits, unit) = s.split_at(split);
        if digits.is_empty() || digits.len() > 12 {
            return Err(SpanError);
        }
        let n: i64 = digits.parse().map_err(|_| SpanError)?;
        let unit_ms = match unit {
            "s" => SECOND_MS,
            "m" | "min" => MINUTE_MS,
            "h" => HOUR_MS,
            "d" => DAY_MS,
            "w" => 7 * DAY_MS,
            _ => return Err(SpanError),
        };
        n.checked_mul(unit_ms).map(Span).ok_or(SpanError)
    }
}

impl fmt::Display for Span {
    /// The largest unit that divides it exactly: `30d`, `90m`, `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms == 0 {
            return f.write_str("0");
        }
        for (unit, len) in [
            ("d", DAY_MS),
            ("h", HOUR_MS),
            ("m", MINUTE_MS),
            ("s", SECOND_MS),
        ] {
            if ms % len == 0 {
                return write!(f, "{}{unit}", ms / len);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// When a key stops working, as its owner asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryPolicy {
    /// It works until revoked.
    Never,
    /// It works for this long after it is made (and again after a roll).
    After(Span),
    /// It works until this instant.
    At(Timestamp),
}

/// Why an expiry asked for cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryError {
    /// Both a date and a lifetime were given.
    #[error("give either expires_at (a date) or expires_in (a length such as 30d), not both")]
    Both,
    /// The date is not RFC 3339.
    #[error("expires_at is an RFC 3339 date and time such as 2026-12-31T23:59:00Z")]
    BadDate,
    /// The lifetime is not a length of time.
    #[error("expires_in is a whole number and a unit: 90s, 15m, 12h, 30d or 2w")]
    BadSpan,
    /// The lifetime is zero or more than ten years.
    #[error("expires_in must be more than 0 and at most 3650d")]
    SpanOutOfRange,
    /// The date is not in the future.
    #[error("expires_at {0} is not in the future: give a later date")]
    InPast(String),
}

impl ExpiryPolicy {
    /// The policy for a request that may give a date (`expires_at`, RFC
    /// 3339) or a lifetime (`expires_in`, such as `30d`), not both; neither
    /// is [`ExpiryPolicy::Never`]. A date must be after `now`.
    pub fn from_request(
        expires_at: Option<&str>,
        expires_in: Option<&str>,
        now: Timestamp,
    ) -> Result<ExpiryPolicy, ExpiryError> {
        match (expires_at, expires_in) {
            (Some(_), Some(_)) => Err(ExpiryError::Both),
            (Some(at), None) => {
                let t = Timestamp::parse_rfc3339(at).ok_or(ExpiryError::BadDate)?;
                if t <= now {
                    return Err(ExpiryError::InPast(at.trim().to_owned()));
                }
                Ok(ExpiryPolicy::At(t))
            }
            (None, Some(span)) => {
                let span: Span = span.parse().map_err(|_| ExpiryError::BadSpan)?;
                if span.0 == 0 || span.0 > MAX_LIFETIME_MS {
                    return Err(ExpiryError::SpanOutOfRange);
                }
                Ok(ExpiryPolicy::After(span))
            }
            (None, None) => Ok(ExpiryPolicy::Never),
        }
    }

    /// When a key made (or rolled) at `now` under this policy expires.
    pub fn deadline(self, now: Timestamp) -> Option<Timestamp> {
        match self {
            ExpiryPolicy::Never => None,
            ExpiryPolicy::After(span) => Some(now.plus_millis(span.0)),
            ExpiryPolicy::At(t) => Some(t),
        }
    }

    /// The policy of a stored key: its lifetime if it was made with one,
    /// else its date if it has one.
    pub fn stored(lifetime: Option<Span>, expires_at: Option<Timestamp>) -> ExpiryPolicy {
        match (lifetime, expires_at) {
            (Some(span), _) => ExpiryPolicy::After(span),
            (None, Some(t)) => ExpiryPolicy::At(t),
            (None, None) => ExpiryPolicy::Never,
        }
    }

    /// The lifetime to store, when the policy is one.
    pub fn lifetime(self) -> Option<Span> {
        match self {
            ExpiryPolicy::After(span) => Some(span),
            _ => None,
        }
    }
}

/// How long a rolled key's old pair keeps working: 0 (the default) to
/// [`MAX_GRACE_MS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Grace(Span);

/// Why a grace cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GraceError {
    /// Not a length of time.
    #[error("grace is a whole number and a unit: 0, 90s, 15m, 1h or 7d")]
    Bad,
    /// Longer than seven days.
    #[error("grace is at most 7d: the old key must stop working within a week")]
    TooLong,
}

impl FromStr for Grace {
    type Err = GraceError;
    fn from_str(s: &str) -> Result<Grace, GraceError> {
        let span: Span = s.parse().map_err(|_| GraceError::Bad)?;
        if span.0 > MAX_GRACE_MS {
            return Err(GraceError::TooLong);
        }
        Ok(Grace(span))
    }
}

impl Grace {
    /// When the old pair of a key rolled at `now` stops working: the end
    /// of the grace, or its own expiry if that comes first.
    pub fn old_deadline(self, now: Timestamp, expires_at: Option<Timestamp>) -> Timestamp {
        let end = now.plus_millis(self.0.0);
        expires_at.map_or(end, |t| t.min(end))
    }

    /// The grace as a span.
    pub fn span(self) -> Span {
        self.0
    }
}

#[cfg(test)]
#[path = "lifetime_tests.rs"]
mod tests;
