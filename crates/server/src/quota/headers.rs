//! The `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
//! headers on the router's answers to a rate-limited key (the hand-written
//! forwarding path writes its own, the same), and `Retry-After` with them
//! on a 429 ([`crate::error::ApiError::RateLimited`]).

use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use fal_core::Quota;

/// Where authentication leaves the caller's quota for [`headers`] to put
/// on the answer: put in the request's extensions by [`headers`], filled
/// by [`crate::extract::Caller`].
#[derive(Debug, Clone, Default)]
pub struct QuotaSlot(Arc<OnceLock<Quota>>);

impl QuotaSlot {
    /// Records the quota of this request's caller (the first one wins).
    pub fn fill(&self, quota: Quota) {
        let _ = self.0.set(quota);
    }
}

/// Router middleware: the caller's `RateLimit-*` headers on the answer,
/// when its key has a limit.
pub async fn headers(mut req: Request, next: Next) -> Response {
    let slot = QuotaSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    if let Some(quota) = slot.0.get() {
        set_headers(resp.headers_mut(), quota);
    }
    resp
}

/// Sets the `RateLimit-*` headers of `quota` (replacing any there).
pub fn set_headers(headers: &mut HeaderMap, quota: &Quota) {
    for (name, value) in quota.headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// Removes an upstream's `RateLimit-*` headers: on a gateway answer they
/// are fal's, whether the key has a limit or not.
pub fn remove_headers(headers: &mut HeaderMap) {
    for name in fal_core::rate::RATE_LIMIT_HEADERS {
        headers.remove(name);
    }
}
