//! The source of randomness, passed in so tests can make it deterministic.

/// Fills buffers with random bytes.
pub trait RandomSource: Send + Sync {
    /// Fills `buf` entirely. Failing to get randomness is not recoverable for
    /// a credential system, so implementations report it as an error.
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError>;
}

/// The operating system could not supply random bytes.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(pub String);

/// Randomness from the operating system (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
    }
}
