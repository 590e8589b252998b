//! Why a request got no answer, read from the failed request's error chain,
//! so the CLI names the cause and what to do about it instead of one
//! "cannot reach" for everything.
//!
//! reqwest's error says only "error sending request"; the cause sits further
//! down its `source()` chain: hyper's connect error, then an `io::Error`
//! (refused, timed out, or wrapping rustls' certificate error), or the
//! resolver's "dns error". `io::Error::source()` skips the error it wraps,
//! so the walk also steps into `io::Error::get_ref()`.

use std::error::Error as StdError;
use std::io;

/// Why a request got no answer from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// Nothing listens at the address.
    Refused,
    /// The server's TLS certificate is not signed by a CA this client trusts.
    UntrustedCertificate,
    /// No answer in time.
    TimedOut,
    /// The host name did not resolve.
    NameNotResolved,
    /// Something else; the error text says what.
    Other,
}

impl ConnectFailure {
    /// The cause of a failed request (a timeout as reqwest counts one
    /// included).
    pub fn of_request(err: &reqwest::Error) -> ConnectFailure {
        match ConnectFailure::of(err) {
            ConnectFailure::Other if err.is_timeout() => ConnectFailure::TimedOut,
            found => found,
        }
    }

    /// The cause found in `err` or the errors under it.
    pub fn of(err: &(dyn StdError + 'static)) -> ConnectFailure {
        let mut found = ConnectFailure::Other;
        walk(err, &mut |e| {
            found = cause_of_one(e);
            found != ConnectFailure::Other
        });
        found
    }

    /// What to tell the user after "cannot reach the fal server at HOST: ".
    pub fn explain(self, cause: &str) -> String {
        match self {
            ConnectFailure::Refused => "connection refused (nothing listens there). \
                 Is `fal serve` running? (set --host or FAL_HOST)"
                .to_owned(),
            ConnectFailure::UntrustedCertificate => format!(
                "its TLS certificate is not trusted ({cause}). If the server uses its own CA \
                 or a self-signed certificate, set SSL_CERT_FILE to that CA or certificate file"
            ),
            ConnectFailure::TimedOut => "the connection timed out. Is the address right, and \
                 does no firewall drop the traffic? (set --host or FAL_HOST)"
                .to_owned(),
            ConnectFailure::NameNotResolved => "the host name could not be resolved (DNS). \
                 Check the name in --host or FAL_HOST"
                .to_owned(),
            ConnectFailure::Other => {
                format!("{cause}. Is `fal serve` running? (set --host or FAL_HOST)")
            }
        }
    }
}

/// The messages of `err` and the errors under it, joined by ": " (a
/// message equal to the one before it, or contained in it, is left out).
pub fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    walk(err, &mut |e| {
        let text = e.to_string();
        if !text.is_empty() && !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        false
    });
    parts.join(": ")
}

/// Calls `visit` on `err` and each error under it until `visit` says stop.
fn walk(err: &(dyn StdError + 'static), visit: &mut dyn FnMut(&(dyn StdError + 'static)) -> bool) {
    let mut next = Some(err);
    // A bound, in case a chain ever loops.
    for _ in 0..32 {
        let Some(e) = next else { return };
        if visit(e) {
            return;
        }
        next = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
}

/// The cause one error of the chain names, without looking under it.
fn cause_of_one(e: &(dyn StdError + 'static)) -> ConnectFailure {
    if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
        return ConnectFailure::UntrustedCertificate;
    }
    if let Some(io) = e.downcast_ref::<io::Error>() {
        match io.kind() {
            io::ErrorKind::ConnectionRefused => return ConnectFailure::Refused,
            io::ErrorKind::TimedOut => return ConnectFailure::TimedOut,
            _ => {}
        }
    }
    // The resolver's errors have no type of their own: hyper's connector
    // says "dns error", the system resolver "failed to lookup address
    // information: …".
    let text = e.to_string();
    if text == "dns error" || text.starts_with("failed to lookup address information") {
        return ConnectFailure::NameNotResolved;
    }
    ConnectFailure::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional error under it, as hyper's
    /// and reqwest's are.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<dyn StdError + Send + Sync>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
        }
    }

    fn sending(under: impl StdError + Send + Sync + 'static) -> Layer {
        Layer(
            "error sending request",
            Some(Box::new(Layer(
                "client error (Connect)",
                Some(Box::new(under)),
            ))),
        )
    }

    #[test]
    fn a_refused_connection_is_named() {
        let err = sending(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(ConnectFailure::of(&err), ConnectFailure::Refused);
        assert!(
            ConnectFailure::Refused
                .explain("x")
                .contains("Is `fal serve` running?")
        );
    }

    #[test]
    fn an_untrusted_certificate_is_named_through_the_io_error_wrapping_it() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let err = sending(io::Error::new(io::ErrorKind::InvalidData, tls));
        assert_eq!(
            ConnectFailure::of(&err),
            ConnectFailure::UntrustedCertificate
        );
        let text = chain_text(&err);
        assert!(
            text.starts_with("error sending request: client error (Connect): "),
            "{text}"
        );
        assert!(text.contains("UnknownIssuer"), "{text}");
        let said = ConnectFailure::UntrustedCertificate.explain(&text);
        assert!(
            said.contains("not trusted") && said.contains("SSL_CERT_FILE"),
            "{said}"
        );
        assert!(!said.contains("Is `fal serve` running"), "{said}");
    }

    #[test]
    fn other_tls_errors_are_not_called_untrusted() {
        let tls = rustls::Error::General("handshake went wrong".into());
        let err = sending(io::Error::new(io::ErrorKind::InvalidData, tls));
        assert_eq!(ConnectFailure::of(&err), ConnectFailure::Other);
    }

    #[test]
    fn a_timeout_is_named() {
        let err = sending(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(ConnectFailure::of(&err), ConnectFailure::TimedOut);
    }

    #[test]
    fn a_name_that_does_not_resolve_is_named() {
        let gai =
            io::Error::other("failed to lookup address information: Name or service not known");
        let err = sending(Layer("dns error", Some(Box::new(gai))));
        assert_eq!(ConnectFailure::of(&err), ConnectFailure::NameNotResolved);
        let bare = sending(io::Error::other(
            "failed to lookup address information: Name or service not known",
        ));
        assert_eq!(ConnectFailure::of(&bare), ConnectFailure::NameNotResolved);
    }

    #[test]
    fn an_unknown_cause_keeps_its_text() {
        let err = sending(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(ConnectFailure::of(&err), ConnectFailure::Other);
        let said = ConnectFailure::Other.explain(&chain_text(&err));
        assert!(
            said.starts_with("error sending request: client error (Connect): "),
            "{said}"
        );
    }
}
