//! An app's upstream base URL, checked once when the app is registered
//! (through the REST API or the CLI) and carried as a type from then on.
//!
//! The rule: `http` or `https`, a host, no query, no fragment, no
//! credentials; a trailing slash is dropped. The gateway's hot path later
//! splits the stored string without parsing it again.

use std::fmt;

use http::Uri;

/// Why a URL cannot be an upstream; the message is what a 422 and the CLI
/// say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Not a URL at all.
    #[error("upstream {0:?} is not a URL; use http://HOST[:PORT][/PATH]")]
    NotAUrl(String),
    /// A scheme other than `http` or `https`.
    #[error("upstream scheme must be http or https, not {0:?}")]
    Scheme(String),
    /// No scheme.
    #[error("upstream {0:?} needs a scheme: http:// or https://")]
    NoScheme(String),
    /// No host, or an empty one.
    #[error("upstream {0:?} has no host")]
    NoHost(String),
    /// A query string.
    #[error("upstream must not have a query string")]
    Query,
    /// A fragment.
    #[error("upstream must not have a fragment")]
    Fragment,
    /// `user:password@` in the authority.
    #[error("upstream must not carry credentials in the URL")]
    Credentials,
}

/// A checked upstream base URL, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamUrl(String);

impl UpstreamUrl {
    /// Checks `url` as an upstream base URL.
    pub fn parse(url: &str) -> Result<UpstreamUrl, UpstreamError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| UpstreamError::NotAUrl(url.to_owned()))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            Some(other) => return Err(UpstreamError::Scheme(other.to_owned())),
            None => return Err(UpstreamError::NoScheme(url.to_owned())),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(UpstreamError::NoHost(url.to_owned()));
        }
        if uri.query().is_some() {
            return Err(UpstreamError::Query);
        }
        if url.contains('#') {
            return Err(UpstreamError::Fragment);
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(UpstreamError::Credentials);
        }
        Ok(UpstreamUrl(url.trim_end_matches('/').to_owned()))
    }
}

impl AsRef<str> for UpstreamUrl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<UpstreamUrl> for String {
    fn from(v: UpstreamUrl) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refusal(url: &str) -> String {
        UpstreamUrl::parse(url).unwrap_err().to_string()
    }

    #[test]
    fn upstreams_are_checked() {
        assert_eq!(
            UpstreamUrl::parse("http://127.0.0.1:9000/")
                .unwrap()
                .as_ref(),
            "http://127.0.0.1:9000"
        );
        assert!(UpstreamUrl::parse("https://models.internal/v1").is_ok());
        assert!(refusal("ftp://x").contains("http or https"));
        assert!(UpstreamUrl::parse("127.0.0.1:9000").is_err());
        assert!(refusal("http://x/?a=1").contains("query"));
        assert!(refusal("http://u:p@x/").contains("credentials"));
        assert!(UpstreamUrl::parse("not a url").is_err());
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert_eq!(
            refusal("ftp://x"),
            "upstream scheme must be http or https, not \"ftp\""
        );
        assert_eq!(
            refusal("not a url"),
            "upstream \"not a url\" is not a URL; use http://HOST[:PORT][/PATH]"
        );
        assert_eq!(
            refusal("/just/a/path"),
            "upstream \"/just/a/path\" needs a scheme: http:// or https://"
        );
        assert_eq!(
            refusal("http://x/#top"),
            "upstream must not have a fragment"
        );
        assert_eq!(
            refusal("http://u@x"),
            "upstream must not carry credentials in the URL"
        );
    }

    #[test]
    fn every_trailing_slash_goes() {
        let u = UpstreamUrl::parse("http://[::1]:8080/a/b//").unwrap();
        assert_eq!(u.to_string(), "http://[::1]:8080/a/b");
        assert_eq!(String::from(u), "http://[::1]:8080/a/b");
    }

    proptest! {
        #[test]
        fn well_formed_upstreams_are_kept_without_trailing_slashes(
            scheme in "https?",
            host in "[a-z][a-z0-9-]{0,15}(\\.[a-z][a-z0-9-]{0,15}){0,3}",
            port in proptest::option::of(1u16..),
            path in "(/[a-zA-Z0-9._~-]{0,10}){0,4}",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = format!("{scheme}://{host}{port}{path}");
            let parsed = UpstreamUrl::parse(&url).unwrap();
            prop_assert_eq!(parsed.as_ref(), url.trim_end_matches('/'));
            prop_assert!(!parsed.as_ref().ends_with('/'));
        }

        #[test]
        fn a_query_fragment_or_credentials_is_refused(
            host in "[a-z]{1,10}",
            extra in "[a-z0-9=&]{0,10}",
        ) {
            prop_assert_eq!(
                UpstreamUrl::parse(&format!("http://{host}/?{extra}")),
                Err(UpstreamError::Query)
            );
            prop_assert_eq!(
                UpstreamUrl::parse(&format!("http://{host}/#{extra}")),
                Err(UpstreamError::Fragment)
            );
            prop_assert_eq!(
                UpstreamUrl::parse(&format!("https://{extra}@{host}/")),
                Err(UpstreamError::Credentials)
            );
        }

        #[test]
        fn a_checked_upstream_checks_again_to_itself(s in "(https?://)?[ -~]{0,40}") {
            if let Ok(u) = UpstreamUrl::parse(&s) {
                prop_assert_eq!(UpstreamUrl::parse(u.as_ref()), Ok(u.clone()));
            }
        }
    }
}
