//! Serving HTTPS with rustls (ring provider), for clients that speak only
//! https (fal's own clients among them).
//!
//! - this file: [`Tls`], built once per server and shared by all its
//!   workers: one rustls configuration whose certificate is read per
//!   handshake from a cell that reloads replace, and one ticketer.
//! - `pair`: reading a certificate chain and key, checking they match,
//!   and the leaf's summary for the log.
//! - `reload`: reloading on demand (SIGHUP) and when the files change.
//! - `tickets`: session tickets under a key shared by a cluster.
//!
//! Resumption: every server issues TLS session tickets (stateless; TLS 1.3
//! and 1.2). Without `--tls-ticket-key-file` they are sealed with rustls'
//! rotating random keys, which all workers of one server share; with it,
//! with a key every server reading the same file shares.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fal_core::{Clock, RandomSource};
use rustls::crypto::CryptoProvider;
use rustls::server::ProducesTickets;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

mod pair;
mod reload;
pub mod tickets;

pub use pair::LeafSummary;
use reload::{CertCell, Stamps};
use tickets::{SharedTickets, TicketKey};

/// Why TLS could not be set up (or a reload was refused).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("cannot read the TLS certificate chain from {path}: {cause}")]
    Cert {
        /// The file.
        path: String,
        /// Why.
        cause: String,
    },
    /// The key file could not be read or holds no private key.
    #[error("cannot read the TLS private key from {path}: {cause}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        cause: String,
    },
    /// rustls refused the pair (for example, key and certificate do not match).
    #[error("the TLS certificate and key cannot be used together: {0}")]
    Config(String),
    /// The session ticket key file could not be read or is not a key.
    #[error("cannot read the TLS session ticket key from {path}: {cause}")]
    TicketKey {
        /// The file.
        path: String,
        /// Why.
        cause: String,
    },
}

/// The crypto provider for serving: ring's, with the SHA-256 cipher suites
/// (AES-128-GCM, ChaCha20-Poly1305) before the SHA-384 one (AES-256-GCM),
/// and chosen in this order whatever the client prefers. Most clients,
/// OpenSSL's among them, list AES-256-GCM first, and a TLS 1.3 handshake
/// computes dozens of HMACs of its suite's hash: ring computes SHA-384
/// without the CPU's help, SHA-256 with its SHA instructions where it has
/// them. SHA-384's block function took a tenth of the server's CPU time in
/// a profile of new resumed connections (README, Performance).
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        use rustls::CipherSuite::*;
        matches!(
            s.suite(),
            TLS13_AES_256_GCM_SHA384
                | TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        )
    });
    Arc::new(provider)
}

/// A server's TLS: its certificate (replaceable while serving), its session
/// tickets, and the rustls configuration every worker accepts with.
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    /// The certificate new handshakes get.
    certs: Arc<CertCell>,
    /// Present with a ticket key file.
    shared_tickets: Option<Arc<SharedTickets>>,
    acceptor: TlsAcceptor,
    /// The files as last read (see `reload`).
    seen: Mutex<Stamps>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Reads the certificate, key and (when given) ticket key files; fails
    /// saying which file is wrong and why. Tickets are dated by `clock` and
    /// salted from `rng`.
    pub fn load(
        files: &TlsFiles,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn RandomSource>,
    ) -> Result<Tls, TlsError> {
        let provider = provider();
        let seen = Stamps::of(files);
        let (key, summary) = pair::load(&files.cert, &files.key, &provider)?;
        let certs = Arc::new(CertCell::new(key, summary));
        let shared_tickets = match &files.ticket_key {
            Some(path) => Some(Arc::new(SharedTickets::new(
                TicketKey::read(path)?,
                clock,
                rng,
            ))),
            None => None,
        };
        let ticketer: Arc<dyn ProducesTickets> = match &shared_tickets {
            Some(t) => t.clone(),
            None => rustls::crypto::ring::Ticketer::new()
                .map_err(|e| TlsError::Config(format!("cannot make a session ticketer: {e}")))?,
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.ignore_client_order = true;
        config.ticketer = ticketer;
        Ok(Tls {
            files: files.clone(),
            provider,
            certs,
            shared_tickets,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            seen: Mutex::new(seen),
        })
    }

    /// What every worker accepts connections with (cheap to clone).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> LeafSummary {
        self.certs.summary()
    }

    /// The configured files.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Checks the files every `every` and reloads when any changed (see
    /// [`Tls::reload_if_changed`]); runs until dropped.
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.reload_if_changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("nope.key"),
            ticket_key: None,
        };
        let e = Tls::load(
            &files,
            Arc::new(fal_core::SystemClock),
            Arc::new(fal_core::OsRandom),
        )
        .unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
    }
}
