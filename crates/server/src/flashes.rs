//! One-time links to newly created secrets.

use std::collections::HashMap;
use std::sync::Mutex;

use fal_core::Timestamp;
use secrecy::SecretString;

/// Where the one-time links live; the id after it is a bearer capability.
const CREATED_PREFIX: &str = "/dashboard/keys/created/";

/// How long a one-time secret link stays valid.
const FLASH_TTL_MS: i64 = 5 * 60 * 1000;

/// Secrets created in this process, shown once through `/dashboard/keys/created/{id}`.
#[derive(Default)]
pub struct Flashes {
    /// flash id → (session id, key id, secret, when).
    inner: Mutex<HashMap<String, (String, String, SecretString, Timestamp)>>,
}

impl Flashes {
    pub(super) fn put(
        &self,
        id: String,
        session: String,
        key_id: String,
        secret: SecretString,
        now: Timestamp,
    ) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, v| now.millis() - v.3.millis() < FLASH_TTL_MS);
        m.insert(id, (session, key_id, secret, now));
    }

    pub(super) fn take(
        &self,
        id: &str,
        session: &str,
        now: Timestamp,
    ) -> Option<(String, SecretString)> {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(id) {
            Some(v) if v.0 == session && now.millis() - v.3.millis() < FLASH_TTL_MS => {
                m.remove(id).map(|v| (v.1, v.2))
            }
            _ => None,
        }
    }
}

/// `path` as it may be logged: a one-time link's id is replaced by `…`
/// (whoever reads the log before the owner opens the link could open it
/// with a stolen session cookie).
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix(CREATED_PREFIX) {
        Some(id) if !id.is_empty() => format!("{CREATED_PREFIX}…").into(),
        _ => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn one_time_ids_are_not_logged() {
        assert_eq!(
            loggable_path("/dashboard/keys/created/abc.def"),
            "/dashboard/keys/created/…"
        );
        assert_eq!(loggable_path("/dashboard/keys"), "/dashboard/keys");
        assert_eq!(loggable_path("/run/a/b"), "/run/a/b");
    }
}
