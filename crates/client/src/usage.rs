//! `GET /keys/{key_id}/usage`: a key's calls per hour, accepted and
//! refused by reason.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// Calls counted, by outcome.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub struct UsageCounts {
    /// Authenticated.
    pub accepted: u64,
    /// Refused, whatever the reason.
    pub refused: u64,
    /// Refused: a wrong secret for the key's id.
    pub wrong_secret: u64,
    /// Refused: the key is revoked.
    pub revoked: u64,
    /// Refused: the key's rate limit was used up.
    pub rate_limited: u64,
    /// Refused: the key has expired.
    pub expired: u64,
}

impl UsageCounts {
    /// Adds `other`.
    pub fn add(&mut self, other: &UsageCounts) {
        self.accepted += other.accepted;
        self.refused += other.refused;
        self.wrong_secret += other.wrong_secret;
        self.revoked += other.revoked;
        self.rate_limited += other.rate_limited;
        self.expired += other.expired;
    }
}

/// One hour with calls.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct UsageHour {
    /// Its first instant, RFC 3339 (UTC).
    pub hour: String,
    /// What was counted in it.
    #[serde(flatten)]
    pub counts: UsageCounts,
}

/// A key's usage.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct KeyUsage {
    /// Whose.
    pub key_id: String,
    /// The first hour covered, RFC 3339.
    pub since: String,
    /// Hours with calls, oldest first.
    pub hours: Vec<UsageHour>,
    /// Sums over the hours.
    pub totals: UsageCounts,
}

impl Client {
    /// `GET /keys/{key_id}/usage`, from `since` (`YYYY-MM-DD` or RFC 3339)
    /// or over the last 30 days.
    pub async fn key_usage(
        &self,
        key_id: &str,
        since: Option<&str>,
    ) -> Result<KeyUsage, ClientError> {
        let mut req = self
            .request(Method::GET, &format!("/keys/{key_id}/usage"))
            .await?;
        if let Some(s) = since {
            req = req.query(&[("since", s)]);
        }
        self.send(req).await
    }
}
