//! Server configuration, built by the CLI (or a test) and passed in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The address `fal serve` listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8420";

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to accept connections; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Where to serve `/metrics` without credentials (`--metrics-listen`;
    /// a private address). `None`: only on `listen`, to ADMIN callers.
    pub metrics_listen: Option<SocketAddr>,
    /// Holds the SQLite database and, by default, the pepper file.
    pub data_dir: PathBuf,
    /// A pepper file elsewhere than the data directory (shared by several
    /// servers, or kept on a separate volume).
    pub pepper_file: Option<PathBuf>,
    /// A database URL; `None` means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// How many key records the verification cache holds at most
    /// (`--key-cache`): about 200 bytes each, so the default million is
    /// about 200 MB when full. Past it, the least used are read again from
    /// storage when next used.
    pub cache_capacity: u64,
    /// How long a cached key record is trusted before it is read again,
    /// even without a change notification.
    pub max_staleness: Duration,
    /// How often `last_used_at` is written back, in one batch.
    pub usage_flush_interval: Duration,
    /// Serve the built-in demo app `fal-ai/echo`.
    pub demo: bool,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// How often the TLS files are checked for changes, which reload them
    /// (`--tls-watch-interval`; see [`crate::tls`]); `None`: only on SIGHUP.
    pub tls_watch_interval: Option<Duration>,
    /// Sign-in with GitHub, when configured.
    pub github: Option<crate::github::GithubConfig>,
    /// The origin browsers reach this server at (`https://fal.example.com`),
    /// checked by [`parse_public_url`]: the GitHub web flow's `redirect_uri`
    /// is built from it, never from a request's `Host` header. See
    /// [`Config::public_base`] for the default.
    pub public_url: Option<String>,
    /// Lifetimes of sessions after GitHub sign-in.
    pub session_ttl: crate::auth::sessions::SessionTtl,
    /// How long a client connection may sit idle between requests, or take
    /// to send a request head, before it is closed (so idle and slow
    /// clients cannot hold connections forever).
    pub idle_timeout: Duration,
    /// How long a request body the server reads may take to arrive whole,
    /// and the longest pause inside a `/run` body (see [`crate::limits`]).
    pub body_timeout: Duration,
    /// The largest request body the server reads itself (`/run` bodies are
    /// streamed and not limited).
    pub max_body_size: usize,
    /// The most client connections served at once, across all workers
    /// (lowered at start to what the open-file limit can hold).
    pub max_connections: usize,
    /// GitHub users who manage every app and user, besides the bootstrap
    /// admin user: logins, or numeric GitHub ids (digits only).
    pub operators: Vec<String>,
    /// Let operators register upstreams on cloud-metadata addresses
    /// (169.254.169.254 and the like); refused for everyone otherwise.
    pub allow_metadata_upstreams: bool,
    /// Whether plain HTTP/1.1 model calls take the hand-written forwarding
    /// path (see `crate::front`). `false` sends every request through hyper
    /// and the router: for the differential tests and benchmarks that
    /// compare the two paths. Not a flag of `fal serve`.
    pub hand_path: bool,
    /// Failed-auth throttling: how many refused credentials a client
    /// address may send in a window, and whose `X-Forwarded-For` says who
    /// the client is (see [`crate::throttle`]).
    pub throttle: crate::throttle::ThrottleConfig,
    /// How long a queued request's answer is kept (`--queue-retention`).
    pub queue_retention: Duration,
    /// How many queued requests of one app a server runs at once
    /// (`--queue-concurrency`).
    pub queue_concurrency: usize,
    /// How long a server's claim on a queued request lasts unrenewed: a
    /// server that dies has its requests taken over after this (30 s; not
    /// a flag of `fal serve`, tests shorten it).
    pub queue_lease: Duration,
    /// How the queue's commits reach the disk (`--queue-sync`): `Normal`
    /// (the default) survives a crash of `fal serve`, not a power cut.
    pub queue_sync: fal_store::CommitSync,
    /// Where the public keys that sign secret scanning reports are
    /// published (`--secret-scanning-keys-url`; GitHub's by default).
    pub secret_scanning_keys_url: String,
    /// How long audit events are kept (`--audit-retention`, a year by
    /// default); older ones are pruned hourly.
    pub audit_retention: Duration,
}

/// The PEM files for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
    /// 32 bytes in hex that seal session tickets, shared by the servers of
    /// a cluster so any of them resumes a session (`--tls-ticket-key-file`;
    /// see [`crate::tls::tickets`]). `None`: each server's own random keys.
    pub ticket_key: Option<PathBuf>,
}

impl Config {
    /// Defaults for a server keeping its data in `data_dir`.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8420)),
            metrics_listen: None,
            data_dir,
            pepper_file: None,
            database_url: None,
            cache_capacity: 1_000_000,
            max_staleness: Duration::from_secs(5),
            usage_flush_interval: Duration::from_secs(10),
            demo: false,
            tls: None,
            tls_watch_interval: Some(Duration::from_secs(2)),
            github: None,
            public_url: None,
            session_ttl: crate::auth::sessions::SessionTtl::default(),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_body_size: 64 * 1024,
            max_connections: 10_000,
            operators: Vec::new(),
            allow_metadata_upstreams: false,
            hand_path: true,
            throttle: crate::throttle::ThrottleConfig::default(),
            queue_retention: Duration::from_secs(7 * 24 * 3600),
            queue_concurrency: 8,
            queue_lease: Duration::from_secs(30),
            queue_sync: fal_store::CommitSync::Normal,
            secret_scanning_keys_url: crate::secret_scanning::DEFAULT_KEYS_URL.to_owned(),
            audit_retention: Duration::from_secs(365 * 24 * 3600),
        }
    }

    /// The pepper file in use.
    pub fn pepper_path(&self) -> PathBuf {
        self.pepper_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("pepper"))
    }

    /// The origin the GitHub web flow sends browsers back to: `--public-url`
    /// when given; otherwise the listen address with `https` under TLS and
    /// `http` without, when that address is one a browser can reach (a
    /// specific IP and port). `None` (the web flow is refused, saying to set
    /// `--public-url`) for a wildcard address (`0.0.0.0`, `::`) or port 0.
    pub fn public_base(&self) -> Option<String> {
        if let Some(url) = &self.public_url {
            return Some(url.clone());
        }
        if self.listen.ip().is_unspecified() || self.listen.port() == 0 {
            return None;
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Some(format!("{scheme}://{}", self.listen))
    }

    /// The SQLite file in the data directory (used unless a database URL
    /// is given).
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("fal.db")
    }

    /// The database URL in use.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.sqlite_path().display()))
    }

    /// Where the data lives, for people: the SQLite file or the database URL
    /// without its password.
    pub fn describe_storage(&self) -> String {
        match &self.database_url {
            None => self.data_dir.join("fal.db").display().to_string(),
            Some(url) => redact_url_password(url),
        }
    }
}

/// Checks a `--public-url`: an `http` or `https` origin, with no path,
/// query, fragment or user name; returned without a trailing slash
/// (`https://fal.example.com`). The error says what to fix.
pub fn parse_public_url(raw: &str) -> Result<String, String> {
    let example = "e.g. https://fal.example.com";
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| format!("{raw:?} is not a URL ({e}); {example}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the public URL must start with https:// or http://; {example}"
        ));
    }
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "the public URL needs a host and no user name; {example}"
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "the public URL is an origin only (fal is served at the root of its host, no path, \
             query or fragment); {example}"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_base_is_configured_or_a_reachable_listen_address() {
        let mut c = Config::new(PathBuf::from("/tmp/x"));
        c.listen = "127.0.0.1:8420".parse().unwrap();
        assert_eq!(c.public_base().as_deref(), Some("http://127.0.0.1:8420"));
        c.tls = Some(TlsFiles {
            cert: "c".into(),
            key: "k".into(),
            ticket_key: None,
        });
        assert_eq!(c.public_base().as_deref(), Some("https://127.0.0.1:8420"));
        c.listen = "[::1]:8443".parse().unwrap();
        assert_eq!(c.public_base().as_deref(), Some("https://[::1]:8443"));
        for wild in ["0.0.0.0:8420", "[::]:8420", "127.0.0.1:0"] {
            c.listen = wild.parse().unwrap();
            assert_eq!(c.public_base(), None, "{wild}");
        }
        c.public_url = Some("https://fal.example.com".into());
        assert_eq!(c.public_base().as_deref(), Some("https://fal.example.com"));
    }

    #[test]
    fn public_urls_are_origins() {
        for (raw, want) in [
            ("https://fal.example.com", "https://fal.example.com"),
            ("https://fal.example.com/", "https://fal.example.com"),
            ("https://FAL.example.com:443/", "https://fal.example.com"),
            ("http://10.0.0.5:8420", "http://10.0.0.5:8420"),
        ] {
            assert_eq!(parse_public_url(raw).as_deref(), Ok(want), "{raw}");
        }
        for bad in [
            "fal.example.com",
            "ftp://fal.example.com",
            "https://fal.example.com/fal",
            "https://fal.example.com/?x=1",
            "https://u:p@fal.example.com",
            "https://fal.example.com/#x",
        ] {
            let err = parse_public_url(bad).unwrap_err();
            assert!(err.contains("https://fal.example.com"), "{bad}: {err}");
        }
    }

    #[test]
    fn passwords_are_hidden_in_descriptions() {
        assert_eq!(
            redact_url_password("postgres://u:hunter2@db:5432/fal"),
            "postgres://u:***@db:5432/fal"
        );
        assert_eq!(
            redact_url_password("postgres://db/fal"),
            "postgres://db/fal"
        );
    }
}
