//! One certificate chain and its private key, read from PEM files and
//! checked against each other; and what the log says about the leaf.
//!
//! Errors name the file and what is wrong with it, never its contents: a
//! PEM parser's own message may quote a line of the file, so for the key
//! file it is replaced by a description of our own.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use super::TlsError;

/// Reads the chain (leaf first) at `cert` and the key at `key`, and checks
/// that the key is the leaf's (`TlsError::Config` when it is not).
pub(crate) fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, LeafSummary), TlsError> {
    let cert_err = |cause: String| TlsError::Cert {
        path: cert.display().to_string(),
        cause,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    let Some(leaf) = certs.first() else {
        return Err(cert_err("no CERTIFICATE block found".into()));
    };
    let summary = LeafSummary::of(leaf);
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        cause: describe_key_error(&e),
    })?;
    let certified = CertifiedKey::from_der(certs, key_der, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Config(format!(
            "the private key in {} is not the key of the certificate in {}",
            key.display(),
            cert.display()
        )),
        other => TlsError::Config(other.to_string()),
    })?;
    Ok((Arc::new(certified), summary))
}

/// What went wrong reading a key file, without quoting any of it.
fn describe_key_error(e: &pem::Error) -> String {
    match e {
        pem::Error::Io(io) => io.to_string(),
        pem::Error::NoItemsFound => "no readable PRIVATE KEY block (missing or damaged)".into(),
        _ => "not a PEM private key (damaged base64 or BEGIN/END lines)".into(),
    }
}

/// The leaf certificate, as the log shows it: its SHA-256 fingerprint and,
/// when its DER can be read, its subject's common name and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSummary {
    /// SHA-256 of the DER, in hex (what `openssl x509 -fingerprint -sha256` shows, without colons).
    pub sha256: String,
    /// The subject's CN, if any.
    pub common_name: Option<String>,
    /// `notAfter`, as `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_after: Option<String>,
}

impl LeafSummary {
    /// Summarises `leaf`; never fails (fields it cannot read are `None`).
    pub fn of(leaf: &CertificateDer<'_>) -> LeafSummary {
        let der = leaf.as_ref();
        let (common_name, not_after) = read_tbs(der).unwrap_or((None, None));
        LeafSummary {
            sha256: hex::encode(Sha256::digest(der)),
            common_name,
            not_after,
        }
    }
}

/// DER tags used below.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const EXPLICIT_0: u8 = 0xa0;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// Reads (subject CN, notAfter) from a certificate's TBSCertificate:
/// `SEQUENCE { [0] version OPTIONAL, serial, signature, issuer, validity
/// SEQUENCE { notBefore, notAfter }, subject, ... }`.
fn read_tbs(der: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let (tag, cert) = Der(der).next()?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs) = Der(cert).next()?;
    if tag != SEQUENCE {
        return None;
    }
    let mut fields = Der(tbs);
    let (first, _) = fields.next()?;
    if first == EXPLICIT_0 {
        fields.next()?; // the serial number, after the version
    }
    fields.next()?; // signature algorithm
    fields.next()?; // issuer
    let (tag, validity) = fields.next()?;
    let not_after = if tag == SEQUENCE {
        let mut times = Der(validity);
        times.next();
        times.next().and_then(|(tag, t)| format_time(tag, t))
    } else {
        None
    };
    let common_name = match fields.next() {
        Some((SEQUENCE, subject)) => common_name(subject),
        _ => None,
    };
    Some((common_name, not_after))
}

/// The first CN in a Name (`SEQUENCE OF SET OF SEQUENCE { OID, value }`).
fn common_name(name: &[u8]) -> Option<String> {
    let mut rdns = Der(name);
    while let Some((tag, rdn)) = rdns.next() {
        if tag != SET {
            continue;
        }
        let mut attrs = Der(rdn);
        while let Some((tag, attr)) = attrs.next() {
            if tag != SEQUENCE {
                continue;
            }
            let mut parts = Der(attr);
            if let (Some((OID, oid)), Some((_, value))) = (parts.next(), parts.next())
                && oid == COMMON_NAME
            {
                return Some(String::from_utf8_lossy(value).escape_debug().to_string());
            }
        }
    }
    None
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as
/// `YYYY-MM-DD HH:MM:SS UTC`.
fn format_time(tag: u8, t: &[u8]) -> Option<String> {
    let t = std::str::from_utf8(t).ok()?;
    let digits = t.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: u32 = digits.get(..2)?.parse().ok()?;
            format!("{}{digits}", if yy < 50 { "20" } else { "19" })
        }
        (GENERALIZED_TIME, 14) => digits.to_owned(),
        _ => return None,
    };
    Some(format!(
        "{}-{}-{} {}:{}:{} UTC",
        full.get(..4)?,
        full.get(4..6)?,
        full.get(6..8)?,
        full.get(8..10)?,
        full.get(10..12)?,
        full.get(12..14)?
    ))
}

/// A cursor over consecutive DER TLVs; stops (returns `None`) at the end
/// or at anything malformed.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (bytes, rest) = rest.split_at_checked(n)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, rest)
        };
        let (value, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        Some((tag, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn times_are_read_in_both_forms() {
        assert_eq!(
            format_time(UTC_TIME, b"261231235959Z").as_deref(),
            Some("2026-12-31 23:59:59 UTC")
        );
        assert_eq!(
            format_time(UTC_TIME, b"991231235959Z").as_deref(),
            Some("1999-12-31 23:59:59 UTC")
        );
        assert_eq!(
            format_time(GENERALIZED_TIME, b"20510101000000Z").as_deref(),
            Some("2051-01-01 00:00:00 UTC")
        );
        assert_eq!(format_time(UTC_TIME, b"2612312359Z"), None);
        assert_eq!(format_time(UTC_TIME, b"26123123595xZ"), None);
    }

    #[test]
    fn long_lengths_are_read() {
        let mut der = vec![0x04, 0x82, 0x01, 0x00];
        der.extend([7u8; 256]);
        der.extend([0x05, 0x00]);
        let mut d = Der(&der);
        assert_eq!(d.next().map(|(t, v)| (t, v.len())), Some((0x04, 256)));
        assert_eq!(d.next(), Some((0x05, &[][..])));
        assert_eq!(d.next(), None);
        assert_eq!(Der(&[0x04, 0x85, 1, 1, 1, 1, 1]).next(), None);
        assert_eq!(Der(&[0x04, 0x03, 1]).next(), None);
    }

    proptest! {
        #[test]
        fn any_bytes_are_summarised_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let s = LeafSummary::of(&CertificateDer::from(bytes.clone()));
            prop_assert_eq!(s.sha256.len(), 64);
        }
    }
}
