//! `/keys`: create, list, rate-limit, roll and revoke the caller's keys.

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::{Client, ClientError};

/// A key just created, with its secret (shown once). Its `Debug` leaves
/// the secret out.
#[derive(Clone, Deserialize)]
pub struct CreatedKey {
    /// The key id.
    pub key_id: String,
    /// The secret: print it once, then drop it.
    pub key_secret: String,
    /// `<key_id>:<key_secret>`, the `FAL_KEY` form.
    pub key: String,
    /// `ADMIN` or `API`.
    pub scope: String,
    /// The label.
    pub alias: String,
    /// RFC 3339.
    pub created_at: String,
    /// `100/s`, `100/min` or `100/h`; `None` when unlimited.
    #[serde(default)]
    pub rate_limit: Option<String>,
    /// RFC 3339, when the key expires.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The lifetime it was made with (`30d`), if any.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// For a roll: the key it replaces.
    #[serde(default)]
    pub old_key_id: Option<String>,
    /// For a roll: when the old pair stops working (RFC 3339).
    #[serde(default)]
    pub old_expires_at: Option<String>,
}

/// When a new key expires: never, after a lifetime (`30d`), or at a date
/// (RFC 3339). The server checks both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Expiry<'a> {
    /// It works until revoked.
    #[default]
    Never,
    /// For this long (`30d`).
    In(&'a str),
    /// Until this instant (RFC 3339).
    At(&'a str),
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key_id", &self.key_id)
            .field("key_secret", &"[redacted]")
            .field("key", &"[redacted]")
            .field("scope", &self.scope)
            .field("alias", &self.alias)
            .field("created_at", &self.created_at)
            .field("rate_limit", &self.rate_limit)
            .field("expires_at", &self.expires_at)
            .field("old_key_id", &self.old_key_id)
            .field("old_expires_at", &self.old_expires_at)
            .finish()
    }
}

/// One key in a listing.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key id.
    pub key_id: String,
    /// The label.
    pub alias: String,
    /// `ADMIN` or `API`.
    pub scope: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when the key has been used.
    pub last_used_at: Option<String>,
    /// `100/s`, `100/min` or `100/h`; `None` when unlimited.
    #[serde(default)]
    pub rate_limit: Option<String>,
    /// RFC 3339, when the key expires (`None`: never).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The lifetime it was made with (`30d`), if any.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// The key that replaced it, once rolled.
    #[serde(default)]
    pub rolled_to: Option<String>,
    /// Calls accepted in the last 30 days (as servers have written them
    /// back so far).
    #[serde(default)]
    pub requests: u64,
}

/// One page of keys.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyList {
    /// Newest first.
    pub keys: Vec<KeyInfo>,
    /// Pass back to get the next page.
    pub next_cursor: Option<String>,
    /// Whether there is a next page.
    pub has_more: bool,
}

impl Client {
    /// `POST /keys`, for an unlimited key.
    pub async fn create_key(&self, scope: &str, alias: &str) -> Result<CreatedKey, ClientError> {
        self.create_key_with_rate_limit(scope, alias, None).await
    }

    /// `POST /keys` with a rate limit (`100/s`, `100/min`, `100/h`;
    /// `None` for unlimited).
    pub async fn create_key_with_rate_limit(
        &self,
        scope: &str,
        alias: &str,
        rate_limit: Option<&str>,
    ) -> Result<CreatedKey, ClientError> {
        self.create_key_with(scope, alias, rate_limit, Expiry::Never)
            .await
    }

    /// `POST /keys` with a rate limit (`None` for unlimited) and an expiry.
    pub async fn create_key_with(
        &self,
        scope: &str,
        alias: &str,
        rate_limit: Option<&str>,
        expiry: Expiry<'_>,
    ) -> Result<CreatedKey, ClientError> {
        let mut body = json!({"scope": scope, "alias": alias, "rate_limit": rate_limit});
        match expiry {
            Expiry::Never => {}
            Expiry::In(span) => body["expires_in"] = json!(span),
            Expiry::At(at) => body["expires_at"] = json!(at),
        }
        let req = self.request(Method::POST, "/keys").await?.json(&body);
        self.send(req).await
    }

    /// `POST /keys/{key_id}/roll`: a new pair like the old (its secret
    /// shown once); the old pair works for `grace` (`1h`; `None`: it stops
    /// at once).
    pub async fn roll_key(
        &self,
        key_id: &str,
        grace: Option<&str>,
    ) -> Result<CreatedKey, ClientError> {
        let mut req = self
            .request(Method::POST, &format!("/keys/{key_id}/roll"))
            .await?;
        if let Some(grace) = grace {
            req = req.json(&json!({ "grace": grace }));
        }
        self.send(req).await
    }

    /// `PATCH /keys/{key_id}`: sets the key's rate limit (`100/s`,
    /// `100/min`, `100/h`), or with `None` lifts it; the key as listed.
    pub async fn update_key_rate_limit(
        &self,
        key_id: &str,
        rate_limit: Option<&str>,
    ) -> Result<KeyInfo, ClientError> {
        let req = self
            .request(Method::PATCH, &format!("/keys/{key_id}"))
            .await?
            .json(&json!({ "rate_limit": rate_limit }));
        self.send(req).await
    }

    /// `GET /keys`, one page.
    pub async fn list_keys(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<KeyList, ClientError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_owned()));
        }
        let req = self.request(Method::GET, "/keys").await?.query(&query);
        self.send(req).await
    }

    /// Every key, following cursors.
    pub async fn list_all_keys(&self) -> Result<Vec<KeyInfo>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list_keys(100, cursor.as_deref()).await?;
            all.extend(page.keys);
            match page.next_cursor {
                Some(c) if page.has_more => cursor = Some(c),
                _ => return Ok(all),
            }
        }
    }

    /// `DELETE /keys/{key_id}`.
    pub async fn revoke_key(&self, key_id: &str) -> Result<(), ClientError> {
        let req = self
            .request(Method::DELETE, &format!("/keys/{key_id}"))
            .await?;
        let resp = self.send_raw(req).await?;
        if resp.status() == StatusCode::NO_CONTENT || resp.status().is_success() {
            Ok(())
        } else {
            Err(ClientError::Decode(format!("status {}", resp.status())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_the_secret_out() {
        let created = CreatedKey {
            key_id: "id-1".into(),
            key_secret: "fal_sk_very_secret".into(),
            key: "id-1:fal_sk_very_secret".into(),
            scope: "API".into(),
            alias: "a".into(),
            created_at: "2026-12-01T00:00:00.000Z".into(),
            rate_limit: Some("100/s".into()),
            expires_at: None,
            expires_in: None,
            old_key_id: None,
            old_expires_at: None,
        };
        let shown = format!("{created:?}");
        assert!(!shown.contains("very_secret"), "{shown}");
        assert!(shown.contains("id-1") && shown.contains("100/s"));
    }
}
