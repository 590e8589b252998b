//! Apps have owners: what an [`Admin`] may do with them.
//!
//! An app belongs to the user who registered it (`created_by`). A user
//! registers apps only under their own namespace (their login, lowercase,
//! as `OWNER`) and changes or removes only their own; an [`Operator`]
//! manages every app. A taken name is 409 whoever asks; a name outside
//! the caller's namespace, or someone else's app, is 403 (`not_yours`).
//! Upstream URLs are shown only to an app's owner and to operators, and
//! only operators register upstreams on internal addresses.

use std::time::Duration;

use axum::http::StatusCode;
use fal_core::AuditKind;
use fal_store::{AppRecord, StoreError};

use super::{Admin, Operator};
use crate::addresses::Reach;
use crate::error::ApiError;

/// 403 for an app (or a namespace) that is not the caller's.
fn not_yours(detail: String) -> ApiError {
    ApiError::Status {
        status: StatusCode::FORBIDDEN,
        code: "not_yours",
        detail,
    }
}

/// Who is looking at an app listing.
pub struct Viewer {
    /// The viewer's user.
    user_id: fal_core::UserId,
    /// Operators see every app in full.
    operator: bool,
}

impl Viewer {
    /// Whether this viewer may see `app`'s upstream (and manage it).
    pub fn sees_upstream_of(&self, app: &AppRecord) -> bool {
        self.operator || app.created_by == self.user_id
    }
}

impl Admin {
    /// Records `kind` about the app `owner/name` in the acting user's log
    /// (never its upstream URL, which may carry credentials).
    async fn record_app(&self, kind: AuditKind, owner: &str, name: &str) -> Result<(), ApiError> {
        let mut event = self.event(kind);
        event.app = Some(format!("{owner}/{name}"));
        self.stores.audit.record(event).await
    }

    /// The acting user's namespace: their login, lowercase.
    pub async fn namespace(&self) -> Result<String, ApiError> {
        let user = self
            .stores
            .users
            .user(&self.principal.user_id)
            .await?
            .ok_or_else(|| ApiError::Internal("authenticated user has no user record".into()))?;
        Ok(user.nickname.to_ascii_lowercase())
    }

    /// Who is looking, for listings.
    pub async fn viewer(&self) -> Result<Viewer, ApiError> {
        Ok(Viewer {
            user_id: self.principal.user_id.clone(),
            operator: self.operator().await.is_ok(),
        })
    }

    /// Registers an app: under the caller's own namespace, or anywhere for
    /// an operator; its upstream must be an address the caller may use.
    pub async fn create_app(&self, app: AppRecord) -> Result<AppRecord, ApiError> {
        let s = &self.stores;
        let taken = || {
            ApiError::Conflict(format!(
                "an app {}/{} already exists; remove it first",
                app.owner, app.name
            ))
        };
        if s.apps.is_builtin(&app.owner, &app.name) {
            return Err(ApiError::Conflict(format!(
                "{}/{} is built in and cannot be replaced",
                app.owner, app.name
            )));
        }
        let operator = self.operator().await.ok();
        if operator.is_none() {
            let ns = self.namespace().await?;
            if app.owner != ns {
                if s.apps.find(&app.owner, &app.name).await?.is_some() {
                    return Err(taken());
                }
                return Err(not_yours(format!(
                    "you may register apps only under your own namespace {ns:?} (your login): \
                     use {ns}/{}; only operators register apps elsewhere",
                    app.name
                )));
            }
        }
        self.check_upstream(&app.upstream, operator.is_some())
            .await?;
        match s.app_admin.create_app(&app).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(taken()),
            Err(e) => return Err(e.into()),
        }
        s.apps.invalidate(&app.owner, &app.name);
        tracing::info!(app = %format!("{}/{}", app.owner, app.name), upstream = %app.upstream, user_id = %self.principal.user_id, "app registered");
        self.record_app(AuditKind::AppAdded, &app.owner, &app.name)
            .await?;
        Ok(app)
    }

    /// Refuses an upstream whose host is, or resolves to, an address the
    /// caller may not use (see [`crate::addresses`]): 403 `upstream_refused`.
    /// A name that does not resolve is 422, except for operators (it may
    /// resolve later; every connection is checked again anyway).
    async fn check_upstream(&self, url: &str, operator: bool) -> Result<(), ApiError> {
        let uri: axum::http::Uri = url
            .parse()
            .map_err(|_| ApiError::Unprocessable(format!("upstream {url:?} is not a URL")))?;
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let any = Reach {
            internal: true,
            metadata: true,
        };
        let resolved = tokio::time::timeout(
            Duration::from_secs(5),
            crate::gateway::reach::resolve(host, port, any),
        )
        .await;
        let addrs = match resolved {
            Ok(Ok(addrs)) => addrs,
            _ if operator => return Ok(()),
            _ => {
                return Err(ApiError::Unprocessable(format!(
                    "upstream host {host:?} does not resolve to an address: check the name"
                )));
            }
        };
        let reach = Reach {
            internal: operator,
            metadata: self.stores.policy.allow_metadata(),
        };
        for a in addrs {
            crate::addresses::check(a.ip(), reach).map_err(|r| ApiError::Status {
                status: StatusCode::FORBIDDEN,
                code: "upstream_refused",
                detail: if host == r.ip.to_string() {
                    format!("upstream refused: {r}")
                } else {
                    format!("upstream refused: {host} resolves to {r}")
                },
            })?;
        }
        Ok(())
    }

    /// Every stored app.
    pub async fn list_apps(&self) -> Result<Vec<AppRecord>, ApiError> {
        Ok(self.stores.app_admin.list_apps().await?)
    }

    /// Removes one of the caller's apps (any app, for an operator);
    /// `false` when there is none, 403 when it is someone else's.
    pub async fn delete_app(&self, owner: &str, name: &str) -> Result<bool, ApiError> {
        let s = &self.stores;
        if s.apps.is_builtin(owner, name) {
            return Err(ApiError::Conflict(format!(
                "{owner}/{name} is built in (fal serve --demo) and cannot be removed"
            )));
        }
        if let Ok(op) = self.operator().await {
            return op.delete_any_app(owner, name).await;
        }
        let me = &self.principal.user_id;
        let found = s.app_admin.delete_app(owner, name, Some(me)).await?;
        s.apps.invalidate(owner, name);
        if found {
            tracing::info!(app = %format!("{owner}/{name}"), user_id = %me, "app removed by its owner");
            self.record_app(AuditKind::AppRemoved, owner, name).await?;
            return Ok(true);
        }
        match s.apps.find(owner, name).await? {
            Some(_) => Err(not_yours(format!(
                "{owner}/{name} belongs to another user: only its owner or an operator may remove it"
            ))),
            None => Ok(false),
        }
    }
}

impl Operator<'_> {
    /// Removes any app; `false` when there is none.
    pub async fn delete_any_app(&self, owner: &str, name: &str) -> Result<bool, ApiError> {
        let s = &self.admin().stores;
        let found = s.app_admin.delete_app(owner, name, None).await?;
        s.apps.invalidate(owner, name);
        if found {
            tracing::info!(app = %format!("{owner}/{name}"), operator = %self.admin().principal.user_id, "app removed by an operator");
            let admin = self.admin();
            admin.record_app(AuditKind::AppRemoved, owner, name).await?;
        }
        Ok(found)
    }
}
