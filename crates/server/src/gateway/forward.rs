//! hyper's forwarding path: model calls the hand-written path in
//! [`crate::front`] passes on (`https` upstreams, HTTP/1.0, `Expect`, …) go
//! to their upstream through [`UpstreamClient`], under the same rules
//! (see [`crate::h1::headers`] and [`crate::h1::target`]).

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use fal_core::Principal;
use fal_store::AppRecord;
use http_body_util::BodyExt;

use super::upstream::UpstreamClient;
use super::{GatewayError, log_failure, rules};
use crate::error::ApiError;
use crate::h1::headers::{
    HOP_BY_HOP, X_FAL_REQUEST_ID, check_response_framing, identity, stays_behind, tokens,
};
use crate::h1::target::{split_origin, upstream_path};

/// The absolute URL a model call goes to: the app's upstream, then the
/// path after its name (`tail`), then the query.
pub fn target(upstream: &str, tail: &str, query: Option<&str>) -> Option<String> {
    let (origin, base) = split_origin(upstream)?;
    let [base, tail] = upstream_path(base, tail);
    Some(match query {
        Some(q) => format!("{origin}{base}{tail}?{q}"),
        None => format!("{origin}{base}{tail}"),
    })
}

/// Forwards `req` to `target` (see [`target`]) for `principal`, and the
/// upstream's answer back, bodies streamed both ways.
pub async fn forward(
    upstream: &UpstreamClient,
    app: &AppRecord,
    principal: &Principal,
    req: Request,
    target: &str,
    request_id: &str,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    parts.uri = target.parse().map_err(|_| {
        ApiError::Internal(format!("bad upstream URL for {}/{}", app.owner, app.name))
    })?;
    parts.version = axum::http::Version::HTTP_11;
    let headers = &mut parts.headers;
    strip_connection_named(headers);
    // The same rule as the hand-written path: what stays behind, then our
    // cookies; who is calling comes from us only.
    let behind: Vec<HeaderName> = headers
        .keys()
        .filter(|n| stays_behind(n.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in behind {
        headers.remove(name);
    }
    rules::strip_our_cookies(headers);
    let mut key_text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    for (name, value) in identity(principal, request_id.as_bytes(), &mut key_text) {
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| ApiError::Internal("identity header".into()))?;
        headers.insert(name, value);
    }
    let rid = HeaderValue::from_str(request_id)
        .map_err(|_| ApiError::Internal("request id header".into()))?;

    let wait = Duration::from_millis(u64::try_from(app.timeout_ms).unwrap_or(0));
    let reach = upstream.policy().reach_of(app).await;
    // Trailers stay here; a failure of the client's body (hyper found its
    // framing broken) is told apart from the upstream's.
    let (body, client_failed) = rules::NoTrailers::new(body);
    // A body of unknown length (the client's was chunked) goes on chunked
    // whatever the method: hyper's client would send a GET's or a HEAD's
    // as none, where the hand-written path passes it on.
    if !http_body::Body::is_end_stream(&body) && http_body::Body::size_hint(&body).exact().is_none()
    {
        parts.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    let mut request = axum::http::Request::from_parts(parts, Body::new(body));
    let connection = hyper_util::client::legacy::connect::capture_connection(&mut request);
    let sent = upstream.request(request, reach);
    let failed = |e: GatewayError| {
        let mut r = ApiError::from(e).into_response();
        r.headers_mut().insert(X_FAL_REQUEST_ID, rid.clone());
        Ok(r)
    };
    let answered = match tokio::time::timeout(wait, sent).await {
        Err(_) => {
            log_failure(app, request_id, &GatewayError::Timeout(app.timeout_ms));
            return failed(GatewayError::Timeout(app.timeout_ms));
        }
        Ok(Err(_)) if client_failed.load(std::sync::atomic::Ordering::Relaxed) => {
            let mut r = rules::bad_chunked().closing();
            r.headers_mut().insert(X_FAL_REQUEST_ID, rid);
            return Ok(r);
        }
        Ok(Err(e)) => {
            log_failure(app, request_id, &e);
            return failed(e);
        }
        Ok(Ok(r)) => r,
    };
    let (mut parts, body) = answered.into_parts();
    // The same framing rules as the hand-written path: both framings, or a
    // coding but chunked, is a 502 (the body is dropped unread, so hyper
    // does not keep the connection).
    let te = parts.headers.get_all(header::TRANSFER_ENCODING);
    let has_length = parts.headers.contains_key(header::CONTENT_LENGTH);
    if let Err(e) = check_response_framing(te.iter().map(|v| v.as_bytes()), has_length) {
        log_failure(app, request_id, &GatewayError::Broken(e.into()));
        // Its framing in doubt, the connection is never used again.
        if let Some(c) = connection.connection_metadata().as_ref() {
            c.poison();
        }
        return failed(GatewayError::Unreachable);
    }
    strip_connection_named(&mut parts.headers);
    for h in HOP_BY_HOP {
        parts.headers.remove(h);
    }
    // A key's rate-limit headers are fal's (the router adds them).
    crate::quota::remove_headers(&mut parts.headers);
    if parts.status == StatusCode::NO_CONTENT || parts.status == StatusCode::NOT_MODIFIED {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    // The head goes out with the body's first data, or after a short wait
    // for it: a body that breaks before that is still a 502, as on the
    // hand-written path (where the head goes out with what came with it).
    let mut body = body;
    let first = if http_body::Body::is_end_stream(&body) {
        None
    } else {
        tokio::time::timeout(FIRST_DATA_WAIT, body.frame())
            .await
            .ok()
    };
    let body = match first {
        Some(Some(Err(e))) => {
            log_failure(app, request_id, &GatewayError::Broken(e.to_string()));
            if let Some(c) = connection.connection_metadata().as_ref() {
                c.poison();
            }
            return failed(GatewayError::Unreachable);
        }
        Some(Some(Ok(frame))) => match frame.into_data() {
            Ok(data) => Body::new(rules::NoTrailers::with_first(data, body)),
            Err(_trailers) => Body::empty(),
        },
        Some(None) => Body::empty(),
        None => Body::new(rules::NoTrailers::new(body).0),
    };
    parts.headers.insert(X_FAL_REQUEST_ID, rid);
    Ok(Response::from_parts(parts, body))
}

/// How long hyper's path waits for a response body's first data before
/// sending the head without it (a stream whose first event is slow).
const FIRST_DATA_WAIT: Duration = Duration::from_millis(100);

/// Removes the headers a `Connection` header names (and it), as the
/// hand-written path does with [`crate::h1::headers::ConnectionNamed`].
fn strip_connection_named(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| tokens(v.as_bytes()))
        .filter_map(|n| HeaderName::from_bytes(n).ok())
        .collect();
    for h in named {
        headers.remove(h);
    }
    headers.remove(header::CONNECTION);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_connection_named(&mut h);
        for n in HOP_BY_HOP {
            h.remove(n);
        }
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn targets_join_the_base_path_and_the_tail() {
        assert_eq!(
            target("http://h:1", "", None).as_deref(),
            Some("http://h:1/")
        );
        assert_eq!(
            target("https://h/v1", "/x", Some("a=1")).as_deref(),
            Some("https://h/v1/x?a=1")
        );
        assert_eq!(
            target("https://h/v1/", "", None).as_deref(),
            Some("https://h/v1")
        );
    }
}
