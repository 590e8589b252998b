//! The record types of key management: a key to store, a key as listed,
//! pages of them, change log entries, and what a roll did.

use fal_core::{KeyId, KeyRecord, RateLimit, Scope, Span, Timestamp};

/// A key as listed to its owner: never a secret or a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    /// The key's id.
    pub key_id: KeyId,
    /// The owner's label for it.
    pub alias: String,
    /// What it may do.
    pub scope: Scope,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last authenticated a request (flushed periodically).
    pub last_used_at: Option<Timestamp>,
    /// Calls allowed per window, when limited.
    pub rate_limit: Option<RateLimit>,
    /// When it stops working, if it does.
    pub expires_at: Option<Timestamp>,
    /// The lifetime it was made with (`30d`), which a roll gives again.
    pub lifetime: Option<Span>,
    /// The key that replaced it, once rolled.
    pub rolled_to: Option<KeyId>,
}

/// One entry of the key change log ([`crate::KeyLookup::key_changes_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyChange {
    /// Its number: increasing, with gaps where a transaction rolled back
    /// (on PostgreSQL also, briefly, where one has not committed yet).
    pub seq: i64,
    /// The key that changed: read its record again.
    pub key_id: KeyId,
}

/// A key to store. The secret itself never reaches storage, only its hash.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The full record, hash included.
    pub record: KeyRecord,
    /// The owner's label.
    pub alias: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// The lifetime it is made with, if any (its `record.expires_at` is
    /// then `created_at` plus this).
    pub lifetime: Option<Span>,
}

/// Where a listing continues: the last key of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Creation time of the last key shown.
    pub created_at: Timestamp,
    /// Id of the last key shown (breaks ties within one millisecond).
    pub key_id: KeyId,
}

impl Cursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at.millis(), self.key_id)
    }

    /// Reads the text form; `None` when it was not produced by [`Cursor::encode`].
    pub fn decode(s: &str) -> Option<Cursor> {
        let (ms, id) = s.split_once('.')?;
        Some(Cursor {
            created_at: Timestamp(ms.parse().ok()?),
            key_id: id.parse().ok()?,
        })
    }
}

/// One page of a user's keys, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys on this page.
    pub keys: Vec<KeySummary>,
    /// Where the next page starts, when there is one.
    pub next_cursor: Option<Cursor>,
}

/// What [`crate::KeyAdmin::roll_key`] did.
#[derive(Debug, Clone)]
pub enum RollOutcome {
    /// Rolled: the new key as stored, and when the old pair stops working.
    Rolled {
        /// The new key.
        new: NewKey,
        /// The end of the old pair's grace.
        old_until: Timestamp,
    },
    /// The user has no such key.
    NotFound,
    /// The key is revoked.
    Revoked,
    /// The key expired at this instant.
    Expired(Timestamp),
    /// The key was already rolled, to this key (roll that one instead).
    AlreadyRolled(KeyId),
}
