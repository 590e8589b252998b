//! The REST API's OpenAPI 3.1 document, assembled from each API module's
//! paths (their `#[utoipa::path]` annotations) as [`super::routes`]
//! assembles their routes. Served unauthenticated at `GET /openapi.json`
//! (it holds no secrets) and committed as `docs/openapi.json`, which a test
//! keeps equal to what this builds.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;

/// `Authorization: Key <key_id>:<key_secret>`.
pub const KEY: &str = "key";
/// `Authorization: Bearer <access token>` from GitHub sign-in (`fal auth login`).
pub const SESSION: &str = "session";
/// `Authorization: Bearer <token>` from `POST /tokens/` (model calls only).
pub const APP_TOKEN: &str = "app_token";
/// `?fal_jwt_token=<token>` from `POST /tokens/` (model calls only).
pub const APP_TOKEN_QUERY: &str = "app_token_query";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "fal",
        description = "Self-hosted key-based auth and model gateway, compatible with fal's \
                       clients. Every error is `{\"detail\", \"code\"}` (`ErrorBody`). Keys \
                       are sent as `Authorization: Key <key_id>:<key_secret>`; ADMIN \
                       operations need a key of ADMIN scope, or a CLI session's bearer token.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness and readiness, for load balancers"),
        (name = "keys", description = "The caller's own keys (ADMIN)"),
        (name = "audit", description = "What was done with the caller's keys (ADMIN)"),
        (name = "users", description = "Who the caller is; operators' user management"),
        (name = "apps", description = "Models the gateway forwards to (ADMIN)"),
        (name = "tokens", description = "Short-lived tokens limited to some apps"),
        (name = "auth", description = "GitHub sign-in: the CLI's device flow, refresh, logout, the web flow"),
        (name = "gateway", description = "Model calls: fal's /run and /queue APIs"),
        (name = "security", description = "GitHub secret scanning's partner endpoint"),
    )
)]
struct ApiDoc;

/// The security schemes the server accepts (see [`crate::extract`]).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Components::new);
        let schemes = [
            (
                KEY,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "Authorization",
                    "`Key <key_id>:<key_secret>` (`FAL_KEY`'s form), from `POST /keys`, \
                     `fal key generate` or the bootstrap key `fal serve` prints.",
                ))),
            ),
            (
                SESSION,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "An access token from GitHub sign-in (`POST /auth/device/token`, \
                             `POST /auth/refresh`): the session's user with ADMIN scope.",
                        ))
                        .build(),
                ),
            ),
            (
                APP_TOKEN,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "A short-lived token from `POST /tokens/`: calls the models of \
                             the apps it lists, nothing else.",
                        ))
                        .build(),
                ),
            ),
            (
                APP_TOKEN_QUERY,
                SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                    crate::extract::TOKEN_QUERY,
                    "A short-lived token from `POST /tokens/` in the query, when no \
                     `Authorization` header is sent (model calls only).",
                ))),
            ),
        ];
        for (name, scheme) in schemes {
            components.add_security_scheme(name, scheme);
        }
        shared_error_responses(components);
    }
}

/// The whole document: the root above, this module's path and `parts`
/// (each API module's paths; see [`super::openapi`]).
pub fn assemble(
    parts: impl IntoIterator<Item = utoipa::openapi::OpenApi>,
) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(Doc::openapi());
    for part in parts {
        doc.merge(part);
    }
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for op in ops.into_iter().flatten() {
            add_error_responses(op);
        }
    }
    unique_operation_ids(&mut doc);
    doc
}

/// Operation ids unique, as OpenAPI wants: one handler serving several
/// methods (the gateway's `/run`) gets one per method.
fn unique_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let each = |item: &utoipa::openapi::PathItem| {
        [
            &item.get,
            &item.put,
            &item.post,
            &item.delete,
            &item.patch,
            &item.head,
            &item.options,
            &item.trace,
        ]
        .into_iter()
        .flatten()
        .filter_map(|op| op.operation_id.clone())
        .collect::<Vec<_>>()
    };
    for item in doc.paths.paths.values() {
        for id in each(item) {
            *seen.entry(id).or_default() += 1;
        }
    }
    for item in doc.paths.paths.values_mut() {
        let ops = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
            ("head", &mut item.head),
            ("options", &mut item.options),
            ("trace", &mut item.trace),
        ];
        for (method, op) in ops {
            if let Some(op) = op
                && let Some(id) = &op.operation_id
                && seen.get(id).copied().unwrap_or(0) > 1
            {
                op.operation_id = Some(format!("{id}_{method}"));
            }
        }
    }
}

/// The answers every operation may give besides its own: 401 and 429 where
/// credentials are checked, and any other error as [`ErrorBody`] (unless
/// the operation says what else it answers, as the gateway's do).
fn add_error_responses(op: &mut Operation) {
    let shared = |name: &str| RefOr::Ref(Ref::from_response_name(name));
    let responses = &mut op.responses.responses;
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    if secured {
        responses
            .entry("401".into())
            .or_insert_with(|| shared(UNAUTHORIZED));
        responses
            .entry("429".into())
            .or_insert_with(|| shared(TOO_MANY));
    }
    responses
        .entry("default".into())
        .or_insert_with(|| shared(ERROR));
}

/// The shared responses [`add_error_responses`] refers to.
const UNAUTHORIZED: &str = "Unauthorized";
const TOO_MANY: &str = "TooManyRequests";
const ERROR: &str = "Error";

/// [`ErrorBody`] answers, described once in `components.responses`.
fn shared_error_responses(components: &mut Components) {
    for (name, description) in [
        (
            UNAUTHORIZED,
            "No credentials, or credentials refused (`missing_credentials`, \
             `invalid_credentials`, `key_revoked`, `key_expired`, `token_expired`, …)",
        ),
        (
            TOO_MANY,
            "Too many refused credentials from this address \
             (`too_many_failed_attempts`), or the key's rate limit is used up \
             (`rate_limited`); `Retry-After` says when to retry",
        ),
        (ERROR, "Any other error (`{\"detail\", \"code\"}`)"),
    ] {
        let content = ContentBuilder::new()
            .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
            .build();
        let response = ResponseBuilder::new()
            .description(description)
            .content("application/json", content)
            .build();
        components.responses.insert(name.into(), RefOr::T(response));
    }
}

/// The document, pretty-printed, as `docs/openapi.json` holds it (with a
/// final newline).
pub fn openapi_json() -> String {
    let mut text = super::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// `GET /openapi.json`: this document (built once; it holds no secrets).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    operation_id = "openapi",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn serve() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(openapi_json).as_str();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[derive(OpenApi)]
#[openapi(paths(serve))]
struct Doc;

/// A key's scope as the API shows it (`fal_core::Scope`'s serde form).
pub fn scope_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["ADMIN", "API"]))
        .description(Some(
            "`ADMIN` (manages keys and apps) or `API` (calls models)",
        ))
        .build()
}
