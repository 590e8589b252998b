//! Typed client for the fal platform, and credential resolution.
//!
//! The CLI and the integration tests both use this crate, so what the tests
//! prove about the API is what the CLI gets.
//!
//! # Layout
//! - [`credentials`]: where a key pair comes from (flag, `FAL_KEY`,
//!   `FAL_KEY_ID` + `FAL_KEY_SECRET`), first found wins.
//! - `keys`: the `/keys` calls and [`CreatedKey`], [`KeyInfo`], [`KeyList`].
//! - `audit`: `GET /audit` and [`AuditEvent`], [`AuditList`].
//! - `stream`: [`EventStream`], a model's server-sent events as they arrive.
//! - `queue`: the `/queue` calls (submit, status, status stream, result,
//!   cancel) and [`Submitted`], [`QueueStatus`], [`Cancelled`].
//! - this file: [`Client`] and the other response types.
#![forbid(unsafe_code)]

mod admin;
mod audit;
pub mod credentials;
mod keys;
mod queue;
pub mod session;
mod stream;
mod unreachable;
mod usage;

pub use audit::{AuditActor, AuditEvent, AuditList};
pub use keys::{CreatedKey, Expiry, KeyInfo, KeyList};
pub use queue::{Cancelled, LogLine, QueueStatus, StatusStream, Submitted};
pub use stream::EventStream;
pub use unreachable::{ConnectFailure, chain_text};
pub use usage::{KeyUsage, UsageCounts, UsageHour};

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use credentials::{CredentialError, KeyCredentials};

/// Where the CLI looks for a server when neither `--host` nor `FAL_HOST` is set.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:8420";

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; `detail` is its message.
    #[error("{detail}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's `detail`.
        detail: String,
        /// The server's `code`, when it sent one.
        code: Option<String>,
    },
    /// No server answered; `failure` names why, in words that say what to
    /// do (see [`ConnectFailure::explain`]).
    #[error("cannot reach the fal server at {host}: {}", failure.explain(cause))]
    Unreachable {
        /// The address tried.
        host: String,
        /// Why, as far as the error chain tells.
        failure: ConnectFailure,
        /// The whole error chain's text.
        cause: String,
    },
    /// The call needs credentials and none were found.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The caller's input is wrong.
    #[error("{0}")]
    Usage(String),
    /// The server's answer was not what this client understands.
    #[error("unexpected response from the server: {0}")]
    Decode(String),
}

/// Who the caller is.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct CurrentUser {
    /// User id.
    pub user_id: String,
    /// Short name.
    pub nickname: String,
    /// Display name.
    pub full_name: String,
    /// The credential in use.
    pub credential: CredentialInfo,
}

/// The credential a request was authenticated with.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct CredentialInfo {
    /// `key` or `session`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For keys.
    pub key_id: Option<String>,
    /// `ADMIN` or `API`.
    pub scope: String,
}

/// A client for one server, with optional credentials.
#[derive(Debug, Clone)]
pub struct Client {
    /// `http://host:port`, without a trailing slash.
    base: String,
    /// Connection pool.
    http: reqwest::Client,
    /// The key pair to send, if any (wins over a login).
    credentials: Option<KeyCredentials>,
    /// The GitHub login file to use when there is no key pair.
    session: Option<std::path::PathBuf>,
}

/// One poll of the device flow, as the server reports it.
#[derive(Debug)]
pub enum DevicePoll {
    /// Not yet.
    Pending,
    /// Poll less often: seconds.
    SlowDown(u64),
    /// Signed in.
    Done {
        /// Bearer token.
        access_token: String,
        /// Refresh token.
        refresh_token: String,
        /// Seconds the access token lives.
        expires_in: u64,
        /// The user's GitHub login.
        nickname: String,
        /// The user's name.
        full_name: String,
    },
}

/// Splits `OWNER/NAME`.
pub fn split_app(app: &str) -> Result<(&str, &str), ClientError> {
    match app.split_once('/') {
        Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/') => Ok((o, n)),
        _ => Err(ClientError::Usage(format!(
            "an app is named OWNER/NAME (for example fal-ai/echo), not {app:?}"
        ))),
    }
}

/// Adds `http://` to a bare `host:port` and drops a trailing slash.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    }
}

/// The answer of a model call.
#[derive(Debug)]
pub struct RunResponse {
    /// HTTP status.
    pub status: u16,
    /// `x-fal-request-id`, when the gateway sent it.
    pub request_id: Option<String>,
    /// `content-type`.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// A plain `reqwest` client with this crate's TLS set-up (reqwest is built
/// without a bundled crypto provider; this installs ring's once).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap_or_default()
}

impl Client {
    /// A client for the server at `host` (`http://…` or `https://…`; for
    /// https, the system's roots, or the CA file in `SSL_CERT_FILE`).
    pub fn new(host: &str, credentials: Option<KeyCredentials>) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Named, so the server's audit log can tell the CLI's actions.
        let http = reqwest::Client::builder()
            .user_agent(concat!("fal-client/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(600))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Client {
            base: normalize_host(host),
            http,
            credentials,
            session: None,
        }
    }

    /// Uses the GitHub login in `path` when no key pair is set.
    pub fn with_session_file(mut self, path: std::path::PathBuf) -> Client {
        self.session = Some(path);
        self
    }

    /// A current access token from the login file, refreshed (under the
    /// file lock, re-reading the file first in case another process did it)
    /// when it expires within 30 seconds. A refresh ends the session's
    /// previous access token, so a token another process just got is used
    /// rather than replaced.
    async fn bearer(&self, path: &std::path::Path) -> Result<String, ClientError> {
        let not_logged_in = || ClientError::Credentials(CredentialError::Missing);
        let now = session::unix_now();
        let current = session::SessionFile::load(path).ok_or_else(not_logged_in)?;
        if current.expires_at > now + 30 {
            return Ok(current.access_token);
        }
        let _lock = session::FileLock::acquire(path)
            .map_err(|e| ClientError::Usage(format!("cannot lock {}: {e}", path.display())))?;
        let mut file = session::SessionFile::load(path).ok_or_else(not_logged_in)?;
        let now = session::unix_now();
        // Another process refreshed while this one waited: its access token
        // is the session's current one (refreshing again would end it while
        // that process may still be using it), so use it while it lasts.
        let refreshed_meanwhile = file.refresh_token != current.refresh_token;
        if file.expires_at > now + 30 || (refreshed_meanwhile && file.expires_at > now) {
            return Ok(file.access_token);
        }
        #[derive(Deserialize)]
        struct Refreshed {
            access_token: String,
            refresh_token: String,
            expires_in: u64,
        }
        let req = self
            .http
            .post(format!("{}/auth/refresh", self.base))
            .json(&json!({"refresh_token": file.refresh_token}));
        let r: Refreshed = self.send(req).await?;
        file.access_token = r.access_token;
        file.refresh_token = r.refresh_token;
        file.expires_at = session::unix_now() + r.expires_in;
        file.save(path)
            .map_err(|e| ClientError::Usage(format!("cannot save {}: {e}", path.display())))?;
        Ok(file.access_token)
    }

    /// `GET /auth/github`: whether the server offers GitHub sign-in.
    pub async fn github_configured(&self) -> Result<bool, ClientError> {
        let v: Value = self
            .send(self.http.get(format!("{}/auth/github", self.base)))
            .await?;
        Ok(v["configured"].as_bool().unwrap_or(false))
    }

    /// `POST /auth/device`: starts GitHub's device flow.
    pub async fn device_start(&self) -> Result<Value, ClientError> {
        self.send(self.http.post(format!("{}/auth/device", self.base)))
            .await
    }

    /// `POST /auth/device/token`: polls once.
    pub async fn device_poll(&self, device_code: &str) -> Result<DevicePoll, ClientError> {
        let req = self
            .http
            .post(format!("{}/auth/device/token", self.base))
            .json(&json!({"device_code": device_code}));
        let resp = self.send_raw(req).await?;
        let accepted = resp.status() == StatusCode::ACCEPTED;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if accepted {
            return Ok(match v["status"].as_str() {
                Some("slow_down") => DevicePoll::SlowDown(v["interval"].as_u64().unwrap_or(10)),
                _ => DevicePoll::Pending,
            });
        }
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Ok(DevicePoll::Done {
            access_token: s("access_token"),
            refresh_token: s("refresh_token"),
            expires_in: v["expires_in"].as_u64().unwrap_or(0),
            nickname: v["user"]["nickname"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            full_name: v["user"]["full_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// `POST /auth/logout` for the login in `file`: ends the session on the
    /// server, so copies of its tokens stop working.
    pub async fn logout(&self, file: &session::SessionFile) -> Result<(), ClientError> {
        let req = self
            .http
            .post(format!("{}/auth/logout", self.base))
            .bearer_auth(&file.access_token)
            .json(&json!({"refresh_token": file.refresh_token}));
        self.send_raw(req).await?;
        Ok(())
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, ClientError> {
        let auth = match (&self.credentials, &self.session) {
            (Some(creds), _) => format!("Key {}:{}", creds.key_id, creds.secret.expose_secret()),
            (None, Some(path)) => format!("Bearer {}", self.bearer(path).await?),
            (None, None) => return Err(ClientError::Credentials(CredentialError::Missing)),
        };
        Ok(self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, auth))
    }

    async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, ClientError> {
        let resp = self.send_raw(req).await?;
        resp.json::<T>()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn send_raw(&self, req: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        self.check(resp).await
    }

    /// [`ClientError::Unreachable`] for a request that got no answer.
    pub(crate) fn unreachable(&self, err: reqwest::Error) -> ClientError {
        let err = err.without_url();
        ClientError::Unreachable {
            host: self.base.clone(),
            failure: ConnectFailure::of_request(&err),
            cause: chain_text(&err),
        }
    }

    /// The response when it is a success, else [`ClientError::Api`] with
    /// the server's detail.
    async fn check(&self, resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Err(ClientError::Api {
            status: status.as_u16(),
            detail: body["detail"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
            code: body["code"].as_str().map(str::to_owned),
        })
    }

    /// `POST /apps`.
    pub async fn create_app(
        &self,
        app: &str,
        upstream: &str,
        timeout_ms: Option<u64>,
    ) -> Result<Value, ClientError> {
        self.create_app_with(app, upstream, timeout_ms, None).await
    }

    /// `POST /apps` with how many queued requests may run at once.
    pub async fn create_app_with(
        &self,
        app: &str,
        upstream: &str,
        timeout_ms: Option<u64>,
        concurrency: Option<u32>,
    ) -> Result<Value, ClientError> {
        let (owner, name) = split_app(app)?;
        let mut body = json!({"owner": owner, "name": name, "upstream": upstream});
        if let Some(t) = timeout_ms {
            body["timeout_ms"] = json!(t);
        }
        if let Some(n) = concurrency {
            body["concurrency"] = json!(n);
        }
        let req = self.request(Method::POST, "/apps").await?.json(&body);
        self.send(req).await
    }

    /// `GET /apps`.
    pub async fn list_apps(&self) -> Result<Vec<Value>, ClientError> {
        let v: Value = self.send(self.request(Method::GET, "/apps").await?).await?;
        Ok(v["apps"].as_array().cloned().unwrap_or_default())
    }

    /// `DELETE /apps/{owner}/{name}`.
    pub async fn delete_app(&self, app: &str) -> Result<(), ClientError> {
        let (owner, name) = split_app(app)?;
        self.send_raw(
            self.request(Method::DELETE, &format!("/apps/{owner}/{name}"))
                .await?,
        )
        .await?;
        Ok(())
    }

    /// Calls a model: `POST /run/{owner}/{name}` with a JSON body. An error
    /// status is returned as [`ClientError::Api`] with the gateway's detail.
    pub async fn run(&self, app: &str, json_body: Vec<u8>) -> Result<RunResponse, ClientError> {
        let (owner, name) = split_app(app)?;
        let req = self
            .request(Method::POST, &format!("/run/{owner}/{name}"))
            .await?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json_body);
        self.read_answer(self.send_raw(req).await?).await
    }

    /// A model's answer, read whole.
    async fn read_answer(&self, resp: reqwest::Response) -> Result<RunResponse, ClientError> {
        let header = |h: &str| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (request_id, content_type) = (header("x-fal-request-id"), header("content-type"));
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?
            .to_vec();
        Ok(RunResponse {
            status,
            request_id,
            content_type,
            body,
        })
    }

    /// Calls a model's stream: `POST /run/{owner}/{name}/stream` with a JSON
    /// body, answered with server-sent events read as they arrive. An error
    /// status is [`ClientError::Api`] with the gateway's (or the app's)
    /// detail; an answer that is not `text/event-stream` is
    /// [`ClientError::Decode`].
    pub async fn stream(&self, app: &str, json_body: Vec<u8>) -> Result<EventStream, ClientError> {
        let (owner, name) = split_app(app)?;
        let req = self
            .request(Method::POST, &format!("/run/{owner}/{name}/stream"))
            .await?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .body(json_body);
        EventStream::new(self.send_raw(req).await?)
    }

    /// `GET /users/current`.
    pub async fn current_user(&self) -> Result<CurrentUser, ClientError> {
        let req = self.request(Method::GET, "/users/current").await?;
        self.send(req).await
    }
}
