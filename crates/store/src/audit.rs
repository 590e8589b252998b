//! [`AuditStore`]: the audit log, appended to and read newest first, and
//! pruned after retention. There is no other way to change or remove an
//! event (the database refuses an `UPDATE` of one too). Portable SQL, as
//! in [`crate::sql`].

use async_trait::async_trait;
use fal_core::{AuditActor, AuditEvent, AuditKind, KeyId, Timestamp, UserAgent, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::corrupt;
use crate::{SqlStore, StoreError};

/// Which events a listing shows (all of the user's when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events of this kind.
    pub kind: Option<AuditKind>,
    /// Only events about this key, or done with it.
    pub key_id: Option<KeyId>,
}

/// Where a listing continues: the last event of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    /// Its time.
    pub at: Timestamp,
    /// Its number (breaks ties within one millisecond).
    pub seq: i64,
}

impl AuditCursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.millis(), self.seq)
    }

    /// Reads the text form; `None` when not made by [`AuditCursor::encode`].
    pub fn decode(s: &str) -> Option<AuditCursor> {
        let (ms, seq) = s.split_once('.')?;
        Some(AuditCursor {
            at: Timestamp(ms.parse().ok()?),
            seq: seq.parse().ok()?,
        })
    }
}

/// An event as stored, with its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEvent {
    /// Its number, increasing.
    pub seq: i64,
    /// The event.
    pub event: AuditEvent,
}

/// One page of a user's events, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The events on this page.
    pub events: Vec<StoredAuditEvent>,
    /// Where the next page starts, when there is one.
    pub next_cursor: Option<AuditCursor>,
}

/// The audit log: append, read, prune; nothing else.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// A page of `user_id`'s events matching `filter`, newest first.
    async fn list_audit(
        &self,
        user_id: &UserId,
        filter: &AuditFilter,
        limit: u32,
        after: Option<&AuditCursor>,
    ) -> Result<AuditPage, StoreError>;
    /// Deletes events older than `before` (retention); returns how many.
    async fn prune_audit(&self, before: Timestamp) -> Result<u64, StoreError>;
}

const COLUMNS: &str = "at, kind, user_id, actor_user_id, actor_key_id, actor_session_id, \
                       source, user_agent, key_id, app, detail";

fn key_of(row: &AnyRow, col: &str) -> Result<Option<KeyId>, StoreError> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| {
        t.parse()
            .map_err(|_| corrupt(&format!("audit_events.{col}")))
    })
    .transpose()
}

fn event_of(row: &AnyRow) -> Result<StoredAuditEvent, StoreError> {
    let kind: String = row.try_get("kind")?;
    let source: Option<String> = row.try_get("source")?;
    let detail: String = row.try_get("detail")?;
    let user = |col: &str| -> Result<Option<UserId>, StoreError> {
        Ok(row
            .try_get::<Option<String>, _>(col)?
            .map(UserId::from_stored))
    };
    let event = AuditEvent {
        at: Timestamp(row.try_get("at")?),
        kind: kind.parse().map_err(|_| corrupt("audit_events.kind"))?,
        user_id: user("user_id")?,
        actor: AuditActor {
            user_id: user("actor_user_id")?,
            key_id: key_of(row, "actor_key_id")?,
            session_id: row.try_get("actor_session_id")?,
        },
        source: source
            .map(|s| s.parse().map_err(|_| corrupt("audit_events.source")))
            .transpose()?,
        user_agent: row
            .try_get::<Option<String>, _>("user_agent")?
            .and_then(|u| UserAgent::new(&u)),
        key_id: key_of(row, "key_id")?,
        app: row.try_get("app")?,
        detail: serde_json::from_str(&detail).map_err(|_| corrupt("audit_events.detail"))?,
    };
    Ok(StoredAuditEvent {
        seq: row.try_get("seq")?,
        event,
    })
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, e: &AuditEvent) -> Result<(), StoreError> {
        let detail = serde_json::Value::Object(e.detail.clone()).to_string();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit_events ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )))
        .bind(e.at.millis())
        .bind(e.kind.as_str())
        .bind(e.user_id.as_ref().map(|u| u.as_str().to_owned()))
        .bind(e.actor.user_id.as_ref().map(|u| u.as_str().to_owned()))
        .bind(e.actor.key_id.map(|k| k.to_string()))
        .bind(e.actor.session_id.clone())
        .bind(e.source.map(|s| s.to_string()))
        .bind(e.user_agent.as_ref().map(|u| u.as_str().to_owned()))
        .bind(e.key_id.map(|k| k.to_string()))
        .bind(e.app.clone())
        .bind(detail)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        user_id: &UserId,
        filter: &AuditFilter,
        limit: u32,
        after: Option<&AuditCursor>,
    ) -> Result<AuditPage, StoreError> {
        // Conditions only for what is asked, numbered in order.
        let mut sql = format!("SELECT seq, {COLUMNS} FROM audit_events WHERE user_id = $1");
        let mut n = 1;
        if after.is_some() {
            sql.push_str(&format!(
                " AND (at < ${} OR (at = ${} AND seq < ${}))",
                n + 1,
                n + 1,
                n + 2
            ));
            n += 2;
        }
        if filter.kind.is_some() {
            n += 1;
            sql.push_str(&format!(" AND kind = ${n}"));
        }
        if filter.key_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND (key_id = ${n} OR actor_key_id = ${n})"));
        }
        n += 1;
        sql.push_str(&format!(" ORDER BY at DESC, seq DESC LIMIT ${n}"));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user_id.as_str().to_owned());
        if let Some(c) = after {
            q = q.bind(c.at.millis()).bind(c.seq);
        }
        if let Some(k) = filter.kind {
            q = q.bind(k.as_str());
        }
        if let Some(k) = filter.key_id {
            q = q.bind(k.to_string());
        }
        // One more than the page, to know whether another follows.
        let rows = q.bind(i64::from(limit) + 1).fetch_all(self.pool()).await?;
        let mut events = rows.iter().map(event_of).collect::<Result<Vec<_>, _>>()?;
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        let next_cursor = more.then(|| events.last()).flatten().map(|e| AuditCursor {
            at: e.event.at,
            seq: e.seq,
        });
        Ok(AuditPage {
            events,
            next_cursor,
        })
    }

    async fn prune_audit(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(before.millis())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
