//! SQLite: copying the WAL into the database file, and keeping the WAL from
//! growing without end.
//!
//! The queue's connection never checkpoints (see `queue_conn::open_sqlite`);
//! the server calls [`SqlStore::checkpoint`] every second. A PASSIVE
//! checkpoint copies what it can without holding up writers, and a writer
//! starts the WAL again from its beginning only if it finds the whole WAL
//! copied. Under a steady stream of submits that never happens: each
//! checkpoint takes milliseconds to a tenth of a second (it syncs both
//! files), and new commits arrive meanwhile. In `bench/queue.sh` the WAL
//! grew by 4 MB a second on one machine and by up to 160 MB a second on
//! another, for as long as the load lasted; every commit also appended to
//! a growing file rather than overwriting blocks it had.
//!
//! So once the WAL holds [`RESTART_WAL_AT`] frames (256 MB) the checkpoint catches
//! up: more PASSIVE passes, each copying what was committed during the one
//! before, until a pass lets in little ([`CATCH_UP_FRAMES`]) or
//! [`CATCH_UP_PASSES`] ran. The rest is copied in the queue's turn, and
//! SQLite then starts the WAL again. The turn is held for the copy and the
//! sync of that rest (4–8 ms at full load in `bench/queue.sh`, with an
//! outlier of 53 ms); writers of the queue wait for it, nobody else. With a
//! 16 MB threshold that was every second, and the submit p99 at 2,000/s
//! went from about 3.6 to 4.6 ms; at 256 MB it is every few seconds under
//! load and the p99 is as before, while the WAL stays under about 500 MB
//! (it reached 2.5 GB in one run of the benchmark before).

use crate::{Backend, SqlStore, StoreError};

/// The WAL's frames (pages) past which a checkpoint makes SQLite start it
/// again: 256 MB of 4 KB pages.
pub const RESTART_WAL_AT: i64 = 65_536;

/// Frames committed during one PASSIVE pass below which the checkpoint
/// stops catching up and copies the rest in the queue's turn.
const CATCH_UP_FRAMES: i64 = 512;

/// PASSIVE passes at most before the queue's turn, however much is left.
const CATCH_UP_PASSES: usize = 4;

/// What one checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpointed {
    /// Frames in the WAL when the first PASSIVE pass ran.
    pub wal_frames: i64,
    /// PASSIVE passes run.
    pub passes: usize,
    /// Whether the WAL was then copied in full in the queue's turn, so
    /// that the next commit starts it again.
    pub restarted: bool,
    /// How long the queue's writers waited for that.
    pub turn_held: std::time::Duration,
}

impl SqlStore {
    /// SQLite: copies what the WAL holds into the database file without
    /// holding up writers and, once the WAL holds [`RESTART_WAL_AT`]
    /// frames, has it start again (see the module's text). Call it every
    /// second or so. PostgreSQL: nothing.
    pub async fn checkpoint(&self) -> Result<Checkpointed, StoreError> {
        self.checkpoint_restarting_at(RESTART_WAL_AT).await
    }

    /// [`SqlStore::checkpoint`] with another threshold (tests).
    pub async fn checkpoint_restarting_at(
        &self,
        restart_at: i64,
    ) -> Result<Checkpointed, StoreError> {
        if self.backend() != Backend::Sqlite {
            return Ok(Checkpointed::default());
        }
        let (mut frames, mut copied) = self.passive().await?;
        let mut done = Checkpointed {
            wal_frames: frames,
            passes: 1,
            ..Checkpointed::default()
        };
        let Some(conn) = self.sqlite_queue().cloned() else {
            return Ok(done);
        };
        if frames < restart_at {
            return Ok(done);
        }
        // Each pass copies what was committed during the one before; the
        // passes get shorter until what one lets in is little.
        while done.passes < CATCH_UP_PASSES {
            let before = copied;
            (frames, copied) = self.passive().await?;
            done.passes += 1;
            if frames == before && copied == frames {
                // Nothing committed since: the WAL is copied in full, and
                // the next commit starts it again without the turn.
                done.restarted = true;
                return Ok(done);
            }
            if frames - before <= CATCH_UP_FRAMES {
                break;
            }
        }
        // The queue's turn: no transaction of the queue is open, and none
        // begins until the WAL is copied. RESTART copies what the passes
        // could not (what was committed during the last), syncs, and waits
        // for no reader; with no busy handler on this connection it gives
        // up at once (busy) when another connection writes or reads an
        // older snapshot, and the next second tries again.
        let _turn = self.queue_write_turn().await;
        let held = std::time::Instant::now();
        let busy = tokio::task::spawn_blocking(move || {
            crate::queue_conn::lock(&conn)
                .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0))
        })
        .await
        .map_err(|e| StoreError::Other(format!("the checkpoint's thread failed: {e}")))??;
        done.turn_held = held.elapsed();
        done.restarted = busy == 0;
        Ok(done)
    }

    /// One PASSIVE checkpoint on the main pool: the frames in the WAL and
    /// how many of them are now copied.
    async fn passive(&self) -> Result<(i64, i64), StoreError> {
        let (_busy, frames, copied): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(self.pool())
                .await?;
        Ok((frames, copied))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
