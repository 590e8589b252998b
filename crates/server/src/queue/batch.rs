//! Group commit: writes asked for while one is under way go together in
//! the next one. On SQLite every commit is a write turn (and, synced, a
//! sync to disk), so one per request would bound the requests per second;
//! batched, a busy queue pays one commit for many. Nobody waits for a
//! batch to fill: a write asked for when none is under way starts at once.

use std::future::Future;
use std::sync::{Arc, Mutex};

use fal_store::StoreError;
use tokio::sync::oneshot;

/// One item and who to tell its outcome.
type Waiting<T, R> = (T, oneshot::Sender<Result<R, StoreError>>);

/// Batches items of type `T` into commits whose outcome per item is `R`.
pub struct GroupCommit<T, R> {
    pending: Mutex<Vec<Waiting<T, R>>>,
    /// Held by the one commit under way.
    committing: Arc<tokio::sync::Mutex<()>>,
}

impl<T: Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    /// No commit under way.
    pub fn new() -> GroupCommit<T, R> {
        GroupCommit {
            pending: Mutex::new(Vec::new()),
            committing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Commits `item` with whatever else is pending, by `commit` (which
    /// gets the items in the order asked and answers one outcome each, in
    /// that order, or one error for all). The commit runs in a task of its
    /// own, so a caller that goes away cannot cut it short for the others.
    pub async fn commit<F, Fut>(&self, item: T, commit: F) -> Result<R, StoreError>
    where
        F: FnOnce(Vec<T>) -> Fut,
        Fut: Future<Output = Result<Vec<R>, StoreError>> + Send + 'static,
    {
        let (tx, mut rx) = oneshot::channel();
        self.pending_list().push((item, tx));
        let turn = self.committing.clone().lock_owned().await;
        // The commit that held the lock may have carried this item; if
        // not, it is still pending, and goes in this one.
        if let Ok(outcome) = rx.try_recv() {
            drop(turn);
            return outcome;
        }
        let batch = std::mem::take(&mut *self.pending_list());
        let (items, waiters): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
        let written = commit(items);
        tokio::spawn(async move {
            match written.await {
                Ok(outcomes) if outcomes.len() == waiters.len() => {
                    for (w, o) in waiters.into_iter().zip(outcomes) {
                        let _ = w.send(Ok(o));
                    }
                }
                Ok(_) => {
                    let e = StoreError::Other("a batch answered for another count".into());
                    for w in waiters {
                        let _ = w.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for w in waiters {
                        let _ = w.send(Err(e.clone()));
                    }
                }
            }
            drop(turn);
        });
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Other("the commit was lost".into())))
    }

    fn pending_list(&self) -> std::sync::MutexGuard<'_, Vec<Waiting<T, R>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Send + 'static, R: Send + 'static> Default for GroupCommit<T, R> {
    fn default() -> Self {
        GroupCommit::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn items_asked_for_during_a_commit_go_together_in_the_next() {
        let group = Arc::new(GroupCommit::<u32, u32>::new());
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        // The first commit is held until the others are pending.
        let first = {
            let (group, sizes, gate) = (group.clone(), sizes.clone(), gate.clone());
            tokio::spawn(async move {
                group
                    .commit(0, move |items| async move {
                        sizes.lock().unwrap().push(items.len());
                        let _ = gate.acquire().await;
                        Ok(items.iter().map(|i| i * 10).collect())
                    })
                    .await
            })
        };
        while sizes.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (1..=5)
            .map(|i| {
                let (group, sizes) = (group.clone(), sizes.clone());
                tokio::spawn(async move {
                    group
                        .commit(i, move |items| async move {
                            sizes.lock().unwrap().push(items.len());
                            Ok(items.iter().map(|i| i * 10).collect())
                        })
                        .await
                })
            })
            .collect();
        while group.pending_list().len() < 5 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        assert_eq!(first.await.unwrap().unwrap(), 0);
        for (i, t) in rest.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), (i as u32 + 1) * 10);
        }
        assert_eq!(*sizes.lock().unwrap(), [1, 5], "one commit for the five");
    }

    #[tokio::test]
    async fn an_error_reaches_every_item_of_its_batch() {
        let group = GroupCommit::<u32, u32>::new();
        let e = group
            .commit(1, |_| async { Err(StoreError::Other("disk full".into())) })
            .await;
        assert!(matches!(e, Err(StoreError::Other(m)) if m == "disk full"));
        let short = group.commit(2, |_| async { Ok(vec![]) }).await;
        assert!(short.is_err(), "an outcome missing is an error, not a hang");
    }
}
