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
        let record = self.lookup.key_record(key_id).await?;
        if let Some(r) = &record {
            self.cache
                .insert(r.key_id, Arc::new(Cached::new(r.clone(), now)));
        }
        Ok(record)
    }
}
