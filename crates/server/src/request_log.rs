//! The one access line per request, written the same way for the router's
//! requests and the hand-written path's model calls, as one `tracing` event
//! at info level with the target `fal::access` (so `RUST_LOG` and
//! `--access-log off` can silence it): method, path (never the query, which
//! could carry anything; never a one-time link's id), status, duration in
//! milliseconds rounded to two places, the request id when one was given,
//! the key id (never a secret) when a key authenticated, and the app
//! (`owner/name`) for `/run` and `/queue`. Headers are never logged.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use fal_core::KeyId;

/// The target of the access lines.
pub const TARGET: &str = "fal::access";

tokio::task_local! {
    /// The key that authenticated the router request being served.
    static KEY: Cell<Option<KeyId>>;
}

/// One request, as its access line tells it.
pub struct Access<'a> {
    /// The method.
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The answer's status.
    pub status: u16,
    /// When its head had been read.
    pub started: Instant,
    /// The request id, when it was given one.
    pub request_id: Option<&'a str>,
    /// The key that authenticated it.
    pub key_id: Option<KeyId>,
}

/// Whether access lines are wanted (checked before gathering one).
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// Writes the access line.
pub fn request(a: Access<'_>) {
    let path = crate::flashes::loggable_path(a.path);
    tracing::info!(
        target: TARGET,
        method = a.method,
        path = %path,
        status = a.status,
        ms = rounded_ms(a.started.elapsed()),
        request_id = a.request_id,
        key_id = a.key_id.as_ref().map(tracing::field::display),
        app = app_of(a.path),
        "request"
    );
}

/// Runs a router request with room for the key that authenticates it
/// ([`note_key`]); gives back its outcome and that key.
pub async fn with_key<F: Future>(f: F) -> (F::Output, Option<KeyId>) {
    KEY.scope(Cell::new(None), async {
        let out = f.await;
        (out, KEY.try_with(Cell::get).ok().flatten())
    })
    .await
}

/// Notes the key that authenticated the router request being served.
pub fn note_key(key: Option<KeyId>) {
    let _ = KEY.try_with(|k| k.set(key));
}

/// `owner/name` of a `/run/owner/name/…` or `/queue/owner/name/…` path.
fn app_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/run/")
        .or_else(|| path.strip_prefix("/queue/"))?;
    let end = match rest.match_indices('/').nth(1) {
        Some((i, _)) => i,
        None => rest.len(),
    };
    let app = &rest[..end];
    let (owner, name) = app.split_once('/')?;
    (!owner.is_empty() && !name.is_empty()).then_some(app)
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

    #[test]
    fn apps_come_from_run_and_queue_paths() {
        assert_eq!(app_of("/run/acme/echo"), Some("acme/echo"));
        assert_eq!(app_of("/run/acme/echo/v1/x"), Some("acme/echo"));
        assert_eq!(app_of("/queue/acme/echo/requests/1"), Some("acme/echo"));
        assert_eq!(app_of("/run/acme"), None);
        assert_eq!(app_of("/run/acme/"), None);
        assert_eq!(app_of("/keys/acme/echo"), None);
    }
}
