//! Revoking keys whose secrets a scanning service reports as leaked.
//!
//! Reachable only with a [`SignedReport`], which only a checked signature
//! makes. Each token is parsed as a key secret (checksum included), hashed
//! with the pepper, and looked up by that hash: only a real secret finds a
//! key, so a guessed or malformed token revokes nothing. Every key found is
//! revoked through the same store call as `DELETE /keys/{id}` (sessions
//! opened with it end, the key change log and PostgreSQL's notification
//! tell every server), and leaves this server's cache at once.

use fal_core::{KeyId, KeySecret, UserId};

use super::admin::AdminStores;
use crate::error::ApiError;
use crate::secret_scanning::SignedReport;

/// GitHub's verdict on one reported token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// The token is a secret of one of our keys (revoked now or before).
    TruePositive,
    /// It is not: malformed, or no key has it.
    FalsePositive,
}

impl Label {
    /// The label as GitHub spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::TruePositive => "true_positive",
            Label::FalsePositive => "false_positive",
        }
    }
}

/// A key a reported secret opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedKey {
    /// The key.
    pub key_id: KeyId,
    /// Its owner.
    pub user_id: UserId,
    /// Whether this report revoked it (`false`: it was revoked before).
    pub revoked_now: bool,
    /// Where the secret was found, as reported.
    pub url: String,
    /// What kind of place, as reported.
    pub source: Option<String>,
}

/// What a report did: one label per match, in order, and the keys found.
#[derive(Debug, Default)]
pub struct LeakOutcome {
    /// One per reported match, in the order sent.
    pub labels: Vec<Label>,
    /// Every key a reported secret opened.
    pub keys: Vec<LeakedKey>,
}

impl AdminStores {
    /// Revokes every key whose secret `report` names (see the module
    /// docs). Keys revoked before are found and reported, not revoked again.
    pub async fn revoke_leaked(&self, report: &SignedReport) -> Result<LeakOutcome, ApiError> {
        let mut outcome = LeakOutcome::default();
        for m in report.matches() {
            let Ok(secret) = KeySecret::parse(&m.token) else {
                outcome.labels.push(Label::FalsePositive);
                continue;
            };
            let hash = self.verifier.hasher().hash(&secret);
            let found = self.leaked_keys.keys_with_secret_hash(&hash).await?;
            outcome.labels.push(if found.is_empty() {
                Label::FalsePositive
            } else {
                Label::TruePositive
            });
            for record in found {
                let revoked_now = !record.revoked
                    && self
                        .key_admin
                        .revoke_key(&record.user_id, &record.key_id, self.clock.now())
                        .await?;
                self.verifier.invalidate(&record.key_id);
                outcome.keys.push(LeakedKey {
                    key_id: record.key_id,
                    user_id: record.user_id,
                    revoked_now,
                    url: m.url.clone(),
                    source: m.source.clone(),
                });
            }
        }
        Ok(outcome)
    }
}
