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
    /// Holds the SQLite database and, by default, the pepper file.
    pub data_dir: PathBuf,
    /// A pepper file elsewhere than the data directory (shared by several
    /// servers, or kept on a separate volume).
    pub pepper_file: Option<PathBuf>,
    /// A database URL; `None` means SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// How many key records the verification cache holds at most.
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
    /// Sign-in with GitHub, when configured.
    pub github: Option<crate::github::GithubConfig>,
    /// Lifetimes of sessions after GitHub sign-in.
    pub session_ttl: crate::sessions::SessionTtl,
    /// How long a client connection may sit idle between requests, or take
    /// to send a request head, before it is closed (so idle and slow
    /// clients cannot hold connections forever).
    pub idle_timeout: Duration,
    /// GitHub users who manage every app and user, besides the bootstrap
    /// admin user: logins, or numeric GitHub ids (digits only).
    pub operators: Vec<String>,
    /// Let operators register upstreams on cloud-metadata addresses
    /// (169.254.169.254 and the like); refused for everyone otherwise.
    pub allow_metadata_upstreams: bool,
}

/// The PEM files for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

impl Config {
    /// Defaults for a server keeping its data in `data_dir`.
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8420)),
            data_dir,
            pepper_file: None,
            database_url: None,
            cache_capacity: 100_000,
            max_staleness: Duration::from_secs(5),
            usage_flush_interval: Duration::from_secs(10),
            demo: false,
            tls: None,
            github: None,
            session_ttl: crate::sessions::SessionTtl::default(),
            idle_timeout: Duration::from_secs(60),
            operators: Vec::new(),
            allow_metadata_upstreams: false,
        }
    }

    /// The pepper file in use.
    pub fn pepper_path(&self) -> PathBuf {
        self.pepper_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("pepper"))
    }

    /// The database URL in use.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("fal.db").display()
            )
        })
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
