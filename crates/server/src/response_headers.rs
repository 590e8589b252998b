//! Headers every answer of ours carries, and the one that keeps secrets
//! out of caches.
//!
//! - `X-Content-Type-Options: nosniff` on every response the router sends
//!   (API, dashboard, errors): a browser never reads our JSON, or an
//!   upstream's answer, as HTML or script.
//! - `Cache-Control: no-store` on every response that carries a secret or a
//!   token (`POST /keys`, the device flow, `/auth/refresh`, the web flow's
//!   redirects, every dashboard page): no browser, proxy or CDN keeps a copy.
//!
//! Both are `insert`ed, never appended, so no response carries one twice.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, X_CONTENT_TYPE_OPTIONS};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Router middleware: `X-Content-Type-Options: nosniff` on every response
/// (the gateway's hyper path included; the hand-written path adds its own,
/// [`crate::h1::headers::NOSNIFF`]). `insert`, so an upstream's own is
/// replaced, never doubled.
pub async fn nosniff(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

/// `resp` with `Cache-Control: no-store`: for anything carrying a secret or
/// a token.
pub fn no_store(resp: impl IntoResponse) -> Response {
    let mut resp = resp.into_response();
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Router middleware for the dashboard: a strict Content-Security-Policy,
/// no framing, no referrer and `no-store` on every page (`nosniff` comes
/// from [`nosniff`], on every answer of the router).
pub async fn dashboard(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
