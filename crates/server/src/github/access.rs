//! Who may sign in with GitHub, and whether they still may: the id, login
//! and organisation allow-lists, applied at sign-in and again at every
//! refresh of a CLI session.

use fal_core::{Clock, RandomSource, UserId};
use fal_store::{User, Users};
use secrecy::SecretString;
use serde::Deserialize;

use super::{Github, GithubUser, unreachable_github};
use crate::error::ApiError;

impl Github {
    /// Whether no allow-list names anybody (then nobody may sign in).
    fn nobody_allowed(&self) -> bool {
        let c = &self.config;
        c.allow_users.is_empty() && c.allow_user_ids.is_empty() && c.allow_orgs.is_empty()
    }

    /// Whether the user is named by id or by login.
    fn listed(&self, gh: &GithubUser) -> bool {
        let c = &self.config;
        c.allow_user_ids.contains(&gh.id)
            || c.allow_users
                .iter()
                .any(|u| u.eq_ignore_ascii_case(&gh.login))
    }

    /// Whether the token's user belongs to an allowed organisation
    /// (`Ok(None)` when GitHub refuses the token).
    async fn in_allowed_org(&self, token: &SecretString) -> Result<Option<bool>, String> {
        #[derive(Deserialize)]
        struct Org {
            login: String,
        }
        let c = &self.config;
        if c.allow_orgs.is_empty() {
            return Ok(Some(false));
        }
        let orgs: Option<Vec<Org>> = self.fetch("/user/orgs", token).await?;
        Ok(orgs.map(|orgs| {
            orgs.iter().any(|o| {
                c.allow_orgs
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&o.login))
            })
        }))
    }

    /// At refresh: whether the user behind `token` (GitHub id `github_id`,
    /// as stored at sign-in) is still allowed by the lists and org
    /// membership. `Ok(false)` when not, or when GitHub no longer accepts
    /// the token; 503 when GitHub cannot be reached (the caller keeps the
    /// session, so a retry may work).
    pub async fn still_allowed(
        &self,
        token: &SecretString,
        github_id: Option<i64>,
    ) -> Result<bool, ApiError> {
        let down = |e: String| {
            tracing::warn!(error = %e, "GitHub could not be reached to re-check access");
            ApiError::Status {
                status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                code: "github_unavailable",
                detail: "GitHub could not be reached to confirm your access; try again shortly"
                    .into(),
            }
        };
        if self.nobody_allowed() {
            return Ok(false);
        }
        let Some(gh) = self
            .fetch::<GithubUser>("/user", token)
            .await
            .map_err(down)?
        else {
            return Ok(false);
        };
        if github_id != Some(gh.id) {
            return Ok(false);
        }
        if self.listed(&gh) {
            return Ok(true);
        }
        let allowed = self
            .in_allowed_org(token)
            .await
            .map_err(down)?
            .unwrap_or(false);
        if !allowed {
            tracing::info!(login = %gh.login, github_id = gh.id, "access withdrawn at refresh");
        }
        Ok(allowed)
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
        if self.nobody_allowed() {
            return Err(not_allowed(
                "GitHub sign-in is on, but nobody may sign in yet: start fal serve with \
                 --github-allow-user-ids ID,…, --github-allow-users LOGIN,… or \
                 --github-allow-orgs ORG,…"
                    .into(),
            ));
        }
        let mut allowed = self.listed(&gh);
        if !allowed {
            allowed = match self.in_allowed_org(token).await {
                Ok(Some(a)) => a,
                Ok(None) => return Err(unreachable_github("/user/orgs: status 401")),
                Err(e) => return Err(unreachable_github(e)),
            };
        }
        if !allowed {
            tracing::info!(login = %gh.login, github_id = gh.id, "GitHub sign-in refused");
            return Err(not_allowed(format!(
                "GitHub user {} may not sign in to this server (GitHub id {}): ask its operator to add \
                 you to --github-allow-user-ids or --github-allow-users, or to an organisation \
                 in --github-allow-orgs",
                gh.login, gh.id
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

pub(super) fn not_allowed(detail: String) -> ApiError {
    ApiError::Status {
        status: axum::http::StatusCode::FORBIDDEN,
        code: "not_allowed",
        detail,
    }
}
