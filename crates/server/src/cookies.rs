//! Every cookie this server sets: their names, the one builder, the one
//! reader, and the rule that keeps them away from upstreams.
//!
//! Under TLS every cookie is named with the `__Host-` prefix, which browsers
//! accept only from a secure origin, with `Path=/` and no `Domain`: a
//! sibling subdomain or another port cannot plant or overwrite it (login
//! CSRF). Over plain HTTP (local use) the bare name is used.
//!
//! This module is pure: no I/O, no state.

use axum::http::{HeaderMap, HeaderValue, header::COOKIE};

/// A cookie this server sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OurCookie {
    /// The dashboard's session token.
    Session,
    /// The GitHub web flow's `state` and PKCE verifier, for ten minutes.
    OAuth,
    /// The sign-in form's double-submit CSRF token.
    LoginCsrf,
}

/// Every cookie this server sets, by its bare name.
const ALL: [OurCookie; 3] = [OurCookie::Session, OurCookie::OAuth, OurCookie::LoginCsrf];

/// The prefixes browsers give meaning to; a cookie named with either and
/// one of our bare names is still ours.
const PREFIXES: [&str; 2] = ["__Host-", "__Secure-"];

impl OurCookie {
    /// The name without prefix.
    pub const fn bare_name(self) -> &'static str {
        match self {
            OurCookie::Session => "fal_session",
            OurCookie::OAuth => "fal_oauth",
            OurCookie::LoginCsrf => "fal_csrf",
        }
    }

    /// The name the cookie is set under: `__Host-` prefixed under TLS.
    pub const fn name(self, tls: bool) -> &'static str {
        match (self, tls) {
            (OurCookie::Session, true) => "__Host-fal_session",
            (OurCookie::OAuth, true) => "__Host-fal_oauth",
            (OurCookie::LoginCsrf, true) => "__Host-fal_csrf",
            (c, false) => c.bare_name(),
        }
    }
}

/// The attributes of every cookie this server sets: HttpOnly,
/// SameSite=Lax, `Path=/`, and Secure when served over TLS.
fn attributes(tls: bool) -> &'static str {
    if tls {
        "Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "Path=/; HttpOnly; SameSite=Lax"
    }
}

/// A `Set-Cookie` value that sets `cookie` to `value` for `max_age_secs`.
/// `None` when `value` holds bytes a header cannot carry (our values are
/// tokens we made, so this does not happen in practice).
pub fn set(cookie: OurCookie, tls: bool, value: &str, max_age_secs: u64) -> Option<HeaderValue> {
    let line = format!(
        "{}={value}; Max-Age={max_age_secs}; {}",
        cookie.name(tls),
        attributes(tls)
    );
    HeaderValue::from_str(&line).ok()
}

/// A `Set-Cookie` value that removes `cookie`, with the same attributes it
/// was set with (Secure under TLS).
pub fn clear(cookie: OurCookie, tls: bool) -> HeaderValue {
    let line = format!("{}=; Max-Age=0; {}", cookie.name(tls), attributes(tls));
    // Only our constant names and attributes: always a valid header value.
    HeaderValue::from_str(&line).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of `cookie` in the request's `Cookie` headers, under the name
/// it is set with (so under TLS a bare `fal_session` planted over plain
/// HTTP is not read).
pub fn read(headers: &HeaderMap, cookie: OurCookie, tls: bool) -> Option<String> {
    let want = cookie.name(tls);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == want)
        .map(|(_, value)| value.to_owned())
}

/// Whether a cookie name is one of ours, with or without a prefix.
pub fn is_ours(name: &[u8]) -> bool {
    let name = name.trim_ascii();
    let bare = PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p.as_bytes()))
        .unwrap_or(name);
    ALL.iter().any(|c| c.bare_name().as_bytes() == bare)
}

/// A `Cookie` header value with every cookie of ours taken out, for a
/// request that leaves for an upstream: `None` when nothing is left (the
/// header is then dropped), the value itself when none of ours was in it.
pub fn without_ours(value: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    let ours = |pair: &[u8]| {
        let name = pair.split(|&b| b == b'=').next().unwrap_or(pair);
        is_ours(name)
    };
    if !value.split(|&b| b == b';').any(ours) {
        return Some(std::borrow::Cow::Borrowed(value));
    }
    let mut kept = Vec::with_capacity(value.len());
    for pair in value.split(|&b| b == b';').filter(|p| !ours(p)) {
        let pair = pair.trim_ascii();
        if pair.is_empty() {
            continue;
        }
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(pair);
    }
    (!kept.is_empty()).then_some(std::borrow::Cow::Owned(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_host_prefixed_under_tls_only() {
        assert_eq!(OurCookie::Session.name(true), "__Host-fal_session");
        assert_eq!(OurCookie::Session.name(false), "fal_session");
        for c in ALL {
            assert_eq!(c.name(true), format!("__Host-{}", c.bare_name()));
        }
    }

    #[test]
    fn set_and_clear_carry_the_same_attributes() {
        let s = set(OurCookie::Session, true, "tok", 60).unwrap();
        assert_eq!(
            s.to_str().unwrap(),
            "__Host-fal_session=tok; Max-Age=60; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let c = clear(OurCookie::Session, true);
        assert_eq!(
            c.to_str().unwrap(),
            "__Host-fal_session=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(
            !clear(OurCookie::OAuth, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn read_takes_only_the_name_in_force() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; fal_session=plain"));
        h.append(
            COOKIE,
            HeaderValue::from_static("__Host-fal_session=secure"),
        );
        assert_eq!(
            read(&h, OurCookie::Session, false).as_deref(),
            Some("plain")
        );
        assert_eq!(
            read(&h, OurCookie::Session, true).as_deref(),
            Some("secure")
        );
        assert_eq!(read(&h, OurCookie::OAuth, true), None);
    }

    #[test]
    fn ours_are_taken_out_and_others_pass() {
        let strip = |v: &str| {
            without_ours(v.as_bytes()).map(|c| String::from_utf8(c.into_owned()).unwrap())
        };
        assert_eq!(strip("theme=dark").as_deref(), Some("theme=dark"));
        assert_eq!(strip("fal_session=x"), None);
        assert_eq!(
            strip("a=1; fal_session=x; b=2").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(
            strip(" __Host-fal_session=x;__Secure-fal_csrf=y ;fal_oauth=z"),
            None
        );
        assert_eq!(
            strip("fal_sessionx=1; xfal_session=2").as_deref(),
            Some("fal_sessionx=1; xfal_session=2")
        );
        assert!(is_ours(b" fal_csrf "));
        assert!(!is_ours(b"__host-fal_session-other"));
    }
}
