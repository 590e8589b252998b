//! Request ids, sent to the upstream and back to the client.

use std::sync::atomic::{AtomicU64, Ordering};

use fal_core::RandomSource;

/// Request ids: a random per-process prefix and a counter, shaped as a
/// UUID. Unique without a system call per request.
pub struct RequestIds {
    /// Random, fixed at start.
    prefix: u64,
    /// Incremented per request.
    counter: AtomicU64,
}

impl RequestIds {
    /// A generator with a fresh random prefix.
    pub fn new(rng: &dyn RandomSource) -> Result<RequestIds, fal_core::random::RandomError> {
        let mut b = [0u8; 16];
        rng.fill(&mut b)?;
        let [p @ .., _, _, _, _, _, _, _, _] = b;
        let [_, _, _, _, _, _, _, _, c @ ..] = b;
        Ok(RequestIds {
            prefix: u64::from_be_bytes(p),
            counter: AtomicU64::new(u64::from_be_bytes(c)),
        })
    }

    /// The next id.
    pub fn next(&self) -> String {
        String::from_utf8_lossy(&self.next_bytes()).into_owned()
    }

    /// The next id as ASCII bytes (`8-4-4-4-12` lowercase hex), without
    /// allocating.
    pub fn next_bytes(&self) -> [u8; 36] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut out = [b'-'; 36];
        let mut put = |range: std::ops::Range<usize>, value: u64| {
            let width = range.len();
            for (i, slot) in out[range].iter_mut().enumerate() {
                let shift = 4 * (width - 1 - i);
                *slot = HEX[((value >> shift) & 0xf) as usize];
            }
        };
        put(0..8, self.prefix >> 32);
        put(9..13, (self.prefix >> 16) & 0xffff);
        put(14..18, self.prefix & 0xffff);
        put(19..23, n >> 48);
        put(24..36, n & 0xffff_ffff_ffff);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_and_uuid_shaped() {
        let ids = RequestIds::new(&fal_core::OsRandom).unwrap();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert!(a.parse::<uuid::Uuid>().is_ok(), "{a}");
        let ids = RequestIds {
            prefix: 0x0123_4567_89ab_cdef,
            counter: AtomicU64::new(0xfedc_ba98_7654_3210),
        };
        assert_eq!(ids.next(), "01234567-89ab-cdef-fedc-ba9876543210");
        assert_eq!(ids.next(), "01234567-89ab-cdef-fedc-ba9876543211");
    }
}
