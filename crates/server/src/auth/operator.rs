//! [`Operator`]: the handle to work only operators may do (every app, every
//! user). The only way to get one is [`Admin::operator`], which asks
//! [`crate::operators::Operators`]; its field is private to this module, so
//! no other code can make one without that check.

use axum::http::StatusCode;
use fal_core::{AuditKind, UserId};
use fal_store::{DisabledUser, User, UserSummary};

use super::Admin;
use crate::error::ApiError;

/// An ADMIN principal who is an operator.
pub struct Operator<'a> {
    /// The admin handle it was checked from.
    admin: &'a Admin,
}

impl Admin {
    /// The operator handle, or 403 (`not_operator`) for anyone else.
    pub async fn operator(&self) -> Result<Operator<'_>, ApiError> {
        let ops = &self.stores.operators;
        if ops.is_operator(&self.principal.user_id).await? {
            Ok(Operator { admin: self })
        } else {
            Err(ApiError::Status {
                status: StatusCode::FORBIDDEN,
                code: "not_operator",
                detail: "only operators may do this: the bootstrap admin user and the GitHub \
                         users named in fal serve --operators (FAL_OPERATORS)"
                    .into(),
            })
        }
    }
}

/// 409 for a user an operator may not disable.
fn refused(detail: String) -> ApiError {
    ApiError::Conflict(detail)
}

impl Operator<'_> {
    /// The admin handle this operator acts through.
    pub(super) fn admin(&self) -> &Admin {
        self.admin
    }

    /// Every user, oldest first.
    pub async fn list_users(&self) -> Result<Vec<UserSummary>, ApiError> {
        Ok(self.admin.stores.user_admin.list_users().await?)
    }

    /// The user `who` names: a user id, else a login (nickname).
    pub async fn find_user(&self, who: &str) -> Result<User, ApiError> {
        let s = &self.admin.stores;
        if let Some(u) = s.users.user(&UserId::from_stored(who.to_owned())).await? {
            return Ok(u);
        }
        let mut found = s.user_admin.users_by_nickname(who).await?;
        match found.len() {
            0 => Err(ApiError::NotFound(format!("No user {who:?} here"))),
            1 => Ok(found.remove(0)),
            _ => Err(ApiError::Conflict(format!(
                "several users are named {who:?}: name one by its user id ({})",
                found
                    .iter()
                    .map(|u| u.user_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Disables `who`: marks them disabled and revokes all their keys and
    /// sessions at once; their keys leave this server's cache at once.
    /// Refuses the bootstrap user and the operator themselves (409).
    pub async fn disable_user(&self, who: &str) -> Result<(User, DisabledUser), ApiError> {
        let s = &self.admin.stores;
        let user = self.find_user(who).await?;
        if s.operators.is_bootstrap(&user.user_id) {
            return Err(refused(format!(
                "{} is the bootstrap admin user and cannot be disabled (a lost key is replaced \
                 with fal admin recover-key)",
                user.nickname
            )));
        }
        if user.user_id == self.admin.principal.user_id {
            return Err(refused(
                "you cannot disable yourself; ask another operator".into(),
            ));
        }
        let done = s
            .user_admin
            .disable_user(&user.user_id, s.clock.now())
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("No user {who:?} here")))?;
        for key in &done.revoked_keys {
            s.verifier.invalidate(key);
        }
        // Each key revoked now, in its owner's log, done by this operator.
        for key in &done.revoked_keys {
            let mut event = self.admin.event(AuditKind::KeyRevoked);
            event.user_id = Some(user.user_id.clone());
            event.key_id = Some(*key);
            event.detail.insert("reason".into(), "user_disabled".into());
            s.audit.record(event).await?;
        }
        s.operators.invalidate(&user.user_id);
        tracing::info!(
            user_id = %user.user_id,
            login = %user.nickname,
            operator = %self.admin.principal.user_id,
            keys = done.revoked_keys.len(),
            sessions = done.revoked_sessions,
            "user disabled"
        );
        Ok((user, done))
    }
}
