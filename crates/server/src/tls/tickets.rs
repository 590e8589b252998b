//! Session tickets that every server holding the same key file can read
//! (`--tls-ticket-key-file`), so a client resumes its session on whichever
//! server of a cluster it reaches next, without a full handshake.
//!
//! The file holds 32 random bytes as 64 hex digits (`openssl rand -hex 32`).
//! From them HKDF-SHA256 derives the key's public name (16 bytes, at the
//! head of each ticket, so a server can tell whose ticket it holds) and,
//! for every ticket, an AES-256-GCM key of its own from a random 16-byte
//! salt carried in the ticket. A key used once needs no nonce bookkeeping,
//! so no number of tickets wears the key out.
//!
//! A ticket is `name (16) | salt (16) | issued, seconds since 1970 (8) |
//! sealed session state | tag (16)`; name, salt and issue time are
//! authenticated. A ticket older than [`LIFETIME_SECS`] is refused (rustls
//! itself does not check a ticket's age), as is one issued more than
//! [`CLOCK_SKEW_SECS`] in the future by a server whose clock runs ahead.
//!
//! Rotation: when the file changes, the new key seals new tickets and the
//! previous one still opens tickets it sealed, until the next change.
//!
//! Without a key file each server uses rustls' own ticketer (random keys
//! rotated every 6 hours): every worker of a server reads its tickets, but
//! no other server does.

use std::path::Path;
use std::sync::{Arc, RwLock};

use fal_core::{Clock, RandomSource};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};
use rustls::server::ProducesTickets;
use subtle::ConstantTimeEq;

use super::TlsError;

/// How long a ticket may be used (also what clients are told).
pub const LIFETIME_SECS: u32 = 12 * 60 * 60;
/// How far in the future a ticket's issue time may be (servers' clocks differ).
pub const CLOCK_SKEW_SECS: u64 = 5 * 60;

const NAME_LEN: usize = 16;
const SALT_LEN: usize = 16;
const ISSUED_LEN: usize = 8;
const HEAD_LEN: usize = NAME_LEN + SALT_LEN + ISSUED_LEN;
const TAG_LEN: usize = 16;

/// One ticket key, derived from a key file's 32 bytes.
pub struct TicketKey {
    /// Public: at the head of every ticket it seals.
    name: [u8; NAME_LEN],
    /// Where each ticket's own key comes from.
    prk: Prk,
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TicketKey({})", hex::encode(self.name))
    }
}

/// An HKDF output length.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl TicketKey {
    /// Derives the key from a key file's bytes.
    pub fn from_secret(secret: &[u8; 32]) -> TicketKey {
        let prk = Salt::new(HKDF_SHA256, b"fal session tickets v1").extract(secret);
        let mut name = [0u8; NAME_LEN];
        // Expanding to 16 bytes from SHA-256 cannot fail (the limit is 8160).
        if let Ok(okm) = prk.expand(&[b"ticket key name"], Len(NAME_LEN)) {
            let _ = okm.fill(&mut name);
        }
        TicketKey { name, prk }
    }

    /// Reads a key file: 64 hex digits, surrounding white space allowed.
    /// The error names the file and says what is wrong, never its contents.
    pub fn read(path: &Path) -> Result<TicketKey, TlsError> {
        let err = |cause: String| TlsError::TicketKey {
            path: path.display().to_string(),
            cause,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut secret = [0u8; 32];
        let trimmed = text.trim();
        if trimmed.len() != 64 || hex::decode_to_slice(trimmed, &mut secret).is_err() {
            return Err(err(
                "not 64 hex digits (make one with `openssl rand -hex 32`)".into(),
            ));
        }
        warn_if_readable_by_others(path);
        Ok(TicketKey::from_secret(&secret))
    }

    /// This ticket's own AES-256-GCM key.
    fn sealing_key(&self, salt: &[u8]) -> Option<LessSafeKey> {
        let info = [&b"ticket key"[..], salt];
        let okm = self.prk.expand(&info, &AES_256_GCM).ok()?;
        Some(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the TLS ticket key file can be read by other users: anyone who reads it can \
             decrypt recorded resumed sessions; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// The keys in use: the newest seals, both open.
struct Keys {
    current: TicketKey,
    previous: Option<TicketKey>,
}

/// Seals and opens tickets with a key shared by all servers that read the
/// same key file.
pub struct SharedTickets {
    keys: RwLock<Keys>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn RandomSource>,
}

impl std::fmt::Debug for SharedTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedTickets")
    }
}

impl SharedTickets {
    /// Tickets sealed with `key`, dated by `clock`, salted from `rng`.
    pub fn new(key: TicketKey, clock: Arc<dyn Clock>, rng: Arc<dyn RandomSource>) -> Self {
        SharedTickets {
            keys: RwLock::new(Keys {
                current: key,
                previous: None,
            }),
            clock,
            rng,
        }
    }

    /// Seals new tickets with `key` from now on; the key in use until now
    /// still opens its tickets. Returns false (and changes nothing) when
    /// `key` is already the one in use.
    pub fn rotate(&self, key: TicketKey) -> bool {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.current.name == key.name {
            return false;
        }
        let old = std::mem::replace(&mut keys.current, key);
        keys.previous = Some(old);
        true
    }

    fn now_secs(&self) -> u64 {
        u64::try_from(self.clock.now().millis() / 1000).unwrap_or(0)
    }
}

impl ProducesTickets for SharedTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut salt = [0u8; SALT_LEN];
        self.rng.fill(&mut salt).ok()?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = &keys.current;
        let mut ticket = Vec::with_capacity(HEAD_LEN + plain.len() + TAG_LEN);
        ticket.extend_from_slice(&key.name);
        ticket.extend_from_slice(&salt);
        ticket.extend_from_slice(&self.now_secs().to_be_bytes());
        ticket.extend_from_slice(plain);
        let (head, body) = ticket.split_at_mut(HEAD_LEN);
        let tag = key
            .sealing_key(&salt)?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(&*head),
                body,
            )
            .ok()?;
        ticket.extend_from_slice(tag.as_ref());
        Some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < HEAD_LEN + TAG_LEN {
            return None;
        }
        let (head, sealed) = ticket.split_at(HEAD_LEN);
        let (name, rest) = head.split_at(NAME_LEN);
        let (salt, issued) = rest.split_at(SALT_LEN);
        let issued = u64::from_be_bytes(issued.try_into().ok()?);
        let now = self.now_secs();
        if issued > now.saturating_add(CLOCK_SKEW_SECS)
            || now.saturating_sub(issued) > u64::from(LIFETIME_SECS)
        {
            return None;
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = std::iter::once(&keys.current)
            .chain(keys.previous.as_ref())
            .find(|k| bool::from(k.name.ct_eq(name)))?;
        let mut out = sealed.to_vec();
        let len = key
            .sealing_key(salt)?
            .open_in_place(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(head),
                &mut out,
            )
            .ok()?
            .len();
        out.truncate(len);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fal_core::{OsRandom, Timestamp};
    use std::sync::atomic::{AtomicI64, Ordering};

    struct FakeClock(AtomicI64);
    impl Clock for FakeClock {
        fn now(&self) -> Timestamp {
            Timestamp(self.0.load(Ordering::SeqCst))
        }
    }

    fn tickets(secret: u8, clock: &Arc<FakeClock>) -> SharedTickets {
        SharedTickets::new(
            TicketKey::from_secret(&[secret; 32]),
            clock.clone(),
            Arc::new(OsRandom),
        )
    }

    fn clock() -> Arc<FakeClock> {
        Arc::new(FakeClock(AtomicI64::new(1_800_000_000_000)))
    }

    #[test]
    fn a_ticket_opens_with_the_same_key_only() {
        let c = clock();
        let (one, two, other) = (tickets(1, &c), tickets(1, &c), tickets(2, &c));
        let t = one.encrypt(b"session state").unwrap();
        assert!(!t.windows(13).any(|w| w == b"session state"));
        assert_eq!(two.decrypt(&t).as_deref(), Some(&b"session state"[..]));
        assert_eq!(other.decrypt(&t), None);
        // Two tickets of the same state differ (own salt, own key).
        assert_ne!(one.encrypt(b"session state").unwrap(), t);
    }

    #[test]
    fn any_change_to_a_ticket_is_refused() {
        let c = clock();
        let t = tickets(1, &c);
        let ticket = t.encrypt(b"state").unwrap();
        for i in 0..ticket.len() {
            let mut bad = ticket.clone();
            bad[i] ^= 1;
            assert_eq!(t.decrypt(&bad), None, "byte {i}");
        }
        assert_eq!(t.decrypt(&ticket[..ticket.len() - 1]), None);
        assert_eq!(t.decrypt(&[]), None);
    }

    #[test]
    fn tickets_expire_and_future_ones_are_refused() {
        let c = clock();
        let t = tickets(1, &c);
        let ticket = t.encrypt(b"state").unwrap();
        let start = c.0.load(Ordering::SeqCst);
        c.0.store(start + i64::from(LIFETIME_SECS) * 1000, Ordering::SeqCst);
        assert!(t.decrypt(&ticket).is_some(), "at the end of its lifetime");
        c.0.store(
            start + (i64::from(LIFETIME_SECS) + 1) * 1000,
            Ordering::SeqCst,
        );
        assert_eq!(t.decrypt(&ticket), None, "past its lifetime");
        // Issued by a server whose clock is ahead: within the skew, fine.
        c.0.store(start - 60_000, Ordering::SeqCst);
        assert!(t.decrypt(&ticket).is_some());
        c.0.store(
            start - (CLOCK_SKEW_SECS as i64 + 1) * 1000,
            Ordering::SeqCst,
        );
        assert_eq!(t.decrypt(&ticket), None);
    }

    #[test]
    fn after_rotation_the_previous_key_still_opens_its_tickets() {
        let c = clock();
        let t = tickets(1, &c);
        let old = t.encrypt(b"old").unwrap();
        assert!(!t.rotate(TicketKey::from_secret(&[1; 32])), "same key");
        assert!(t.rotate(TicketKey::from_secret(&[2; 32])));
        let new = t.encrypt(b"new").unwrap();
        assert_eq!(t.decrypt(&old).as_deref(), Some(&b"old"[..]));
        assert_eq!(tickets(2, &c).decrypt(&new).as_deref(), Some(&b"new"[..]));
        assert_eq!(tickets(1, &c).decrypt(&new), None);
        // A second rotation forgets the first key.
        assert!(t.rotate(TicketKey::from_secret(&[3; 32])));
        assert_eq!(t.decrypt(&old), None);
        assert!(t.decrypt(&new).is_some());
    }

    #[test]
    fn key_files_are_64_hex_digits_and_errors_do_not_quote_them() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, format!("{}\n", "ab".repeat(32))).unwrap();
        let k = TicketKey::read(&good).unwrap();
        assert_eq!(k.name, TicketKey::from_secret(&[0xab; 32]).name);
        assert!(!format!("{k:?}").contains("abab"));
        for bad in [
            "ab".repeat(31),
            "zz".repeat(32),
            "ab".repeat(33),
            String::new(),
        ] {
            let path = dir.path().join("bad");
            std::fs::write(&path, &bad).unwrap();
            let e = TicketKey::read(&path).unwrap_err().to_string();
            assert!(e.contains("64 hex digits"), "{e}");
            if !bad.is_empty() {
                assert!(!e.contains(&bad[..8]), "{e}");
            }
        }
        let e = TicketKey::read(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
