//! `/audit`: the caller's own audit events, newest first.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::{Client, ClientError};

/// Who did it, by ids only.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct AuditActor {
    /// The acting user.
    pub user_id: Option<String>,
    /// The key they used.
    pub key_id: Option<String>,
    /// Or their session's id.
    pub session_id: Option<String>,
}

/// One event.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct AuditEvent {
    /// Its number.
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// `key.generated`, `session.signed_in`, …
    pub kind: String,
    /// Who did it.
    pub actor: AuditActor,
    /// The actor in a few words (`key ID`, `session ID`, `system`).
    pub actor_label: String,
    /// The client's address.
    pub source: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// What it is about, in a few words (`key ID`, `app OWNER/NAME`).
    pub object: String,
    /// The key it is about.
    pub key_id: Option<String>,
    /// The app it is about.
    pub app: Option<String>,
    /// More facts.
    pub detail: serde_json::Value,
}

/// One page of events.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditList {
    /// Newest first.
    pub events: Vec<AuditEvent>,
    /// Pass back to get the next page.
    pub next_cursor: Option<String>,
    /// Whether there is a next page.
    pub has_more: bool,
}

impl Client {
    /// `GET /audit`, one page, filtered by `kind` and `key_id` when given.
    pub async fn list_audit(
        &self,
        limit: u32,
        cursor: Option<&str>,
        kind: Option<&str>,
        key_id: Option<&str>,
    ) -> Result<AuditList, ClientError> {
        let mut query = vec![("limit", limit.to_string())];
        for (name, value) in [("cursor", cursor), ("kind", kind), ("key_id", key_id)] {
            if let Some(v) = value {
                query.push((name, v.to_owned()));
            }
        }
        let req = self.request(Method::GET, "/audit").await?.query(&query);
        self.send(req).await
    }

    /// The newest `max` events (fewer when there are not so many),
    /// following cursors.
    pub async fn audit_events(
        &self,
        max: usize,
        kind: Option<&str>,
        key_id: Option<&str>,
    ) -> Result<Vec<AuditEvent>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        while all.len() < max {
            let want = u32::try_from((max - all.len()).min(100)).unwrap_or(100);
            let page = self
                .list_audit(want, cursor.as_deref(), kind, key_id)
                .await?;
            all.extend(page.events);
            match page.next_cursor {
                Some(c) if page.has_more => cursor = Some(c),
                _ => break,
            }
        }
        all.truncate(max);
        Ok(all)
    }
}
