//! A key's record as verification sees it, for checks made outside a
//! request's own authentication.

use std::sync::Arc;

use fal_core::{KeyId, KeyRecord};
use fal_store::StoreError;

use super::{Cached, Verifier};

impl Verifier {
    /// The record of `key_id`, revoked or not, as verification sees it
    /// now: the cached one while the staleness bound vouches for it (a
    /// revocation anywhere reaches the cache within that bound, on this
    /// server at once), else storage's, which is then cached. The queue's
    /// workers check a request's key this way before running it, so a busy
    /// queue reads no key from storage per request.
    pub async fn current_record(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let now = self.clock.now();
        if let Some(cached) = self.fresh(key_id, now) {
            return Ok(Some(cached.record.clone()));
        }
        Ok(self.fetch(key_id).await?.map(|c| c.record.clone()))
    }

    /// Reads `key_id`'s record from storage into the cache (what a cache
    /// miss does, for verification and for [`Verifier::current_record`]).
    pub(super) async fn fetch(&self, key_id: &KeyId) -> Result<Option<Arc<Cached>>, StoreError> {
        let record = self.lookup.key_record(key_id).await?;
        let now = self.clock.now();
        Ok(record.map(|r| {
            let entry = Arc::new(Cached::new(r, now));
            self.cache.insert(entry.record.key_id, entry.clone());
            entry
        }))
    }
}
