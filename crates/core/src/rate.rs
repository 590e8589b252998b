//! A key's rate limit (`100/s`, `100/min`, `100/h`), checked once where it
//! enters (the REST API, the dashboard, the CLI) and carried as a type, and
//! [`Quota`], what the `RateLimit-*` headers of one answer say.
//!
//! Windows are fixed and aligned to the Unix epoch, so that every server
//! of a cluster agrees on them without talking: a `100/min` key may make
//! 100 calls between `12:00:00` and `12:00:59.999`, and 100 again from
//! `12:01:00`.

use std::fmt;
use std::str::FromStr;

/// Most calls a limit may allow in one window.
pub const MAX_RATE_CALLS: u32 = 1_000_000_000;

/// The period of a rate limit's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RatePeriod {
    /// One second (`/s`).
    Second,
    /// One minute (`/min`).
    Minute,
    /// One hour (`/h`).
    Hour,
}

impl RatePeriod {
    /// The window's length in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            RatePeriod::Second => 1_000,
            RatePeriod::Minute => 60_000,
            RatePeriod::Hour => 3_600_000,
        }
    }

    /// How it is written after the slash.
    pub fn suffix(self) -> &'static str {
        match self {
            RatePeriod::Second => "s",
            RatePeriod::Minute => "min",
            RatePeriod::Hour => "h",
        }
    }

    fn parse(raw: &str) -> Option<RatePeriod> {
        let p = raw.trim().to_ascii_lowercase();
        match p.as_str() {
            "s" | "sec" | "second" => Some(RatePeriod::Second),
            "min" | "minute" => Some(RatePeriod::Minute),
            "h" | "hr" | "hour" => Some(RatePeriod::Hour),
            _ => None,
        }
    }
}

/// Why a rate limit was refused; the message says what to write instead
/// (it is what a 422, the dashboard and the CLI say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// Not `<calls>/<period>`.
    #[error(
        "rate limit {0:?} is not of the form <calls>/<period>: write e.g. 100/s, 100/min or 100/h"
    )]
    Form(String),
    /// The period is none of `s`, `min`, `h`.
    #[error("rate limit period {0:?} is unknown: use s, min or h (e.g. 100/min)")]
    Period(String),
    /// The count is not a whole number from 1 to [`MAX_RATE_CALLS`].
    #[error("rate limit calls {0:?} must be a whole number from 1 to {MAX_RATE_CALLS}")]
    Calls(String),
}

/// A checked rate limit: from 1 to [`MAX_RATE_CALLS`] calls per window of
/// one [`RatePeriod`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    calls: u32,
    period: RatePeriod,
}

impl RateLimit {
    /// `calls` per `period`; `None` when `calls` is 0 or over
    /// [`MAX_RATE_CALLS`].
    pub fn new(calls: u32, period: RatePeriod) -> Option<RateLimit> {
        (1..=MAX_RATE_CALLS)
            .contains(&calls)
            .then_some(RateLimit { calls, period })
    }

    /// Reads `100/s`, `100/min` or `100/h` (also `sec`, `second`,
    /// `minute`, `hr`, `hour`; surrounding whitespace ignored).
    pub fn parse(raw: &str) -> Result<RateLimit, RateLimitError> {
        let text = raw.trim();
        let (calls, period) = text
            .split_once('/')
            .ok_or_else(|| RateLimitError::Form(text.to_owned()))?;
        let period =
            RatePeriod::parse(period).ok_or_else(|| RateLimitError::Period(period.to_owned()))?;
        let calls_text = calls.trim();
        let bad_calls = || RateLimitError::Calls(calls_text.to_owned());
        if calls_text.is_empty() || !calls_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_calls());
        }
        let calls: u32 = calls_text.parse().map_err(|_| bad_calls())?;
        RateLimit::new(calls, period).ok_or_else(bad_calls)
    }

    /// Calls allowed per window.
    pub fn calls(self) -> u32 {
        self.calls
    }

    /// The window's period.
    pub fn period(self) -> RatePeriod {
        self.period
    }

    /// The start (ms since the epoch) of the window `now_ms` falls in.
    pub fn window_start(self, now_ms: i64) -> i64 {
        let p = self.period.millis();
        now_ms.div_euclid(p) * p
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.calls, self.period.suffix())
    }
}

impl FromStr for RateLimit {
    type Err = RateLimitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RateLimit::parse(s)
    }
}

impl serde::Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RateLimit::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What one answer tells a key's caller about its limit: the
/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers
/// (and `Retry-After`, the same as `reset_secs`, on a 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Calls allowed per window.
    pub limit: u32,
    /// Calls left in this window (across the cluster, as this server last
    /// heard).
    pub remaining: u32,
    /// Whole seconds until the window ends (at least 1).
    pub reset_secs: u32,
}

impl Quota {
    /// The three `RateLimit-*` headers, as `(name, value)`.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", self.reset_secs.to_string()),
        ]
    }
}

/// Headers fal sets on a gateway answer, which an upstream's own are not
/// allowed to contradict.
pub const RATE_LIMIT_HEADERS: [&str; 3] =
    ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_periods_parse_and_print_back() {
        for (text, calls, period) in [
            ("100/s", 100, RatePeriod::Second),
            ("5/min", 5, RatePeriod::Minute),
            ("1000/h", 1000, RatePeriod::Hour),
            (" 7 / second ", 7, RatePeriod::Second),
            ("3/MINUTE", 3, RatePeriod::Minute),
            ("2/hr", 2, RatePeriod::Hour),
        ] {
            let r = RateLimit::parse(text).unwrap();
            assert_eq!((r.calls(), r.period()), (calls, period), "{text}");
            assert_eq!(RateLimit::parse(&r.to_string()).unwrap(), r);
        }
        assert_eq!(RateLimit::parse("100/min").unwrap().to_string(), "100/min");
    }

    #[test]
    fn refusals_say_what_to_write() {
        for (text, says) in [
            ("100", "of the form <calls>/<period>"),
            ("100/d", "use s, min or h"),
            ("0/s", "from 1 to"),
            ("-1/s", "from 1 to"),
            ("+1/s", "from 1 to"),
            ("1.5/s", "from 1 to"),
            ("/s", "from 1 to"),
            ("1000000001/s", "from 1 to"),
            ("99999999999999999999/s", "from 1 to"),
        ] {
            let e = RateLimit::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let r = RateLimit::parse("10/min").unwrap();
        assert_eq!(r.window_start(0), 0);
        assert_eq!(r.window_start(59_999), 0);
        assert_eq!(r.window_start(60_000), 60_000);
        assert_eq!(r.window_start(-1), -60_000);
    }

    #[test]
    fn serde_uses_the_written_form() {
        let r: RateLimit = serde_json::from_str("\"20/h\"").unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"20/h\"");
        assert!(serde_json::from_str::<RateLimit>("\"20/y\"").is_err());
    }
}
