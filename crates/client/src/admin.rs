//! What only operators may do: list users and disable one.

use reqwest::Method;
use serde_json::Value;

use crate::{Client, ClientError};

impl Client {
    /// `GET /admin/users` (operators only).
    pub async fn list_users(&self) -> Result<Vec<Value>, ClientError> {
        let v: Value = self
            .send(self.request(Method::GET, "/admin/users").await?)
            .await?;
        Ok(v["users"].as_array().cloned().unwrap_or_default())
    }

    /// `POST /admin/users/{user}/disable` (operators only); `user` is a
    /// GitHub login or a user id.
    pub async fn disable_user(&self, user: &str) -> Result<Value, ClientError> {
        if user.is_empty()
            || !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ClientError::Usage(format!(
                "name a user by GitHub login or user id, not {user:?}"
            )));
        }
        let path = format!("/admin/users/{user}/disable");
        self.send(self.request(Method::POST, &path).await?).await
    }
}
