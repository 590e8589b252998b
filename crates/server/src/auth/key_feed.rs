//! Follows the key change log ([`fal_store::KeyLookup::key_changes_after`])
//! so that the [`Verifier`]'s cache stays current with one cheap query per
//! interval, whatever the number of cached keys: every change read drops
//! that key's cached record, and a round that read the log to its end
//! tells the verifier that its whole cache is current as of the round's
//! start (see [`Verifier::note_feed_current`]). On PostgreSQL the change
//! notifications stay the fast path; this is what bounds staleness when
//! one is missed, and what other processes' changes reach a SQLite server
//! through. It also keeps the verifier's set of untagged key ids
//! ([`super::legacy_ids`]) complete, so that made-up ids are refused
//! without reading storage.

use std::sync::Arc;
use std::time::Duration;

use fal_core::{Clock, Timestamp};
use fal_store::{KeyChange, KeyLookup, StoreError};

use super::verifier::Verifier;

/// Changes read per query.
const PAGE: u32 = 1_000;
/// Records read per query when the feed starts.
const RECORDS_PAGE: u32 = 10_000;

/// Where the feed stands: every change up to `cursor` has been applied; a
/// gap just after it (a number not seen) is waited for until `gap_since`
/// plus the grace period, in case its transaction commits late, then
/// skipped (it rolled back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The highest change number up to which nothing is missing.
    pub seq: i64,
    /// Since when the change after `seq` has been missing, if it is.
    pub gap_since: Option<Timestamp>,
}

/// Moves `cursor` past the contiguous run of `seen` change numbers (sorted)
/// that follows it. At a gap it stays, until the gap is older than `grace`:
/// then it moves on past it. Pure, so that the rule is tested alone.
pub fn advance(cursor: Cursor, seen: &[i64], now: Timestamp, grace: Duration) -> Cursor {
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let mut seq = cursor.seq;
    let mut gap_since = cursor.gap_since;
    for &s in seen.iter().filter(|&&s| s > cursor.seq) {
        if s == seq + 1 {
            seq = s;
            gap_since = None;
            continue;
        }
        let since = *gap_since.get_or_insert(now);
        if now.millis().saturating_sub(since.millis()) < grace_ms {
            break;
        }
        // Waited long enough: the missing numbers rolled back.
        seq = s;
        gap_since = None;
    }
    Cursor { seq, gap_since }
}

/// The follower of one server.
pub struct KeyFeed {
    /// Where the log is read from.
    lookup: Arc<dyn KeyLookup>,
    /// Told of every change, and of each round read to the end.
    verifier: Arc<Verifier>,
    /// Now.
    clock: Arc<dyn Clock>,
    /// How long a gap in the change numbers is waited for.
    grace: Duration,
    /// Where the feed stands.
    cursor: Cursor,
}

impl KeyFeed {
    /// A feed for `verifier`'s cache that starts after the newest change
    /// now logged. Whatever the cache held before is dropped, since changes
    /// made before this start are never read; then every key record is
    /// read once (in pages), to fill the cache while it has room and list
    /// the untagged ids.
    pub async fn start(verifier: Arc<Verifier>, grace: Duration) -> Result<KeyFeed, StoreError> {
        let lookup = verifier.lookup().clone();
        let clock = verifier.clock().clone();
        let seq = lookup.last_key_change().await?;
        verifier.invalidate_all();
        // Every untagged id in storage now (later ones come with changes),
        // and every record into the cache while it has room.
        let mut after = None;
        loop {
            let page = lookup
                .key_records_after(after.as_ref(), RECORDS_PAGE)
                .await?;
            let hasher = verifier.hasher();
            let untagged = page
                .iter()
                .map(|r| r.key_id)
                .filter(|id| !hasher.minted_here(id));
            verifier.legacy().add(untagged.collect::<Vec<_>>(), false);
            let next = match page.last() {
                Some(last) if page.len() == RECORDS_PAGE as usize => Some(last.key_id),
                _ => None,
            };
            verifier.preload(page);
            match next {
                Some(id) => after = Some(id),
                None => break,
            }
        }
        verifier.legacy().add([], true);
        Ok(KeyFeed {
            lookup,
            verifier,
            clock,
            grace,
            cursor: Cursor {
                seq,
                gap_since: None,
            },
        })
    }

    /// One round: reads every change after the cursor, drops each key's
    /// cached record, moves the cursor, and (when the log was read to its
    /// end) tells the verifier its cache is current as of the round's start.
    pub async fn poll(&mut self) -> Result<(), StoreError> {
        let started = self.clock.now();
        let mut from = self.cursor.seq;
        loop {
            let page: Vec<KeyChange> = self.lookup.key_changes_after(from, PAGE).await?;
            let hasher = self.verifier.hasher();
            for change in &page {
                self.verifier.invalidate(&change.key_id);
            }
            let untagged = page
                .iter()
                .map(|c| c.key_id)
                .filter(|id| !hasher.minted_here(id));
            self.verifier
                .legacy()
                .add(untagged.collect::<Vec<_>>(), false);
            let seen: Vec<i64> = page.iter().map(|c| c.seq).collect();
            self.cursor = advance(self.cursor, &seen, self.clock.now(), self.grace);
            match page.last() {
                Some(last) if page.len() == PAGE as usize => from = last.seq,
                _ => break,
            }
        }
        self.verifier.note_feed_current(started);
        Ok(())
    }

    /// Where the feed stands.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(100);

    fn at(seq: i64, gap_since: Option<i64>) -> Cursor {
        Cursor {
            seq,
            gap_since: gap_since.map(Timestamp),
        }
    }

    #[test]
    fn the_cursor_follows_contiguous_changes() {
        assert_eq!(
            advance(at(0, None), &[1, 2, 3], Timestamp(0), GRACE),
            at(3, None)
        );
        assert_eq!(advance(at(3, None), &[], Timestamp(0), GRACE), at(3, None));
        // Numbers at or below the cursor change nothing.
        assert_eq!(
            advance(at(3, None), &[2, 3, 4], Timestamp(0), GRACE),
            at(4, None)
        );
    }

    #[test]
    fn a_gap_is_waited_for_then_skipped() {
        // 2 is missing: the cursor waits at 1.
        let c = advance(at(0, None), &[1, 3, 4], Timestamp(1_000), GRACE);
        assert_eq!(c, at(1, Some(1_000)));
        // 2 commits late and is seen: the cursor moves on past 4.
        assert_eq!(advance(c, &[2, 3, 4], Timestamp(1_050), GRACE), at(4, None));
        // 2 never comes: after the grace period it is skipped.
        assert_eq!(advance(c, &[3, 4], Timestamp(1_050), GRACE), c);
        assert_eq!(advance(c, &[3, 4], Timestamp(1_100), GRACE), at(4, None));
    }
}
