//! Leaked-key reports from a secret scanning service, in GitHub's secret
//! scanning partner protocol: a JSON array of matches, signed by GitHub
//! (ECDSA P-256 over the raw body; key named by
//! `Github-Public-Key-Identifier`, signature in `Github-Public-Key-Signature`).
//!
//! [`ScanningKeys::verify`] checks the signature against the keys GitHub
//! publishes ([`keys`]); only then is the body read, into a
//! [`SignedReport`]: the one value [`crate::auth`] revokes keys for. A
//! report cannot be made any other way, so no code path revokes a key for
//! an unsigned report. Checked by the compiler: a report cannot be made by
//! hand,
//!
//! ```compile_fail,E0451
//! fn forge() -> fal_server::secret_scanning::SignedReport {
//!     fal_server::secret_scanning::SignedReport { matches: Vec::new() }
//! }
//! ```
//!
//! Imports only leaves ([`crate::error`]); [`crate::auth`] imports it.

pub mod keys;

use serde::Deserialize;

pub use keys::{DEFAULT_KEYS_URL, ScanningKeys, SignatureFailure, parse_keys_url};

use crate::error::ApiError;

/// The header naming the signing key.
pub const KEY_IDENTIFIER_HEADER: &str = "github-public-key-identifier";
/// The header carrying the base64 DER signature.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// The token type fal's secrets are registered under.
pub const TOKEN_TYPE: &str = "fal_key_secret";
/// The most matches one report may carry.
pub const MAX_MATCHES: usize = 1000;

/// One match as the scanning service sends it. The token is the leaked
/// secret (or what looked like one): it never reaches a log.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ReportedMatch {
    /// What matched the registered pattern.
    pub token: String,
    /// The token type it was registered under.
    #[serde(rename = "type")]
    pub token_type: String,
    /// Where it was found (public; may be empty).
    #[serde(default)]
    pub url: String,
    /// What kind of place (`content`, `commit`, `gist`, …), when given.
    #[serde(default)]
    pub source: Option<String>,
}

impl std::fmt::Debug for ReportedMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportedMatch")
            .field("token", &"[REDACTED]")
            .field("token_type", &self.token_type)
            .field("url", &self.url)
            .field("source", &self.source)
            .finish()
    }
}

/// A report whose signature was checked: made only by [`verify_report`].
#[derive(Debug)]
pub struct SignedReport {
    matches: Vec<ReportedMatch>,
}

impl SignedReport {
    /// The matches, in the order sent.
    pub fn matches(&self) -> &[ReportedMatch] {
        &self.matches
    }
}

/// The 401 for a report whose signature is missing or wrong.
fn refused(detail: &str) -> ApiError {
    ApiError::Status {
        status: axum::http::StatusCode::UNAUTHORIZED,
        code: "invalid_signature",
        detail: detail.into(),
    }
}

/// Checks the signature headers over the raw `body`, then reads the body:
/// 401 for a missing, malformed or wrong signature or an unknown key; 503
/// when the key is not held and the key list cannot be fetched (the
/// service retries); 400/422 for a signed body that is not a list of
/// matches, or holds more than [`MAX_MATCHES`].
pub async fn verify_report(
    keys: &ScanningKeys,
    identifier: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<SignedReport, ApiError> {
    let (Some(identifier), Some(signature)) = (identifier, signature) else {
        return Err(refused(
            "Send the report signed: Github-Public-Key-Identifier and Github-Public-Key-Signature",
        ));
    };
    match keys.verify(identifier, signature, body).await {
        Ok(()) => {}
        Err(SignatureFailure::Malformed) => {
            return Err(refused(
                "Github-Public-Key-Signature is not a base64 signature, or the key identifier is malformed",
            ));
        }
        Err(SignatureFailure::UnknownKey) => {
            return Err(refused(
                "No published secret scanning key has this identifier",
            ));
        }
        Err(SignatureFailure::Mismatch) => {
            return Err(refused(
                "The signature does not match the body under the named key",
            ));
        }
        Err(SignatureFailure::KeysUnavailable) => return Err(ApiError::Unavailable),
    }
    let matches: Vec<ReportedMatch> = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::Unprocessable(format!(
                "Send a JSON array of {{\"token\", \"type\", \"url\", \"source\"}} objects: {e}"
            ))
        } else {
            ApiError::BadRequest(format!("The body is not JSON: {e}"))
        }
    })?;
    if matches.len() > MAX_MATCHES {
        return Err(ApiError::Unprocessable(format!(
            "A report holds at most {MAX_MATCHES} matches; send the rest in another"
        )));
    }
    Ok(SignedReport { matches })
}
