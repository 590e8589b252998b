//! Where credentials come from. First found wins:
//! 1. an explicit value (the CLI's `--key`), `<key_id>:<key_secret>`;
//! 2. `FAL_KEY`, `<key_id>:<key_secret>`, split at the first colon;
//! 3. `FAL_KEY_ID` together with `FAL_KEY_SECRET`.

use std::fmt;

use secrecy::SecretString;

/// A key pair to authenticate with. `Debug` never shows the secret.
#[derive(Clone)]
pub struct KeyCredentials {
    /// The key id.
    pub key_id: String,
    /// The key secret.
    pub secret: SecretString,
    /// Where it came from, for `whoami` and error messages.
    pub source: CredentialSource,
}

impl fmt::Debug for KeyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCredentials")
            .field("key_id", &self.key_id)
            .field("secret", &"[REDACTED]")
            .field("source", &self.source)
            .finish()
    }
}

/// Where a key pair was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `--key`.
    Flag,
    /// `FAL_KEY`.
    FalKey,
    /// `FAL_KEY_ID` + `FAL_KEY_SECRET`.
    KeyPair,
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialSource::Flag => "--key",
            CredentialSource::FalKey => "FAL_KEY",
            CredentialSource::KeyPair => "FAL_KEY_ID/FAL_KEY_SECRET",
        })
    }
}

/// Credentials are missing or malformed. The messages never repeat a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Nothing found anywhere.
    #[error(
        "no credentials found: set FAL_KEY_ID and FAL_KEY_SECRET (or FAL_KEY='<key_id>:<key_secret>'), pass --key, \
         or run `fal auth login` to sign in with GitHub. An ADMIN key can make more with `fal key generate`; \
         the first `fal serve` prints one, and `fal admin recover-key` makes a new one on the server's machine"
    )]
    Missing,
    /// A `<key_id>:<key_secret>` value without the colon (or with an empty half).
    #[error("{0} must be '<key_id>:<key_secret>' (the key id, a colon, then the secret)")]
    NotAPair(&'static str),
    /// Only one of `FAL_KEY_ID` / `FAL_KEY_SECRET`.
    #[error(
        "{present} is set but {missing} is not: set both, or use FAL_KEY='<key_id>:<key_secret>'"
    )]
    HalfPair {
        /// The one that is set.
        present: &'static str,
        /// The one that is not.
        missing: &'static str,
    },
}

fn split_pair(
    value: &str,
    name: &'static str,
    source: CredentialSource,
) -> Result<KeyCredentials, CredentialError> {
    match value.trim().split_once(':') {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(KeyCredentials {
            key_id: id.to_owned(),
            secret: SecretString::from(secret.to_owned()),
            source,
        }),
        _ => Err(CredentialError::NotAPair(name)),
    }
}

/// Resolves credentials from an explicit value and the environment (`env`
/// reads one variable; empty values count as unset).
pub fn resolve(
    explicit: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<KeyCredentials>, CredentialError> {
    let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(v) = explicit {
        return split_pair(v, "--key", CredentialSource::Flag).map(Some);
    }
    if let Some(v) = get("FAL_KEY") {
        return split_pair(&v, "FAL_KEY", CredentialSource::FalKey).map(Some);
    }
    match (get("FAL_KEY_ID"), get("FAL_KEY_SECRET")) {
        (Some(id), Some(secret)) => Ok(Some(KeyCredentials {
            key_id: id.trim().to_owned(),
            secret: SecretString::from(secret.trim().to_owned()),
            source: CredentialSource::KeyPair,
        })),
        (Some(_), None) => Err(CredentialError::HalfPair {
            present: "FAL_KEY_ID",
            missing: "FAL_KEY_SECRET",
        }),
        (None, Some(_)) => Err(CredentialError::HalfPair {
            present: "FAL_KEY_SECRET",
            missing: "FAL_KEY_ID",
        }),
        (None, None) => Ok(None),
    }
}

/// [`resolve`] over the process environment.
pub fn from_env(explicit: Option<&str>) -> Result<Option<KeyCredentials>, CredentialError> {
    resolve(explicit, |name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn first_found_wins() {
        let all = env(&[
            ("FAL_KEY", "b:2"),
            ("FAL_KEY_ID", "c"),
            ("FAL_KEY_SECRET", "3"),
        ]);
        let c = resolve(Some("a:1"), &all).unwrap().unwrap();
        assert_eq!((c.key_id.as_str(), c.source), ("a", CredentialSource::Flag));
        let c = resolve(None, &all).unwrap().unwrap();
        assert_eq!(
            (c.key_id.as_str(), c.source),
            ("b", CredentialSource::FalKey)
        );
        let c = resolve(None, env(&[("FAL_KEY_ID", "c"), ("FAL_KEY_SECRET", "3")]))
            .unwrap()
            .unwrap();
        assert_eq!(c.secret.expose_secret(), "3");
        assert!(resolve(None, env(&[])).unwrap().is_none());
    }

    #[test]
    fn fal_key_splits_at_the_first_colon() {
        let c = resolve(None, env(&[("FAL_KEY", "id:se:cret")]))
            .unwrap()
            .unwrap();
        assert_eq!(c.key_id, "id");
        assert_eq!(c.secret.expose_secret(), "se:cret");
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let e = resolve(None, env(&[("FAL_KEY", "nocolon")])).unwrap_err();
        assert!(e.to_string().contains("FAL_KEY must be"));
        let e = resolve(None, env(&[("FAL_KEY_ID", "x")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("FAL_KEY_ID is set but FAL_KEY_SECRET is not")
        );
        let e = resolve(None, env(&[("FAL_KEY_SECRET", "x")])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("FAL_KEY_SECRET is set but FAL_KEY_ID is not")
        );
        assert!(
            !format!("{:?}", resolve(Some("id:topsecret"), env(&[])).unwrap())
                .contains("topsecret")
        );
    }
}
