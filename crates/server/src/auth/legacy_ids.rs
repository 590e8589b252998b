//! Key ids minted before ids carried a tag (see
//! [`fal_core::SecretHasher::mint_key_id`]), or by a server without the
//! tag: the only ids without a valid tag that may exist. With them known,
//! the verifier refuses a made-up id (no valid tag, not among these)
//! without reading storage. Filled from storage when the key change feed
//! starts and kept current by it; until then every id may exist.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use fal_core::KeyId;

/// The untagged ids that exist (or existed: revoked ones stay). Held as a
/// sorted array (16 bytes an id: a million old ids take 16 MB, where a hash
/// set took twice that), looked up only when an id is not cached, plus a
/// small set for the rare ones added later.
#[derive(Default)]
pub struct LegacyIds {
    /// Whether the set has been filled from storage.
    loaded: AtomicBool,
    /// The ids.
    ids: RwLock<Ids>,
}

/// The ids, sorted in bulk and added one by one.
#[derive(Default)]
struct Ids {
    /// Filled before `loaded`, sorted then.
    sorted: Vec<KeyId>,
    /// Added since.
    added: HashSet<KeyId>,
}

impl LegacyIds {
    /// Whether an untagged `key_id` may exist: it is known, or the set has
    /// not been filled yet.
    pub fn may_exist(&self, key_id: &KeyId) -> bool {
        if !self.loaded.load(Ordering::Acquire) {
            return true;
        }
        let ids = self.ids.read().unwrap_or_else(|p| p.into_inner());
        ids.sorted.binary_search(key_id).is_ok() || ids.added.contains(key_id)
    }

    /// Adds ids; with `complete`, says the set now holds every untagged id
    /// in storage.
    pub fn add(&self, ids: impl IntoIterator<Item = KeyId>, complete: bool) {
        let mut held = self.ids.write().unwrap_or_else(|p| p.into_inner());
        if self.loaded.load(Ordering::Acquire) {
            held.added.extend(ids);
            return;
        }
        held.sorted.extend(ids);
        if complete {
            held.sorted.sort_unstable();
            held.sorted.dedup();
            held.sorted.shrink_to_fit();
            self.loaded.store(true, Ordering::Release);
        }
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        let ids = self.ids.read().unwrap_or_else(|p| p.into_inner());
        ids.sorted.len() + ids.added.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_may_exist_until_the_set_is_complete() {
        let set = LegacyIds::default();
        let (a, b) = (KeyId::from_bytes([1; 16]), KeyId::from_bytes([2; 16]));
        assert!(set.may_exist(&a) && set.may_exist(&b));
        set.add([a], false);
        assert!(set.may_exist(&b), "not complete yet");
        set.add([], true);
        assert!(set.may_exist(&a));
        assert!(!set.may_exist(&b));
        set.add([b], false);
        assert!(set.may_exist(&b));
        assert_eq!(set.len(), 2);
    }
}
