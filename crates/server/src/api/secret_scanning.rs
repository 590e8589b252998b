//! `POST /security/secret-scanning`: GitHub's secret scanning partner
//! endpoint. Not authenticated by our keys but by GitHub's signature over
//! the raw body ([`crate::secret_scanning`]); every key a reported secret
//! opens is revoked at once ([`crate::auth::leaks`]). The answer is GitHub's
//! feedback shape: `[{"token_raw", "token_type", "label"}]`, one per match.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;

use crate::audit::Origin;
use crate::auth::leaks::{Label, LeakOutcome};
use crate::error::{ApiError, ErrorBody};
use crate::secret_scanning::{
    KEY_IDENTIFIER_HEADER, SIGNATURE_HEADER, SignedReport, verify_report,
};
use crate::state::AppState;

/// GitHub's feedback on one reported token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Feedback {
    /// The token as sent.
    token_raw: String,
    /// Its type as sent.
    token_type: String,
    /// `true_positive` (a key's secret: the key is revoked) or `false_positive`.
    label: &'static str,
}

/// GitHub's secret scanning reports leaked secrets: every key a reported
/// secret opens is revoked at once.
// The body arrives bounded by `--max-body-size` (the router's
// [`crate::limits::bound_body`]).
#[utoipa::path(
    post,
    path = "/security/secret-scanning",
    operation_id = "secret_scanning_report",
    tag = "security",
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The published key that signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 ECDSA P-256 signature over the raw body"),
    ),
    request_body(content = Vec<crate::secret_scanning::ReportedMatch>, description = "The matches (at most 1,000)"),
    responses(
        (status = 200, description = "One label per match; every key whose secret was reported is revoked", body = Vec<Feedback>),
        (status = 400, description = "A signed body that is not JSON", body = ErrorBody),
        (status = 401, description = "Missing, malformed or wrong signature, or an unknown key (`invalid_signature`)", body = ErrorBody),
        (status = 422, description = "A signed body that is not a list of matches", body = ErrorBody),
        (status = 503, description = "GitHub's keys cannot be fetched", body = ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Vec<Feedback>>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let report = verify_report(
        state.scanning_keys(),
        header(KEY_IDENTIFIER_HEADER),
        header(SIGNATURE_HEADER),
        &body,
    )
    .await?;
    let outcome = state.admin_stores().revoke_leaked(&report).await?;
    log_outcome(&outcome);
    // One `key.leaked_revoked` event per key this report revoked, in its
    // owner's log, with where the secret was found. The keys are revoked
    // already: a failed write is an error GitHub retries (the retry finds
    // them revoked, as true positives, and records nothing twice).
    for k in outcome.keys.iter().filter(|k| k.revoked_now) {
        let reporter = match &k.source {
            Some(source) => format!("github secret scanning ({source})"),
            None => "github secret scanning".to_owned(),
        };
        state
            .audit()
            .key_leaked_revoked(&k.user_id, k.key_id, &reporter, Some(&k.url), &origin)
            .await?;
    }
    Ok(Json(answer(&report, &outcome)))
}

/// Logs each key found, with where the secret was found, never the secret.
fn log_outcome(outcome: &LeakOutcome) {
    for k in &outcome.keys {
        tracing::warn!(
            key_id = %k.key_id,
            user_id = %k.user_id,
            url = %k.url,
            source = k.source.as_deref().unwrap_or(""),
            revoked_now = k.revoked_now,
            "leaked key reported by secret scanning; revoked"
        );
    }
    let matched = outcome.labels.iter().filter(|l| **l == Label::TruePositive);
    tracing::info!(
        reported = outcome.labels.len(),
        matched = matched.count(),
        keys = outcome.keys.len(),
        "secret scanning report handled"
    );
}

/// GitHub's feedback: each token as sent, its type, and the label.
fn answer(report: &SignedReport, outcome: &LeakOutcome) -> Vec<Feedback> {
    report
        .matches()
        .iter()
        .zip(&outcome.labels)
        .map(|(m, label)| Feedback {
            token_raw: m.token.clone(),
            token_type: m.token_type.clone(),
            label: label.as_str(),
        })
        .collect()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(report))]
pub(super) struct Doc;
