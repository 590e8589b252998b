//! Sign-in with GitHub: the device flow (for the CLI) and the web flow with
//! `state` and PKCE (for the dashboard), against GitHub or GitHub
//! Enterprise Server (both base URLs are configurable).
//!
//! The server holds the OAuth app's credentials; the CLI only talks to the
//! server. After GitHub confirms a user, the allow-lists decide, the user is
//! found by GitHub's numeric id (a renamed login keeps its keys) or
//! created, and the server issues its own session ([`crate::sessions`]).

use std::sync::Arc;
use std::time::Duration;

use fal_core::{Clock, RandomSource, UserId};
use fal_store::{User, Users};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::ApiError;

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
    /// Logins allowed to sign in.
    pub allow_users: Vec<String>,
    /// Organisations whose members may sign in.
    pub allow_orgs: Vec<String>,
}

/// GitHub's answer to a device-code request, passed on to the CLI.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
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
        Github { config, http }
    }

    /// The settings.
    pub fn config(&self) -> &GithubConfig {
        &self.config
    }

    /// Starts a device flow.
    pub async fn device_code(&self) -> Result<DeviceCode, ApiError> {
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
        resp.json().await.map_err(unreachable_github)
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

    /// Polls a device flow once.
    pub async fn poll_device(&self, device_code: &str) -> Result<DevicePoll, ApiError> {
        let answer = self
            .token_endpoint(&[
                ("client_id", self.config.client_id.as_str()),
                ("device_code", device_code),
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ])
            .await?;
        Ok(match (answer.access_token, answer.error.as_deref()) {
            (Some(t), _) => DevicePoll::Token(SecretString::from(t)),
            (None, Some("authorization_pending")) => DevicePoll::Pending,
            (None, Some("slow_down")) => DevicePoll::SlowDown(answer.interval.unwrap_or(10)),
            (None, Some("expired_token")) => DevicePoll::Expired,
            (None, Some("access_denied")) => DevicePoll::Denied,
            (None, other) => return Err(unreachable_github(format!("device token: {other:?}"))),
        })
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

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &SecretString,
    ) -> Result<T, ApiError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.config.api_url))
            .header("accept", "application/vnd.github+json")
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(unreachable_github)?;
        if !resp.status().is_success() {
            return Err(unreachable_github(format!(
                "{path}: status {}",
                resp.status()
            )));
        }
        resp.json().await.map_err(unreachable_github)
    }

    /// Confirms the user behind `token`, applies the allow-lists, and finds
    /// or creates the matching fal user.
    pub async fn sign_in(
        &self,
        token: &SecretString,
        users: &dyn Users,
        clock: &dyn Clock,
        rng: &dyn RandomSource,
    ) -> Result<User, ApiError> {
        let gh: GithubUser = self.get("/user", token).await?;
        let c = &self.config;
        if c.allow_users.is_empty() && c.allow_orgs.is_empty() {
            return Err(not_allowed(
                "GitHub sign-in is on, but nobody may sign in yet: start fal serve with \
                 --github-allow-users LOGIN,… or --github-allow-orgs ORG,…"
                    .into(),
            ));
        }
        let mut allowed = c
            .allow_users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&gh.login));
        if !allowed && !c.allow_orgs.is_empty() {
            #[derive(Deserialize)]
            struct Org {
                login: String,
            }
            let orgs: Vec<Org> = self.get("/user/orgs", token).await?;
            allowed = orgs.iter().any(|o| {
                c.allow_orgs
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&o.login))
            });
        }
        if !allowed {
            tracing::info!(login = %gh.login, github_id = gh.id, "GitHub sign-in refused");
            return Err(not_allowed(format!(
                "GitHub user {} may not sign in to this server: ask its operator to add you to \
                 --github-allow-users or to an organisation in --github-allow-orgs",
                gh.login
            )));
        }
        let full_name = gh.name.clone().unwrap_or_default();
        let user = match users.user_by_github_id(gh.id).await? {
            Some(u) if users.disabled_at(&u.user_id).await?.is_some() => {
                tracing::info!(login = %gh.login, user_id = %u.user_id, "disabled user refused");
                return Err(not_allowed(format!(
                    "GitHub user {} was disabled on this server by an operator",
                    gh.login
                )));
            }
            Some(mut u) => {
                if u.nickname != gh.login || u.full_name != full_name {
                    users
                        .update_user_names(&u.user_id, &gh.login, &full_name)
                        .await?;
                    u.nickname = gh.login.clone();
                    u.full_name = full_name;
                }
                u
            }
            None => {
                let u = User {
                    user_id: UserId::generate(rng)?,
                    nickname: gh.login.clone(),
                    full_name,
                    github_id: Some(gh.id),
                    created_at: clock.now(),
                };
                users.create_user(&u).await?;
                u
            }
        };
        tracing::info!(login = %gh.login, github_id = gh.id, user_id = %user.user_id, "signed in with GitHub");
        Ok(user)
    }
}

fn not_allowed(detail: String) -> ApiError {
    ApiError::Status {
        status: axum::http::StatusCode::FORBIDDEN,
        code: "not_allowed",
        detail,
    }
}

/// Shared handle.
pub type GithubHandle = Option<Arc<Github>>;
