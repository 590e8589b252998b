//! Replacing the certificate (and the ticket key) while serving.
//!
//! rustls asks [`CertCell`] for the certificate at every handshake, so a
//! reload that swaps the cell's content reaches every new connection on
//! every worker at once; connections already open keep the keys they
//! agreed on and are not touched.
//!
//! A reload reads both files, checks the key is the certificate's, and only
//! then swaps: an unreadable file or a mismatched pair is logged with the
//! reason (never the files' contents) and the pair in use stays. Writing
//! the two files is not atomic, so a reload between the two writes sees a
//! mismatched pair, keeps the old one, and the next change (the second
//! write) loads the new one.
//!
//! What triggers it: SIGHUP (`fal serve` calls [`Tls::reload`]), and a
//! poll of the files every couple of seconds ([`Tls::watch`]): a change of
//! a file's modification time, length or inode (a file replaced by rename,
//! as Kubernetes does for mounted secrets, is a new inode) reloads. Polling
//! is portable and cheap (three `stat` calls), where inotify and the like
//! differ by platform and miss files replaced through symbolic links.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::tickets::TicketKey;
use super::{LeafSummary, Tls, pair};
use crate::config::TlsFiles;

/// The certificate new handshakes get.
#[derive(Debug)]
pub(crate) struct CertCell(RwLock<(Arc<CertifiedKey>, LeafSummary)>);

impl CertCell {
    pub(crate) fn new(key: Arc<CertifiedKey>, summary: LeafSummary) -> Self {
        CertCell(RwLock::new((key, summary)))
    }

    fn set(&self, key: Arc<CertifiedKey>, summary: LeafSummary) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = (key, summary);
    }

    pub(crate) fn summary(&self) -> LeafSummary {
        self.0.read().unwrap_or_else(|e| e.into_inner()).1.clone()
    }
}

impl ResolvesServerCert for CertCell {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).0.clone())
    }
}

/// What a file looked like when last read: `None` when it could not be
/// examined.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

/// The certificate, key and ticket key files as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamps([Option<Stamp>; 3]);

impl Stamps {
    pub(crate) fn of(files: &TlsFiles) -> Stamps {
        Stamps([
            Stamp::of(&files.cert),
            Stamp::of(&files.key),
            files.ticket_key.as_deref().and_then(Stamp::of),
        ])
    }
}

impl Tls {
    /// Reads the files again now (`reason` says why, for the log): a good
    /// pair replaces the certificate for new connections; a bad one is
    /// logged and the one in use kept. The ticket key file likewise.
    /// Returns whether everything read was good.
    pub fn reload(&self, reason: &str) -> bool {
        let stamps = Stamps::of(&self.files);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = stamps;
        self.reload_files(reason)
    }

    /// Reloads when a file changed since last read (see the module's
    /// documentation); returns whether it did.
    pub fn reload_if_changed(&self) -> bool {
        let stamps = Stamps::of(&self.files);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == stamps {
                return false;
            }
            *seen = stamps;
        }
        self.reload_files("the files changed");
        true
    }

    fn reload_files(&self, reason: &str) -> bool {
        let mut good = true;
        match pair::load(&self.files.cert, &self.files.key, &self.provider) {
            Ok((key, summary)) => {
                if summary != self.certs.summary() {
                    tracing::info!(
                        reason,
                        sha256 = %summary.sha256,
                        subject_cn = summary.common_name.as_deref().unwrap_or("-"),
                        not_after = summary.not_after.as_deref().unwrap_or("-"),
                        "TLS certificate reloaded: new connections get it"
                    );
                } else {
                    tracing::info!(reason, sha256 = %summary.sha256, "TLS certificate reloaded (unchanged)");
                }
                self.certs.set(key, summary);
            }
            Err(e) => {
                good = false;
                tracing::warn!(
                    reason,
                    error = %e,
                    sha256_in_use = %self.certs.summary().sha256,
                    "TLS certificate not reloaded; keeping the one in use"
                );
            }
        }
        if let (Some(path), Some(tickets)) = (&self.files.ticket_key, &self.shared_tickets) {
            match TicketKey::read(path) {
                Ok(key) => {
                    if tickets.rotate(key) {
                        tracing::info!(
                            reason,
                            "TLS ticket key replaced: new tickets are sealed with it; the previous key still opens its tickets"
                        );
                    }
                }
                Err(e) => {
                    good = false;
                    tracing::warn!(reason, error = %e, "TLS ticket key not reloaded; keeping the one in use");
                }
            }
        }
        good
    }
}
