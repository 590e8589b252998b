//! Sign-in with GitHub: the device flow (for the CLI) and the web flow with
//! `state` and PKCE (for the dashboard), against GitHub or GitHub
//! Enterprise Server (both base URLs are configurable).
//!
//! The server holds the OAuth app's credentials; the CLI only talks to the
//! server. After GitHub confirms a user, the allow-lists decide, the user is
//! found by GitHub's numeric id (a renamed login keeps its keys) or
//! created, and the server issues its own session ([`crate::auth::sessions`]).

use std::sync::Arc;
use std::time::Duration;

use fal_core::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::device_polls::{Answered, DevicePolls, Gate, Verdict};
use crate::error::ApiError;

mod access;

/// The GitHub OAuth app and who may sign in.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// OAuth app client id.
    pub client_id: String,
    /// OAuth app client secret (web flow only).
    pub client_secret: SecretString,
    /// `https://github.com`, or a GitHub Enterprise Server's URL.
    pub url: String,
    /// `https://api.github.com`, or `https://HOST/api/v3`.
    pub api_url: String,
    /// Logins allowed to sign in. GitHub lets another account take a
    /// login that was given up, so prefer [`GithubConfig::allow_user_ids`].
    pub allow_users: Vec<String>,
    /// GitHub's numeric user ids allowed to sign in (stable for life).
    pub allow_user_ids: Vec<i64>,
    /// Organisations whose members may sign in.
    pub allow_orgs: Vec<String>,
}

/// GitHub's answer to a device-code request, passed on to the CLI.
#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceCode {
    /// Secret of this attempt; the CLI polls with it.
    pub device_code: String,
    /// What the user types at `verification_uri`.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// Seconds until the code expires.
    pub expires_in: u64,
    /// Seconds between polls.
    pub interval: u64,
}

/// One poll of the device flow.
#[derive(Debug)]
pub enum DevicePoll {
    /// The user has not finished yet.
    Pending,
    /// Poll less often: the new interval in seconds.
    SlowDown(u64),
    /// The code expired; start again.
    Expired,
    /// The user refused.
    Denied,
    /// GitHub does not know this device code (or it was already used).
    Unknown,
    /// Done: GitHub's token for this user.
    Token(SecretString),
}

/// A GitHub user.
#[derive(Debug, Clone, Deserialize)]
pub struct GithubUser {
    /// Numeric id: stable across renames.
    pub id: i64,
    /// Login (may change).
    pub login: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Talks to GitHub.
pub struct Github {
    /// Settings.
    config: GithubConfig,
    /// HTTP client.
    http: reqwest::Client,
    /// The web flow's `redirect_uri`, from the configured public URL; `None`
    /// when there is none (the web flow is then refused).
    callback: Option<String>,
    /// Per-device-code throttle of device-flow polls.
    polls: DevicePolls,
}

fn unreachable_github(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "GitHub request failed");
    ApiError::BadGateway("GitHub could not be reached or answered unexpectedly; try again".into())
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
    interval: Option<u64>,
}

impl Github {
    /// A client for the configured GitHub.
    pub fn new(config: GithubConfig) -> Github {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .user_agent("fal-server")
            .build()
            .unwrap_or_default();
        Github {
            config,
            http,
            callback: None,
            polls: DevicePolls::default(),
        }
    }

    /// Sends the web flow back to `public_base` (an origin, see
    /// [`crate::Config::public_base`]); without one the web flow is refused.
    pub fn with_public_base(mut self, public_base: Option<String>) -> Github {
        self.callback = public_base.map(|b| format!("{b}/auth/github/callback"));
        self
    }

    /// The web flow's `redirect_uri`: built from configuration, never from
    /// a request (a forged `Host` header must not choose where GitHub sends
    /// the code).
    pub fn callback_url(&self) -> Result<&str, ApiError> {
        self.callback.as_deref().ok_or_else(|| ApiError::Status {
            status: axum::http::StatusCode::NOT_IMPLEMENTED,
            code: "public_url_not_configured",
            detail: "Sign-in with GitHub in the browser needs the address browsers reach this \
                     server at: start fal serve with --public-url (FAL_PUBLIC_URL), e.g. \
                     https://fal.example.com, and register \
                     <public URL>/auth/github/callback as the OAuth app's callback URL"
                .into(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &GithubConfig {
        &self.config
    }

    /// Starts a device flow (429 when [`crate::device_polls::MAX_STARTED`]
    /// flows are under way).
    pub async fn device_code(&self, now: Timestamp) -> Result<DeviceCode, ApiError> {
        if !self.polls.has_room(now) {
            return Err(ApiError::Status {
                status: axum::http::StatusCode::TOO_MANY_REQUESTS,
                code: "too_many_sign_ins",
                detail:
                    "Too many sign-ins are under way on this server; try again in a few minutes"
                        .into(),
            });
        }
        let resp = self
            .http
            .post(format!("{}/login/device/code", self.config.url))
            .header("accept", "application/json")
            .form(&[
                ("client_id", self.config.client_id.as_str()),
                ("scope", "read:user read:org"),
            ])
            .send()
            .await
            .map_err(unreachable_github)?;
        if !resp.status().is_success() {
            return Err(unreachable_github(format!(
                "device code: status {}",
                resp.status()
            )));
        }
        let code: DeviceCode = resp.json().await.map_err(unreachable_github)?;
        self.polls
            .started(&code.device_code, code.interval, code.expires_in, now);
        Ok(code)
    }

    /// One request to GitHub's token endpoint (device flow and web flow).
    async fn token_endpoint(&self, form: &[(&str, &str)]) -> Result<TokenAnswer, ApiError> {
        self.http
            .post(format!("{}/login/oauth/access_token", self.config.url))
            .header("accept", "application/json")
            .form(form)
            .send()
            .await
            .map_err(unreachable_github)?
            .json()
            .await
            .map_err(unreachable_github)
    }

    /// Polls a device flow once: answered here when polled sooner than the
    /// interval or after GitHub's final answer ([`crate::device_polls`]),
    /// else asked of GitHub.
    pub async fn poll_device(
        &self,
        device_code: &str,
        now: Timestamp,
    ) -> Result<DevicePoll, ApiError> {
        match self.polls.gate(device_code, now) {
            Gate::Forward => {}
            Gate::SlowDown(interval) => return Ok(DevicePoll::SlowDown(interval)),
            Gate::Final(v) => return Ok(verdict_poll(v)),
        }
        let answer = self
            .token_endpoint(&[
                ("client_id", self.config.client_id.as_str()),
                ("device_code", device_code),
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ])
            .await?;
        let (poll, seen) = match (answer.access_token, answer.error.as_deref()) {
            (Some(t), _) => (DevicePoll::Token(SecretString::from(t)), Answered::Done),
            (None, Some("authorization_pending")) => (DevicePoll::Pending, Answered::Pending),
            (None, Some("slow_down")) => {
                let i = answer.interval.unwrap_or(10);
                (DevicePoll::SlowDown(i), Answered::SlowDown(i))
            }
            (None, Some("expired_token")) => final_answer(Verdict::Expired),
            (None, Some("access_denied")) => final_answer(Verdict::Denied),
            (None, Some("incorrect_device_code" | "bad_verification_code")) => {
                final_answer(Verdict::Unknown)
            }
            (None, Some(e @ ("device_flow_disabled" | "incorrect_client_credentials"))) => {
                tracing::warn!(error = e, "GitHub refused this server's OAuth app");
                return Err(ApiError::BadGateway(format!(
                    "GitHub refused this server's OAuth app ({e}): its operator must check the \
                     client id and enable the device flow in the OAuth app's settings"
                )));
            }
            (None, other) => return Err(unreachable_github(format!("device token: {other:?}"))),
        };
        self.polls.answered(device_code, seen);
        Ok(poll)
    }

    /// The URL that starts the web flow.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, challenge: &str) -> String {
        let q = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        format!(
            "{}/login/oauth/authorize?client_id={}&redirect_uri={}&state={}&code_challenge={}&code_challenge_method=S256&scope={}",
            self.config.url,
            q(&self.config.client_id),
            q(redirect_uri),
            q(state),
            q(challenge),
            q("read:user read:org")
        )
    }

    /// Exchanges a web-flow code (with its PKCE verifier) for a token.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<SecretString, ApiError> {
        let answer = self
            .token_endpoint(&[
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", self.config.client_secret.expose_secret()),
                ("code", code),
                ("code_verifier", verifier),
                ("redirect_uri", redirect_uri),
            ])
            .await?;
        answer
            .access_token
            .map(SecretString::from)
            .ok_or_else(|| ApiError::Status {
                status: axum::http::StatusCode::UNAUTHORIZED,
                code: "github_refused",
                detail: format!(
                    "GitHub did not accept the sign-in ({}); start again",
                    answer.error.unwrap_or_else(|| "no token".into())
                ),
            })
    }

    /// One GET on GitHub's API with the user's token: `Ok(None)` when
    /// GitHub refuses the token (401: revoked or expired), `Err` with a
    /// description when GitHub cannot be reached or answers otherwise.
    async fn fetch<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &SecretString,
    ) -> Result<Option<T>, String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.config.api_url))
            .header("accept", "application/vnd.github+json")
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(format!("{path}: status {}", resp.status()));
        }
        resp.json().await.map(Some).map_err(|e| e.to_string())
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &SecretString,
    ) -> Result<T, ApiError> {
        match self.fetch(path, token).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(unreachable_github(format!("{path}: status 401"))),
            Err(e) => Err(unreachable_github(e)),
        }
    }
}

fn verdict_poll(v: Verdict) -> DevicePoll {
    match v {
        Verdict::Expired => DevicePoll::Expired,
        Verdict::Denied => DevicePoll::Denied,
        Verdict::Unknown => DevicePoll::Unknown,
    }
}

fn final_answer(v: Verdict) -> (DevicePoll, Answered) {
    (verdict_poll(v), Answered::Final(v))
}

/// Shared handle.
pub type GithubHandle = Option<Arc<Github>>;
