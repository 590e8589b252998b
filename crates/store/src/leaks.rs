//! [`LeakedKeys`] for [`SqlStore`]: finding the keys a leaked secret opens,
//! by the secret's keyed hash (index `api_keys_by_secret_hash`, migration
//! 14). Portable SQL, as in [`crate::sql`].

use async_trait::async_trait;
use fal_core::{KeyRecord, SecretHash};

use crate::keys::{RECORD_COLUMNS, record_of};
use crate::{SqlStore, StoreError};

/// Finding keys by their secret, for revoking a secret reported as leaked
/// (GitHub's secret scanning). Not bound to a user: the server asks only
/// for a report whose signature it has checked, and only with the keyed
/// hash of a well-formed secret, so only the holder of a real secret (or
/// the scanning service that found it) can name a key this way.
#[async_trait]
pub trait LeakedKeys: Send + Sync {
    /// Every key whose secret hashes to `hash`, revoked or not, in key id
    /// order (at most a few: a secret carries 256 random bits, so two keys
    /// share one only if it was stored twice).
    async fn keys_with_secret_hash(&self, hash: &SecretHash) -> Result<Vec<KeyRecord>, StoreError>;
}

#[async_trait]
impl LeakedKeys for SqlStore {
    async fn keys_with_secret_hash(&self, hash: &SecretHash) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM api_keys WHERE secret_hash = $1 ORDER BY key_id LIMIT 16"
        )))
        .bind(hash.to_hex())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record_of).collect()
    }
}
