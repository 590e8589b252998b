//! `GET /keys/{key_id}/usage`: a key's calls per hour over the last 30
//! days, accepted and refused by reason, with totals (ADMIN, own keys
//! only; another user's key is not found, like an unknown one).

use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use fal_core::usage::{Hour, retained_since};
use fal_core::{KeyId, Timestamp, UsageCounts};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiQuery;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};

/// `GET /keys/{key_id}/usage` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// `YYYY-MM-DD` or an RFC 3339 instant in UTC: hours from the one it
    /// falls in on (never before the retention window).
    since: Option<String>,
}

/// Counts as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Counts {
    accepted: u64,
    /// Every refusal, whatever the reason.
    refused: u64,
    wrong_secret: u64,
    revoked: u64,
    rate_limited: u64,
    expired: u64,
}

impl From<&UsageCounts> for Counts {
    fn from(c: &UsageCounts) -> Counts {
        Counts {
            accepted: c.accepted,
            refused: c.refused(),
            wrong_secret: c.wrong_secret,
            revoked: c.revoked,
            rate_limited: c.rate_limited,
            expired: c.expired,
        }
    }
}

/// One hour with calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// Its first instant, RFC 3339.
    hour: String,
    #[serde(flatten)]
    counts: Counts,
}

/// The answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    key_id: String,
    /// The first hour covered, RFC 3339.
    since: String,
    /// Hours with calls, oldest first.
    hours: Vec<Bucket>,
    /// The sums over `hours`.
    totals: Counts,
}

/// The first hour to show: `since`'s, but not before the retention
/// window; a 400 saying what to send when `since` is not a date.
fn first_hour(since: Option<&str>, now: Timestamp) -> Result<Hour, ApiError> {
    let kept = retained_since(now);
    let Some(raw) = since else {
        return Ok(kept);
    };
    let at = Timestamp::parse_day_or_rfc3339(raw).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "since must be a date (2026-11-28) or an RFC 3339 instant \
             (2026-11-28T10:00:00Z), not {raw:?}"
        ))
    })?;
    Ok(Hour::of(at).max(kept))
}

/// `GET /keys/{key_id}/usage`.
#[utoipa::path(
    get,
    path = "/keys/{key_id}/usage",
    operation_id = "key_usage_show",
    tag = "keys",
    params(("key_id" = String, Path, description = "One of the caller's keys (revoked ones too)"), UsageQuery),
    security(("key" = []), ("session" = [])),
    responses(
        (status = 200, description = "Calls per hour (UTC) with calls, oldest first, and totals", body = Usage),
        (status = 400, description = "A `since` that is not a date", body = ErrorBody),
        (status = 403, description = "Not an ADMIN key", body = ErrorBody),
        (status = 404, description = "No such key of the caller's", body = ErrorBody),
    )
)]
pub async fn show(
    admin: Admin,
    Path(key_id): Path<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("No key {key_id:?} found for this user"));
    let since = first_hour(q.since.as_deref(), admin.now())?;
    let id: KeyId = key_id.parse().map_err(|_| not_found())?;
    let hours = admin.key_usage(&id, since).await?.ok_or_else(not_found)?;
    let mut totals = UsageCounts::default();
    for (_, c) in &hours {
        totals.add(c);
    }
    let body = Usage {
        key_id: id.to_string(),
        since: since.start().to_rfc3339(),
        hours: hours
            .iter()
            .map(|(h, c)| Bucket {
                hour: h.start().to_rfc3339(),
                counts: Counts::from(c),
            })
            .collect(),
        totals: Counts::from(&totals),
    };
    Ok(Json(body).into_response())
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(show))]
pub(super) struct Doc;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use fal_core::usage::{DAY_MS, HOUR_MS};

    use super::*;

    #[test]
    fn since_is_read_and_kept_within_the_retention() {
        let now = Timestamp(1_796_119_200_000 + 5);
        assert_eq!(first_hour(None, now).unwrap(), retained_since(now));
        let h = first_hour(Some("2026-12-01T09:30:00Z"), now).unwrap();
        assert_eq!(h.start(), Timestamp(1_796_119_200_000 - HOUR_MS));
        let old = first_hour(Some("2000-01-01"), now).unwrap();
        assert_eq!(old.start(), Timestamp(1_796_119_200_000 - 30 * DAY_MS));
        assert!(first_hour(Some("last week"), now).is_err());
    }
}
