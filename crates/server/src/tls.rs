//! Serving HTTPS with rustls (ring provider), for clients that speak only
//! https (fal's own clients among them).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up.
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
}

/// Builds an acceptor from PEM files: the certificate chain (leaf first)
/// and its private key.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_err = |cause: String| TlsError::Cert {
        path: cert.display().to_string(),
        cause,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err("no CERTIFICATE block found".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        cause: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
