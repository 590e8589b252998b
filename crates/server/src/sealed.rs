//! Secrets the server must keep at rest and read back (today: a CLI
//! session's GitHub token, so a refresh can re-check the allow-lists and
//! org membership): sealed with ChaCha20-Poly1305 (ring) under a key derived
//! from the pepper, with a random 96-bit nonce, and bound to the row they
//! belong to by the associated data. A database dump without the pepper
//! reveals nothing; a sealed value moved to another session does not open.

use fal_core::{RandomSource, SecretHasher};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use secrecy::{ExposeSecret, SecretString};

/// Version tag of the stored form: `v1.` + hex(nonce ‖ ciphertext ‖ tag).
const V1: &str = "v1.";

/// Seals and opens values with a key derived from the pepper.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([REDACTED])")
    }
}

/// Sealing failed (no randomness) or a sealed value did not open.
#[derive(Debug, thiserror::Error)]
#[error("sealed value could not be made or opened")]
pub struct SealError;

impl Sealer {
    /// A sealer whose key is derived from the pepper under `label`.
    pub fn new(hasher: &SecretHasher, label: &str) -> Sealer {
        let raw = hasher.derive_key(label);
        // A 32-byte key is what ChaCha20-Poly1305 takes: this cannot fail.
        let key = match UnboundKey::new(&CHACHA20_POLY1305, &raw) {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => unreachable!("ChaCha20-Poly1305 takes 32-byte keys"),
        };
        Sealer { key }
    }

    /// Seals `secret`, bound to `context` (e.g. the session id).
    pub fn seal(
        &self,
        secret: &SecretString,
        context: &str,
        rng: &dyn RandomSource,
    ) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| SealError)?;
        let mut buf = secret.expose_secret().as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{V1}{}", hex::encode(out)))
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<SecretString, SealError> {
        let bytes = sealed
            .strip_prefix(V1)
            .and_then(|h| hex::decode(h).ok())
            .ok_or(SealError)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| SealError)?;
        Ok(SecretString::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fal_core::{OsRandom, Pepper};

    fn sealer() -> Sealer {
        Sealer::new(
            &SecretHasher::new(&Pepper::generate(&OsRandom).unwrap()),
            "test",
        )
    }

    #[test]
    fn sealed_values_open_only_in_their_context_and_under_their_pepper() {
        let s = sealer();
        let secret = SecretString::from("gho_secret".to_owned());
        let sealed = s.seal(&secret, "session-1", &OsRandom).unwrap();
        assert!(!sealed.contains("gho_secret"));
        assert_eq!(
            s.open(&sealed, "session-1").unwrap().expose_secret(),
            "gho_secret"
        );
        assert!(s.open(&sealed, "session-2").is_err());
        assert!(sealer().open(&sealed, "session-1").is_err());
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        assert!(
            s.open(&String::from_utf8(tampered).unwrap(), "session-1")
                .is_err()
        );
        assert!(s.open("v1.zz", "session-1").is_err());
        assert!(s.open("", "session-1").is_err());
        // A fresh nonce each time.
        assert_ne!(sealed, s.seal(&secret, "session-1", &OsRandom).unwrap());
    }
}
