//! GitHub's secret scanning signing keys: fetched from the configured URL,
//! kept in memory, and fetched again when a report names a key identifier
//! not held (at most once a minute, timed by the injected clock). A failed
//! fetch keeps what is held.
//!
//! A key is a P-256 public key in a PEM `PUBLIC KEY` (SubjectPublicKeyInfo)
//! block; ring verifies against its uncompressed point, which is the last
//! 65 bytes of the DER after a fixed header (the algorithm and curve OIDs).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fal_core::{Clock, Timestamp};
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

/// GitHub's published keys, the default of `--secret-scanning-keys-url`.
pub const DEFAULT_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";

/// The shortest time between two fetches of the key list.
pub const REFETCH_INTERVAL_MS: i64 = 60_000;

/// The largest key list read (GitHub's is a few hundred bytes per key).
const MAX_KEY_LIST_BYTES: usize = 256 * 1024;

/// The DER of a P-256 SubjectPublicKeyInfo up to its point: SEQUENCE,
/// SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (65 bytes, no unused bits).
const P256_SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// An uncompressed P-256 point: `04 || X || Y`.
const POINT_LEN: usize = 65;

/// Checks a `--secret-scanning-keys-url`: an `http` or `https` URL.
pub fn parse_keys_url(raw: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| format!("{raw:?} is not a URL ({e}); e.g. {DEFAULT_KEYS_URL}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "the keys URL is an https:// (or http://) URL with a host; e.g. {DEFAULT_KEYS_URL}"
        ));
    }
    Ok(url.to_string())
}

/// The uncompressed point of a PEM P-256 public key; `None` for anything else
/// (another curve, another algorithm, a compressed point, not PEM).
pub fn p256_point_from_pem(pem: &str) -> Option<Vec<u8>> {
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).ok()?;
    let point = der.as_ref().strip_prefix(&P256_SPKI_HEADER[..])?;
    (point.len() == POINT_LEN && point[0] == 0x04).then(|| point.to_vec())
}

/// The SubjectPublicKeyInfo DER of an uncompressed P-256 point (for tests
/// and fakes that publish a key they generated).
pub fn p256_spki_der(point: &[u8]) -> Vec<u8> {
    let mut der = P256_SPKI_HEADER.to_vec();
    der.extend_from_slice(point);
    der
}

/// Why a report's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFailure {
    /// A header is missing or not the expected shape.
    Malformed,
    /// No key with this identifier is published.
    UnknownKey,
    /// The signature does not match the body under the named key.
    Mismatch,
    /// The key is not held and the key list could not be fetched.
    KeysUnavailable,
}

/// The key list as GitHub publishes it.
#[derive(Deserialize)]
struct KeyList {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

/// When the list was last fetched, and whether that worked.
struct FetchState {
    last: Option<Timestamp>,
    failed: bool,
}

/// The signing keys, by identifier, and how to fetch them again.
pub struct ScanningKeys {
    url: String,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    keys: RwLock<HashMap<String, Arc<[u8]>>>,
    fetch: tokio::sync::Mutex<FetchState>,
}

impl ScanningKeys {
    /// Keys to be fetched from `url` when first needed.
    pub fn new(url: String, clock: Arc<dyn Clock>) -> ScanningKeys {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent("fal-server")
            .build()
            .unwrap_or_default();
        ScanningKeys {
            url,
            http,
            clock,
            keys: RwLock::new(HashMap::new()),
            fetch: tokio::sync::Mutex::new(FetchState {
                last: None,
                failed: false,
            }),
        }
    }

    /// Checks `signature` (base64 DER ECDSA P-256 SHA-256) over `body`
    /// under the key named `identifier`.
    pub async fn verify(
        &self,
        identifier: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<(), SignatureFailure> {
        use base64::Engine as _;
        if identifier.is_empty() || identifier.len() > 256 || signature.len() > 256 {
            return Err(SignatureFailure::Malformed);
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| SignatureFailure::Malformed)?;
        let point = self.key(identifier).await?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point[..])
            .verify(body, &signature)
            .map_err(|_| SignatureFailure::Mismatch)
    }

    fn held(&self, identifier: &str) -> Option<Arc<[u8]>> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.get(identifier).cloned()
    }

    /// The key named `identifier`, fetching the list again if it is not
    /// held and the last fetch is a minute old.
    async fn key(&self, identifier: &str) -> Result<Arc<[u8]>, SignatureFailure> {
        if let Some(k) = self.held(identifier) {
            return Ok(k);
        }
        let mut fetch = self.fetch.lock().await;
        // Another report may have fetched while this one waited.
        if let Some(k) = self.held(identifier) {
            return Ok(k);
        }
        let now = self.clock.now();
        let due = fetch
            .last
            .is_none_or(|last| now.millis() - last.millis() >= REFETCH_INTERVAL_MS);
        if due {
            fetch.last = Some(now);
            match self.fetch_list().await {
                Ok(list) => {
                    fetch.failed = false;
                    tracing::info!(keys = list.len(), "secret scanning keys fetched");
                    *self.keys.write().unwrap_or_else(|e| e.into_inner()) = list;
                }
                Err(cause) => {
                    fetch.failed = true;
                    tracing::warn!(url = %self.url, %cause, "cannot fetch the secret scanning keys; keeping those held");
                }
            }
        }
        match self.held(identifier) {
            Some(k) => Ok(k),
            None if fetch.failed => Err(SignatureFailure::KeysUnavailable),
            None => Err(SignatureFailure::UnknownKey),
        }
    }

    async fn fetch_list(&self) -> Result<HashMap<String, Arc<[u8]>>, String> {
        let mut resp = self
            .http
            .get(&self.url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_KEY_LIST_BYTES {
                return Err(format!("key list larger than {MAX_KEY_LIST_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let list: KeyList = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for k in list.public_keys {
            match p256_point_from_pem(&k.key) {
                Some(point) => {
                    keys.insert(k.key_identifier, Arc::from(point));
                }
                None => tracing::warn!(
                    key_identifier = %k.key_identifier,
                    "secret scanning key is not a P-256 public key; skipped"
                ),
            }
        }
        if keys.is_empty() {
            return Err("the key list holds no usable key".into());
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 public key in the PEM form of GitHub's key list.
    const GITHUB_KEY: &str = "-----BEGIN PUBLIC KEY-----\n\
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsz9ugWDj5jK5ELBK42ynytbo38gP\n\
        HzZFI03Exwz8Lh/tCfL3YxwMdLjB+bMznsanlhK0RwcGP3IDb34kQDIo3Q==\n\
        -----END PUBLIC KEY-----\n";

    #[test]
    fn a_published_p256_key_gives_its_point_and_round_trips() {
        let point = p256_point_from_pem(GITHUB_KEY).unwrap();
        assert_eq!(point.len(), 65);
        assert_eq!(point[0], 4);
        let der = p256_spki_der(&point);
        assert_eq!(der.len(), 91);
    }

    #[test]
    fn keys_urls_are_http_urls() {
        assert_eq!(
            parse_keys_url(DEFAULT_KEYS_URL).as_deref(),
            Ok(DEFAULT_KEYS_URL)
        );
        for bad in [
            "api.github.com/meta",
            "ftp://example.com/keys",
            "file:///etc/keys",
        ] {
            assert!(parse_keys_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_keys_and_junk_give_nothing() {
        assert!(p256_point_from_pem("not pem").is_none());
        assert!(p256_point_from_pem("").is_none());
        // An Ed25519 SubjectPublicKeyInfo.
        let ed = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
            -----END PUBLIC KEY-----\n";
        assert!(p256_point_from_pem(ed).is_none());
    }
}
