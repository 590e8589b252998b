//! The audit log's events: what happened to a user's keys, apps and
//! sessions, when, by whom and from where. An event names its actor by ids
//! only (user, key, session): never a secret, a token, a cookie or a hash.
//! Events are appended and never changed; they go only when retention
//! prunes them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{KeyId, Timestamp, UserId};

/// What happened. Each kind has a stable text form (`key.generated`), used
/// on the wire, in filters and in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditKind {
    /// A key was generated (REST, CLI, dashboard, recovery).
    #[serde(rename = "key.generated")]
    KeyGenerated,
    /// A key was rolled: a new secret replaced the old.
    #[serde(rename = "key.rolled")]
    KeyRolled,
    /// A key was revoked by its owner.
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    /// A key past its expiry was presented and refused.
    #[serde(rename = "key.expired_on_use")]
    KeyExpiredOnUse,
    /// A key found leaked (GitHub secret scanning) was revoked.
    #[serde(rename = "key.leaked_revoked")]
    KeyLeakedRevoked,
    /// An app was registered.
    #[serde(rename = "app.added")]
    AppAdded,
    /// An app was removed.
    #[serde(rename = "app.removed")]
    AppRemoved,
    /// A sign-in (dashboard with an ADMIN key, or GitHub: dashboard or CLI).
    #[serde(rename = "session.signed_in")]
    SessionSignedIn,
    /// A sign-out.
    #[serde(rename = "session.signed_out")]
    SessionSignedOut,
    /// A refused dashboard sign-in (wrong or API-scope key).
    #[serde(rename = "session.sign_in_failed")]
    SessionSignInFailed,
}

impl AuditKind {
    /// Every kind, in a fixed order.
    pub const ALL: [AuditKind; 10] = [
        AuditKind::KeyGenerated,
        AuditKind::KeyRolled,
        AuditKind::KeyRevoked,
        AuditKind::KeyExpiredOnUse,
        AuditKind::KeyLeakedRevoked,
        AuditKind::AppAdded,
        AuditKind::AppRemoved,
        AuditKind::SessionSignedIn,
        AuditKind::SessionSignedOut,
        AuditKind::SessionSignInFailed,
    ];

    /// The stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::KeyGenerated => "key.generated",
            AuditKind::KeyRolled => "key.rolled",
            AuditKind::KeyRevoked => "key.revoked",
            AuditKind::KeyExpiredOnUse => "key.expired_on_use",
            AuditKind::KeyLeakedRevoked => "key.leaked_revoked",
            AuditKind::AppAdded => "app.added",
            AuditKind::AppRemoved => "app.removed",
            AuditKind::SessionSignedIn => "session.signed_in",
            AuditKind::SessionSignedOut => "session.signed_out",
            AuditKind::SessionSignInFailed => "session.sign_in_failed",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text named no event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {0:?}: expected one of {list}", list = kinds_list())]
pub struct UnknownAuditKind(pub String);

fn kinds_list() -> String {
    let names: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
    names.join(", ")
}

impl FromStr for AuditKind {
    type Err = UnknownAuditKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownAuditKind(s.to_owned()))
    }
}

/// The longest user agent kept, in characters (longer ones are cut).
pub const MAX_USER_AGENT_CHARS: usize = 200;

/// A client's `User-Agent`, as kept: control characters dropped, cut to
/// [`MAX_USER_AGENT_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent(String);

impl UserAgent {
    /// The kept form of `raw`; `None` when nothing printable is left.
    pub fn new(raw: &str) -> Option<UserAgent> {
        let kept: String = raw
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_USER_AGENT_CHARS)
            .collect();
        let kept = kept.trim();
        (!kept.is_empty()).then(|| UserAgent(kept.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who acted, by id only. Empty for events the system records on nobody's
/// request (a key expired when used, a leak reported by GitHub).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditActor {
    /// The acting user.
    pub user_id: Option<UserId>,
    /// The key they acted with.
    pub key_id: Option<KeyId>,
    /// Or the session they acted in (its id, not its token).
    pub session_id: Option<String>,
}

/// One event, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When (the injected clock).
    pub at: Timestamp,
    /// What happened.
    pub kind: AuditKind,
    /// Whose log it is in: the actor, or the owner of the key it is about.
    /// `None` for a refused sign-in that named no known key (kept, shown
    /// to no user).
    pub user_id: Option<UserId>,
    /// Who acted.
    pub actor: AuditActor,
    /// The client's address (behind trusted proxies, the one they name).
    pub source: Option<IpAddr>,
    /// The client's user agent, cut short.
    pub user_agent: Option<UserAgent>,
    /// The key the event is about.
    pub key_id: Option<KeyId>,
    /// The app it is about (`owner/name`).
    pub app: Option<String>,
    /// A few more facts (scope, alias, how); never a secret.
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl AuditEvent {
    /// An event of `kind` at `at` in `user_id`'s log, with nothing else
    /// filled in yet.
    pub fn new(kind: AuditKind, at: Timestamp, user_id: Option<UserId>) -> AuditEvent {
        AuditEvent {
            at,
            kind,
            user_id,
            actor: AuditActor::default(),
            source: None,
            user_agent: None,
            key_id: None,
            app: None,
            detail: serde_json::Map::new(),
        }
    }

    /// What the event is about, for display: `key ID`, `app OWNER/NAME`,
    /// or empty.
    pub fn object(&self) -> String {
        match (&self.key_id, &self.app) {
            (Some(k), _) => format!("key {k}"),
            (None, Some(a)) => format!("app {a}"),
            (None, None) => String::new(),
        }
    }

    /// The actor, for display: `key ID`, `session ID`, or `system`.
    pub fn actor_label(&self) -> String {
        match (&self.actor.key_id, &self.actor.session_id) {
            (Some(k), _) => format!("key {k}"),
            (None, Some(s)) => format!("session {s}"),
            (None, None) => match &self.actor.user_id {
                Some(u) => format!("user {}", u.as_str()),
                None => "system".to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_text() {
        for k in AuditKind::ALL {
            assert_eq!(k.as_str().parse::<AuditKind>(), Ok(k));
            let json = serde_json::to_string(&k).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        let err = "key.stolen".parse::<AuditKind>().unwrap_err();
        assert!(err.to_string().contains("key.generated"), "{err}");
    }

    #[test]
    fn user_agents_are_cut_and_cleaned() {
        let long = "x".repeat(1000);
        let ua = UserAgent::new(&long).map(|u| u.as_str().len());
        assert_eq!(ua, Some(MAX_USER_AGENT_CHARS));
        assert_eq!(
            UserAgent::new("fal\r\n/1.0").map(|u| u.0),
            Some("fal/1.0".into())
        );
        assert_eq!(UserAgent::new(" \t"), None);
    }
}
