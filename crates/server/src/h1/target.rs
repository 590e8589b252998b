//! Where a model call goes: the path `/run/OWNER/NAME[/TAIL]` taken apart,
//! the tail checked, and the upstream's URL taken apart and joined with the
//! tail. One rule for both forwarding paths.

/// A model call's path taken apart (see [`split_run_path`]).
#[derive(Debug, PartialEq, Eq)]
pub struct RunPath<'a> {
    /// `OWNER/NAME`: the app directory's cache key, as it stands in the path.
    pub app: &'a str,
    /// The owner.
    pub owner: &'a str,
    /// The name.
    pub name: &'a str,
    /// The rest of the path after the name (may be empty).
    pub tail: &'a str,
}

/// Splits `/run/OWNER/NAME/REST` into its parts.
///
/// Runs once per model call, so it looks at bytes (the separators are
/// ASCII) rather than through `str`'s pattern machinery.
pub fn split_run_path(path: &str) -> Option<RunPath<'_>> {
    let rest = path.strip_prefix("/run/")?;
    let slash = |s: &str| s.bytes().position(|b| b == b'/');
    let (owner, after_owner) = rest.split_at_checked(slash(rest)?)?;
    let after_owner = after_owner.get(1..)?;
    let (name, tail) =
        after_owner.split_at_checked(slash(after_owner).unwrap_or(after_owner.len()))?;
    let app = &rest[..rest.len() - tail.len()];
    (!owner.is_empty() && !name.is_empty()).then_some(RunPath {
        app,
        owner,
        name,
        tail,
    })
}

/// Why a path after `/run/OWNER/NAME` may not go to an upstream: it could
/// step out of the app's base path there (`..` in any spelling, or a slash
/// or backslash the upstream may decode into a separator).
pub const ESCAPING_PATH: &str = "The path after /run/OWNER/NAME may not contain '.' or '..' segments (in any spelling, such as %2e%2e), an encoded slash (%2f), a backslash or an encoded backslash (%5c)";

/// Checks the part of a model call's path after the app's name (`tail`,
/// from [`split_run_path`]): refused when an upstream that
/// normalises paths could take it outside the app's base path. Refused
/// rather than normalised: such a path has no honest use, and a refusal
/// cannot be normalised differently by the two ends.
///
/// Refuses a segment that is `.` or `..` once `%2e`/`%2E` are read as dots
/// (also before a `;`, which some servers cut segments at), `%2f`, `%5c`
/// (either case) and a raw `\`.
pub fn tail_is_safe(tail: &str) -> bool {
    let bytes = tail.as_bytes();
    // The common path has none of the bytes that could spell a trick.
    if !bytes.iter().any(|&b| matches!(b, b'.' | b'%' | b'\\')) {
        return true;
    }
    if bytes.contains(&b'\\') {
        return false;
    }
    let lower = |i: usize| bytes.get(i).map(u8::to_ascii_lowercase);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' && lower(i + 1) == Some(b'2') && lower(i + 2) == Some(b'f') {
            return false;
        }
        if b == b'%' && lower(i + 1) == Some(b'5') && lower(i + 2) == Some(b'c') {
            return false;
        }
    }
    tail.split('/').all(|segment| {
        let segment = segment.split(';').next().unwrap_or(segment);
        let dots = dots_in(segment);
        !(dots == Some(1) || dots == Some(2))
    })
}

/// How many dots `segment` spells if it is made of nothing but `.`,
/// `%2e` and `%2E`; `None` otherwise.
fn dots_in(segment: &str) -> Option<usize> {
    let mut rest = segment.as_bytes();
    let mut n = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[..2] == *b"%2" && rest[2].eq_ignore_ascii_case(&b'e') {
            rest = &rest[3..];
        } else {
            return None;
        }
        n += 1;
    }
    Some(n)
}

/// A plain-HTTP upstream base URL taken apart (see [`split_upstream`]).
#[derive(Debug, PartialEq, Eq)]
pub struct UpstreamParts<'a> {
    /// `host[:port]` as written: the `Host` header and the pool's key.
    pub authority: &'a str,
    /// The host to connect to (no brackets around an IPv6 address).
    pub host: &'a str,
    /// The port (80 when not written).
    pub port: u16,
    /// The base path, without a trailing slash; may be empty.
    pub base: &'a str,
}

/// Takes an `http://` upstream apart; `None` for `https` (and anything
/// that is not a plain-HTTP URL), which goes through hyper's client.
///
/// Runs twice per model call, so it looks at bytes (every separator is
/// ASCII) rather than through `str`'s pattern machinery.
pub fn split_upstream(url: &str) -> Option<UpstreamParts<'_>> {
    let rest = url.strip_prefix("http://")?;
    let slash = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
    let (authority, base) = rest.split_at_checked(slash)?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.bytes().position(|b| b == b']')?;
        let (host, after) = (v6.get(..close)?, v6.get(close + 1..)?);
        match after.strip_prefix(':') {
            Some(p) => (host, p.parse().ok()?),
            None if after.is_empty() => (host, 80),
            None => return None,
        }
    } else {
        match authority.bytes().rposition(|b| b == b':') {
            Some(i) => (authority.get(..i)?, authority.get(i + 1..)?.parse().ok()?),
            None => (authority, 80),
        }
    };
    let base_len = base.len() - base.bytes().rev().take_while(|&b| b == b'/').count();
    (!host.is_empty()).then_some(UpstreamParts {
        authority,
        host,
        port,
        base: base.get(..base_len)?,
    })
}

/// The path an upstream is asked for: its base path, then the tail; an
/// upstream without a path (`http://host:port`) and an empty tail still
/// needs one, `/`. Both paths write exactly these two pieces.
pub fn upstream_path<'a>(base: &'a str, tail: &'a str) -> [&'a str; 2] {
    if base.is_empty() && tail.is_empty() {
        ["", "/"]
    } else {
        [base, tail]
    }
}

/// An upstream URL of any scheme taken apart: `scheme://authority` and the
/// base path without its trailing slashes (see [`upstream_path`]). `None`
/// for a URL without `://`.
pub fn split_origin(url: &str) -> Option<(&str, &str)> {
    let scheme_end = url.find("://")? + 3;
    let path_at = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let (origin, base) = url.split_at(path_at);
    Some((origin, base.trim_end_matches('/')))
}

/// Whether a request target is one the hand-written path forwards as it
/// is: an origin-form path and query made only of the bytes the `http`
/// crate's URI parser (hyper's path) takes, without a fragment. A target
/// that fails is handed to hyper, which refuses it (bad bytes) or drops the
/// fragment, so that both paths treat it alike.
pub fn is_plain_target(target: &str) -> bool {
    let bytes = target.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.len() >= usize::from(u16::MAX) {
        return false;
    }
    let mut in_query = false;
    bytes.iter().all(|&b| match b {
        b'#' => false,
        b'?' if !in_query => {
            in_query = true;
            true
        }
        // The `http` crate's two byte classes (bytes of UTF-8 sequences
        // pass both: a `&str` holds only whole ones).
        _ if in_query => matches!(b, 0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E | 0x80..=0xFF),
        _ => matches!(
            b,
            0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E | 0x80..=0xFF
                | b'"' | b'{' | b'}'
        ),
    })
}

/// [`is_plain_target`] for a target httparse has read, whose bytes are all
/// in `!`..=`~` or above `0x7F` (its URI token set): of those, only `"`,
/// `#`, `<`, `>` and `` ` `` can make it not plain, so the common target is
/// checked in one pass of vector code (folded, without stopping early).
#[inline]
pub fn is_plain_parsed_target(target: &str) -> bool {
    let suspect = target.as_bytes().iter().fold(false, |s, &b| {
        s | matches!(b, b'"' | b'#' | b'<' | b'>' | b'`')
    });
    if suspect || target.len() >= usize::from(u16::MAX) {
        return is_plain_target(target);
    }
    target.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_paths_split_into_owner_name_and_tail() {
        let parts = |p| split_run_path(p).map(|r| (r.app, r.owner, r.name, r.tail));
        assert_eq!(
            parts("/run/fal-ai/echo"),
            Some(("fal-ai/echo", "fal-ai", "echo", ""))
        );
        assert_eq!(parts("/run/a/b/c/d"), Some(("a/b", "a", "b", "/c/d")));
        assert_eq!(parts("/run/a/b/"), Some(("a/b", "a", "b", "/")));
        assert_eq!(split_run_path("/run/a"), None);
        assert_eq!(split_run_path("/run//b"), None);
    }

    #[test]
    fn dot_segments_and_encoded_separators_are_refused() {
        for bad in [
            "/../../../admin",
            "/..",
            "/.",
            "/a/./b",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/.%2e/x",
            "/%2e./x",
            "/%2e",
            "/..%2fadmin",
            "/..%2Fadmin",
            "/a%5c..%5cb",
            "/a\\..\\b",
            "/..;/admin",
            "/x/..",
        ] {
            assert!(!tail_is_safe(bad), "{bad}");
        }
        for good in [
            "",
            "/",
            "/v1/predict",
            "/file.json",
            "/...",
            "/a..b",
            "/.well-known/x",
            "/%2e%2e%2e",
            "/a%20b",
            "/%25",
        ] {
            assert!(tail_is_safe(good), "{good}");
        }
    }

    #[test]
    fn upstream_urls_split_for_the_pool() {
        assert_eq!(
            split_upstream("http://127.0.0.1:9000/v1/"),
            Some(UpstreamParts {
                authority: "127.0.0.1:9000",
                host: "127.0.0.1",
                port: 9000,
                base: "/v1"
            })
        );
        assert_eq!(
            split_upstream("http://[::1]/").map(|u| (u.host, u.port, u.base)),
            Some(("::1", 80, ""))
        );
        assert_eq!(
            split_upstream("http://[::1]:8080/a/b//").map(|u| (
                u.authority,
                u.host,
                u.port,
                u.base
            )),
            Some(("[::1]:8080", "::1", 8080, "/a/b"))
        );
        assert_eq!(
            split_upstream("http://models.internal").map(|u| (u.authority, u.port, u.base)),
            Some(("models.internal", 80, ""))
        );
        assert_eq!(split_upstream("https://models.internal"), None);
        assert_eq!(split_upstream("http://host:notaport"), None);
        assert_eq!(split_upstream("http://[::1]x/"), None);
        assert_eq!(split_upstream("http://:80/"), None);
    }

    #[test]
    fn a_bare_upstream_gets_a_root_path_and_bases_lose_trailing_slashes() {
        assert_eq!(upstream_path("", ""), ["", "/"]);
        assert_eq!(upstream_path("", "/x"), ["", "/x"]);
        assert_eq!(upstream_path("/v1", ""), ["/v1", ""]);
        assert_eq!(
            split_origin("https://h.example:8443/v1//"),
            Some(("https://h.example:8443", "/v1"))
        );
        assert_eq!(split_origin("http://h"), Some(("http://h", "")));
        assert_eq!(split_origin("h/v1"), None);
    }

    #[test]
    fn plain_targets_are_what_the_http_crate_takes_without_a_fragment() {
        let http_takes = |t: &str| {
            t.parse::<axum::http::uri::PathAndQuery>()
                .is_ok_and(|p| p.as_str() == t)
        };
        for t in [
            "/run/a/b",
            "/run/a/b/x?q=1&r=%20",
            "/run/a/b/{\"j\":1}",
            "/run/a/b?x=<a>`?`{}",
            "/run/a/b/caf\u{e9}",
            "/run/a/b/a`b",
            "/run/a/b/a<b",
            "/run/a/b/a>b",
            "/run/a/b?q=\"b\"",
            "/run/a/b/x#f",
            "/run/a/b/x y",
            "/run/a/b/x\\y",
            "/run/a/b/x^y",
            "/run/a/b?x|y",
            "",
        ] {
            assert_eq!(is_plain_target(t), http_takes(t), "{t:?}");
        }
        // Asterisk-form is a URI to the crate, not a path to forward.
        assert!(!is_plain_target("*"));
    }

    proptest::proptest! {
        #[test]
        fn the_quick_check_agrees_on_what_httparse_reads(tail in "[!-~\u{e9}]{0,24}") {
            let t = format!("/run/a/b{tail}");
            proptest::prop_assert_eq!(is_plain_parsed_target(&t), is_plain_target(&t), "{:?}", t);
        }

        #[test]
        fn plain_targets_agree_with_the_http_crate(tail in "[ -~\u{e9}]{0,24}") {
            let t = format!("/run/a/b{tail}");
            let http_takes = t
                .parse::<axum::http::uri::PathAndQuery>()
                .is_ok_and(|p| p.as_str() == t);
            proptest::prop_assert_eq!(is_plain_target(&t), http_takes, "{:?}", t);
        }
    }
}
