//! HTTP/1.1 as the hand-written forwarding path ([`crate::front`]) reads and
//! writes it: pure functions over byte slices, no sockets and no tokio, in
//! the way mini-redis keeps `frame.rs` apart from its connection. Unit-tested
//! here, fuzzed under `fuzz/` (corpora replayed by `cargo test`), and held
//! to the hyper path's behaviour by the differential test.
//!
//! # Layout
//! - [`request`]: a request head classified: forwarded by hand, answered,
//!   or handed to hyper; its body's framing.
//! - [`response`]: an upstream's response head read and rewritten for the
//!   client.
//! - [`chunked`]: the chunked framing, followed strictly as bytes arrive.
//! - [`mod@write`]: heads written out (the upstream's request head, our own
//!   answers, header lines, framing).
//! - [`headers`], [`target`]: the rules both forwarding paths share (which
//!   headers stay behind, who is calling, lengths and framings; the run
//!   path, the tail check and the upstream path).

pub mod chunked;
pub mod headers;
pub mod request;
pub mod response;
pub mod target;
pub mod write;

pub use chunked::{BadChunk, Chunked};

/// The longest request or response head read before giving up on it.
pub const MAX_HEAD: usize = 64 * 1024;
/// Header lines parsed per head; more, and hyper takes the request.
pub const MAX_HEADERS: usize = 64;

/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

impl Framing {
    /// The body's length if all of it is among the `available` bytes
    /// that follow its head (`Some(0)` for no body); `None` if not, or if
    /// only reading it through would tell.
    #[inline]
    pub fn all_in(self, available: usize) -> Option<usize> {
        match self {
            Framing::Empty => Some(0),
            Framing::Length(n) => usize::try_from(n).ok().filter(|n| *n <= available),
            Framing::Chunked | Framing::UntilClose => None,
        }
    }
}

/// Room for a head's parsed header lines, filled by [`request::classify`]
/// and [`response::parse`].
pub type HeaderSlots<'b> = [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Empty room for a head's header lines.
pub fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS]
}
