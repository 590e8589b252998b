//! Domain of fal's key-based authentication, free of I/O.
//!
//! # Layout
//! - [`alias`]: a key's alias, checked once.
//! - [`audit`]: the audit log's events and their kinds.
//! - [`allowed_apps`]: the apps a short-lived token may call;
//!   [`app_token`]: those tokens (HS256 JWTs under a key from the pepper).
//! - [`app_name`]: an app's owner and name, checked once.
//! - [`upstream`]: an app's upstream base URL, checked once.
//! - [`scope`]: the two scopes (`API`, `ADMIN`) and what each may do.
//! - [`key`]: key ids (UUIDs) and key secrets (`fal_sk_…`, with a checksum).
//! - [`hash`]: the server-side pepper and the keyed hash (HMAC-SHA-256) that is
//!   the only form in which a secret is ever stored.
//! - [`header`]: parsing `Authorization: Key <id>:<secret>` and `FAL_KEY`.
//! - [`lifetime`]: a key's expiry policy (`30d`, a date) and a roll's grace.
//! - [`verify`]: the verification rule, one code path for known and unknown ids.
//! - [`time`]: the injected clock and timestamps.
//! - [`token`]: session tokens issued after a GitHub sign-in.
//! - [`random`]: the injected source of randomness.
//! - [`rate`]: a key's rate limit (`100/s`), and what the `RateLimit-*`
//!   headers say; [`budget`]: one server's share of a limit in a window.
//! - [`usage`]: a key's calls per hour, accepted and refused by reason.
#![forbid(unsafe_code)]

pub mod alias;
pub mod allowed_apps;
pub mod app_name;
pub mod app_token;
pub mod audit;
pub mod budget;
pub mod hash;
pub mod header;
pub mod key;
pub mod lifetime;
pub mod random;
pub mod rate;
pub mod scope;
pub mod time;
pub mod token;
pub mod upstream;
pub mod usage;
pub mod verify;

pub use alias::{Alias, AliasError, MAX_ALIAS_CHARS};
pub use allowed_apps::{AllowedApps, AllowedAppsError};
pub use app_name::{AppName, AppOwner, AppPartError};
pub use app_token::{AppToken, AppTokenClaims, AppTokenError, AppTokenKey};
pub use audit::{AuditActor, AuditEvent, AuditKind, UnknownAuditKind, UserAgent};
pub use hash::{Pepper, SecretHash, SecretHasher};
pub use header::{Credentials, HeaderError};
pub use key::{KeyFormatError, KeyId, KeySecret, UserId};
pub use lifetime::{ExpiryError, ExpiryPolicy, Grace, GraceError, Span, SpanError};
pub use random::{OsRandom, RandomSource};
pub use rate::{Quota, RateLimit, RateLimitError, RatePeriod};
pub use scope::Scope;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use upstream::{UpstreamError, UpstreamUrl};
pub use usage::{Hour, Outcome, Refusal, UsageCounts};
pub use verify::{KeyRecord, Principal, VerifyError, mint_key};
