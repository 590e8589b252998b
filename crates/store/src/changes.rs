//! Change notifications between servers sharing one PostgreSQL database.
//!
//! Writers announce changes with `pg_notify` inside their transaction (see
//! [`CHANGES_CHANNEL`]); each server holds one [`Changes`]
//! subscription and drops the named cache entry on receipt. A dropped
//! connection loses notifications, so [`Changes::next`] fails when the
//! connection drops; the server then subscribes anew and, once subscribed,
//! drops its whole cache (see `fal_server::app`). Until then cached records
//! are trusted only within the staleness bound.

use fal_core::KeyId;
use sqlx::postgres::PgListener;

use crate::StoreError;

/// The PostgreSQL channel on which changes that affect verification or
/// routing are announced (payloads: `key:<key_id>`, `app:<owner>/<name>`).
/// The store announces on it; [`Changes`] listens.
pub const CHANGES_CHANNEL: &str = "fal_changes";

/// One announced change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A key changed (revoked): drop its cached record.
    Key(KeyId),
    /// An app was added or removed: drop its cached lookup.
    App {
        /// Namespace.
        owner: String,
        /// Name.
        name: String,
    },
    /// A request was queued for `owner/name`: a worker may claim it.
    Queued {
        /// The app's owner.
        owner: String,
        /// The app's name.
        name: String,
    },
}

/// Parses a notification payload; `None` for payloads from a newer server.
pub fn parse_payload(payload: &str) -> Option<Change> {
    if let Some(id) = payload.strip_prefix("key:") {
        return id.parse().ok().map(Change::Key);
    }
    if let Some((owner, name)) = payload
        .strip_prefix("queue:")
        .and_then(|p| p.split_once('/'))
    {
        return Some(Change::Queued {
            owner: owner.to_owned(),
            name: name.to_owned(),
        });
    }
    let (owner, name) = payload.strip_prefix("app:")?.split_once('/')?;
    Some(Change::App {
        owner: owner.to_owned(),
        name: name.to_owned(),
    })
}

/// A subscription to the changes channel, on its own connection.
pub struct Changes {
    /// sqlx's listener: reconnects by itself on the next receive.
    listener: PgListener,
}

impl Changes {
    /// Connects and listens.
    pub async fn connect(url: &str) -> Result<Changes, StoreError> {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(Changes { listener })
    }

    /// The next change; an error when the connection is lost (notifications
    /// may have been missed: subscribe again, then drop the cache).
    pub async fn next(&mut self) -> Result<Change, StoreError> {
        loop {
            match self.listener.try_recv().await? {
                None => {
                    return Err(StoreError::Unavailable(
                        "the notification connection was lost".into(),
                    ));
                }
                Some(n) => {
                    if let Some(c) = parse_payload(n.payload()) {
                        return Ok(c);
                    }
                    tracing::debug!(payload = n.payload(), "ignoring unknown change");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let id = "4ddeadf1-cfaf-4bfa-901c-a363bd478860";
        assert_eq!(
            parse_payload(&format!("key:{id}")),
            Some(Change::Key(id.parse().unwrap()))
        );
        assert_eq!(
            parse_payload("app:fal-ai/echo"),
            Some(Change::App {
                owner: "fal-ai".into(),
                name: "echo".into()
            })
        );
        assert_eq!(
            parse_payload("queue:fal-ai/echo"),
            Some(Change::Queued {
                owner: "fal-ai".into(),
                name: "echo".into()
            })
        );
        assert_eq!(parse_payload("key:nope"), None);
        assert_eq!(parse_payload("other"), None);
    }
}
