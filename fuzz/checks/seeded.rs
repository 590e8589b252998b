//! Well-formed credentials made from the fuzzer's bytes, so that a target
//! explores valid input too (a random secret almost never has a matching
//! checksum).

use fal_core::random::{RandomError, RandomSource};
use fal_core::{KeyId, KeySecret};

/// A "random" source that hands out the given bytes (zeros once they run
/// out).
struct Bytes<'a>(&'a [u8]);

impl RandomSource for Bytes<'_> {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.0.get(i).copied().unwrap_or(0);
        }
        Ok(())
    }
}

/// A valid key id and secret made from the first 48 bytes of `data`, and
/// the bytes after them.
pub fn pair(data: &[u8]) -> (KeyId, KeySecret, &[u8]) {
    let (id_bytes, rest) = data.split_at(data.len().min(16));
    let (secret_bytes, rest) = rest.split_at(rest.len().min(32));
    let id = KeyId::generate(&Bytes(id_bytes)).unwrap_or_else(|e| panic!("{e}"));
    let secret = KeySecret::generate(&Bytes(secret_bytes)).unwrap_or_else(|e| panic!("{e}"));
    (id, secret, rest)
}
