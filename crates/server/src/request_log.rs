//! The one log line per request, written the same way for the router's
//! requests and the hand-written path's model calls: method, path (never
//! the query, which could carry anything; never a one-time link's id),
//! status and duration in milliseconds, rounded to two places. Headers are
//! never logged.

use std::time::{Duration, Instant};

/// Writes the line for a request whose head was read at `started`.
pub fn request(method: &str, path: &str, status: u16, started: Instant) {
    let path = crate::flashes::loggable_path(path);
    tracing::info!(
        method,
        %path,
        status,
        ms = rounded_ms(started.elapsed()),
        "request"
    );
}

/// Milliseconds, rounded to two decimal places (`0.49`, not
/// `0.48783000000000004`).
pub fn rounded_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_rounded() {
        assert_eq!(
            rounded_ms(Duration::from_nanos(487_830)).to_string(),
            "0.49"
        );
        assert_eq!(
            rounded_ms(Duration::from_micros(1_234_567)).to_string(),
            "1234.57"
        );
        assert_eq!(rounded_ms(Duration::ZERO).to_string(), "0");
    }
}
