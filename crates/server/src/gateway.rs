//! The model gateway: `/{run}/{owner}/{name}[/{path…}]`, any method.
//!
//! A request is authenticated (either scope may call models), its app is
//! found (through a small cache), and it is forwarded to the app's upstream
//! with the body streamed both ways: neither a large upload nor a long
//! server-sent-event response is ever held whole in memory. Hop-by-hop
//! headers and the client's `Authorization` are dropped; the upstream gets
//! `X-Fal-User-Id`, `X-Fal-Key-Id` and `X-Fal-Request-Id`, and the client
//! gets `x-fal-request-id` back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use fal_core::{Clock, Principal, RandomSource, Timestamp};
use fal_store::{AppLookup, AppRecord, StoreError};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::auth::{AppState, Caller};
use crate::error::ApiError;
use crate::forward_rules as rules;

/// Header carrying the caller's user id to the upstream.
pub const X_FAL_USER_ID: &str = "x-fal-user-id";
/// Header carrying the caller's key id to the upstream.
pub const X_FAL_KEY_ID: &str = "x-fal-key-id";
/// Header carrying the request id to the upstream and back to the client.
pub const X_FAL_REQUEST_ID: &str = "x-fal-request-id";

/// A cached app lookup: the app (or its absence) and when it was read.
#[derive(Clone)]
struct CachedApp {
    /// `None` caches "no such app" too, so unknown names cost no query.
    app: Option<Arc<AppRecord>>,
    /// When it was read.
    fetched_at: Timestamp,
}

/// Finds apps: built-in ones first, then storage through a small cache.
pub struct AppDirectory {
    /// Storage.
    lookup: Arc<dyn AppLookup>,
    /// `owner/name` → lookup result, trusted for `max_staleness_ms`.
    cache: quick_cache::sync::Cache<String, CachedApp>,
    /// Apps served by this process itself (`--demo`), never stored.
    builtin: HashMap<String, Arc<AppRecord>>,
    /// Now.
    clock: Arc<dyn Clock>,
    /// How long a cached lookup is trusted.
    max_staleness_ms: i64,
}

impl AppDirectory {
    /// A directory over `lookup`.
    pub fn new(
        lookup: Arc<dyn AppLookup>,
        clock: Arc<dyn Clock>,
        max_staleness: Duration,
        builtin: Vec<AppRecord>,
    ) -> AppDirectory {
        AppDirectory {
            lookup,
            cache: quick_cache::sync::Cache::new(10_000),
            builtin: builtin
                .into_iter()
                .map(|a| (format!("{}/{}", a.owner, a.name), Arc::new(a)))
                .collect(),
            clock,
            max_staleness_ms: i64::try_from(max_staleness.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Built-in apps.
    pub fn builtin(&self) -> impl Iterator<Item = &AppRecord> {
        self.builtin.values().map(|a| a.as_ref())
    }

    /// The app `owner/name`.
    pub async fn find(
        &self,
        owner: &str,
        name: &str,
    ) -> Result<Option<Arc<AppRecord>>, StoreError> {
        self.find_keyed(&format!("{owner}/{name}"), owner, name)
            .await
    }

    /// The app `owner/name`, whose cache key `owner/name` the caller
    /// already has (a slice of the request path: no allocation on a hit).
    pub async fn find_keyed(
        &self,
        key: &str,
        owner: &str,
        name: &str,
    ) -> Result<Option<Arc<AppRecord>>, StoreError> {
        if let Some(app) = self.builtin.get(key) {
            return Ok(Some(app.clone()));
        }
        let now = self.clock.now();
        if let Some(hit) = self.cache.get(key)
            && now.millis().saturating_sub(hit.fetched_at.millis()) <= self.max_staleness_ms
        {
            return Ok(hit.app);
        }
        let app = self.lookup.app(owner, name).await?.map(Arc::new);
        self.cache.insert(
            key.to_owned(),
            CachedApp {
                app: app.clone(),
                fetched_at: now,
            },
        );
        Ok(app)
    }

    /// Forgets a cached lookup (after a change on this server).
    pub fn invalidate(&self, owner: &str, name: &str) {
        self.cache.remove(&format!("{owner}/{name}"));
    }

    /// Forgets every cached lookup.
    pub fn invalidate_all(&self) {
        self.cache.clear();
    }

    /// Whether `owner/name` is built in (and so cannot be changed).
    pub fn is_builtin(&self, owner: &str, name: &str) -> bool {
        self.builtin.contains_key(&format!("{owner}/{name}"))
    }
}

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

/// hyper's pooled client, for the requests the hand-written path in
/// [`crate::front`] passes on (see there): `https` upstreams and the odd
/// request.
type Fallback =
    Client<hyper_rustls::HttpsConnector<HttpConnector<crate::reach::GuardedResolver>>, Body>;

/// Talks to upstreams, one per worker thread (its connections belong to
/// that thread's runtime). Holds the idle keep-alive connections to
/// plain-HTTP upstreams that [`crate::front`] forwards model calls over,
/// and hyper's pooled client with rustls for everything else. Cheap to
/// clone.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<Upstreams>,
}

struct Upstreams {
    /// For `https` upstreams and requests the front passes on, of apps
    /// whose owner is not an operator: global addresses only.
    fallback: Fallback,
    /// The same for operators' apps: internal addresses too.
    fallback_internal: Fallback,
    /// `--allow-metadata-upstreams`.
    allow_metadata: bool,
    /// `host:port` → idle connections, most recently used last. Looked up
    /// twice per model call, so with a fast hasher: the keys are the
    /// operator's upstream addresses, not an attacker's choice.
    idle: std::sync::Mutex<HashMap<String, Vec<UpConn>, foldhash::fast::RandomState>>,
}

/// Idle connections kept per upstream authority.
const MAX_IDLE_PER_UPSTREAM: usize = 1024;

/// An idle-able HTTP/1.1 connection to a plain-HTTP upstream.
pub(crate) struct UpConn {
    /// The socket.
    pub(crate) stream: tokio::net::TcpStream,
    /// Bytes read from it and not yet used (a response head being parsed,
    /// the start of its body). Empty while the connection is idle.
    pub(crate) buf: Vec<u8>,
    /// Whether its peer is not a global address: reused only for apps
    /// whose owner may reach internal addresses.
    internal: bool,
}

impl UpConn {
    /// Connects to `host:port` for `app`, only on addresses its owner may
    /// use (see [`crate::reach`]); a refusal carries a [`crate::addresses::Refusal`].
    pub(crate) async fn connect(
        upstream: &UpstreamParts<'_>,
        state: &AppState,
        app: &AppRecord,
    ) -> std::io::Result<UpConn> {
        let (host, port) = (upstream.host, upstream.port);
        let addrs = crate::reach::resolve_for(state, app, host, port).await?;
        let stream = tokio::net::TcpStream::connect(&addrs[..]).await?;
        stream.set_nodelay(true)?;
        let internal = stream.peer_addr().map_or(true, |a| {
            crate::addresses::classify(a.ip()) != crate::addresses::AddressClass::Global
        });
        Ok(UpConn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            internal,
        })
    }

    /// Whether an idle connection still looks usable: the upstream has
    /// neither closed it nor sent anything unasked. Asks the runtime's
    /// readiness first, so a quiet connection costs no system call.
    fn looks_alive(&self) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            std::task::Poll::Pending => true,
            std::task::Poll::Ready(Err(_)) => false,
            std::task::Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
    }
}

/// hyper's client whose connections reach only what `reach` allows.
fn fallback(reach: crate::addresses::Reach) -> Result<Fallback, std::io::Error> {
    let mut http = HttpConnector::new_with_resolver(crate::reach::GuardedResolver { reach });
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(Arc::new(rustls::crypto::ring::default_provider()))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(MAX_IDLE_PER_UPSTREAM)
        .build(https))
}

/// Builds the upstream client; `allow_metadata` is
/// `--allow-metadata-upstreams`.
pub fn upstream_client(allow_metadata: bool) -> Result<UpstreamClient, std::io::Error> {
    let reach = |internal| crate::addresses::Reach {
        internal,
        metadata: allow_metadata,
    };
    Ok(UpstreamClient {
        inner: Arc::new(Upstreams {
            fallback: fallback(reach(false))?,
            fallback_internal: fallback(reach(true))?,
            allow_metadata,
            idle: std::sync::Mutex::new(HashMap::default()),
        }),
    })
}

impl UpstreamClient {
    /// Whether operators may use cloud-metadata addresses.
    pub fn allow_metadata(&self) -> bool {
        self.inner.allow_metadata
    }

    /// Sends `req` (absolute URI) to its upstream through hyper's client,
    /// only to addresses `reach` allows.
    pub async fn request(
        &self,
        req: axum::http::Request<Body>,
        reach: crate::addresses::Reach,
    ) -> Result<axum::http::Response<Body>, GatewayError> {
        // hyper connects to an IP literal without asking the resolver.
        if let Some(host) = req.uri().host()
            && let Ok(ip) = host.trim_matches(['[', ']']).parse()
        {
            crate::addresses::check(ip, reach).map_err(|r| GatewayError::Refused(r.detail))?;
        }
        let client = if reach.internal {
            &self.inner.fallback_internal
        } else {
            &self.inner.fallback
        };
        client
            .request(req)
            .await
            .map(|r| r.map(Body::new))
            .map_err(|e| match crate::reach::refusal_in(&e) {
                Some(r) => GatewayError::Refused(r.detail.clone()),
                None => GatewayError::Failed(e.to_string()),
            })
    }

    /// An idle connection to `authority` that still looks usable; closed
    /// ones found on the way are dropped.
    pub(crate) fn take_idle(&self, authority: &str) -> Option<UpConn> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(authority)?;
        while let Some(conn) = list.pop() {
            if conn.looks_alive() {
                return Some(conn);
            }
        }
        None
    }

    /// [`Self::take_idle`] for `app`: a kept connection to an internal
    /// address only when `app` may reach one (the pool is keyed by
    /// authority, which apps of different owners may share).
    pub(crate) async fn take_idle_for(
        &self,
        authority: &str,
        state: &AppState,
        app: &AppRecord,
    ) -> Option<UpConn> {
        let conn = self.take_idle(authority)?;
        if conn.internal && !crate::reach::reach_of(state, app).await.internal {
            return None;
        }
        Some(conn)
    }

    /// Keeps `conn` for the next request to `authority` (its last response
    /// was read to the end and nothing followed it).
    pub(crate) fn put_back(&self, authority: &str, mut conn: UpConn) {
        conn.buf.clear();
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        match idle.get_mut(authority) {
            Some(list) if list.len() < MAX_IDLE_PER_UPSTREAM => list.push(conn),
            Some(_) => {}
            None => {
                idle.insert(authority.to_owned(), vec![conn]);
            }
        }
    }
}

/// A plain-HTTP upstream base URL taken apart (see [`split_upstream`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UpstreamParts<'a> {
    /// `host[:port]` as written: the `Host` header and the pool's key.
    pub(crate) authority: &'a str,
    /// The host to connect to (no brackets around an IPv6 address).
    pub(crate) host: &'a str,
    /// The port (80 when not written).
    pub(crate) port: u16,
    /// The base path, without a trailing slash; may be empty.
    pub(crate) base: &'a str,
}

/// Takes an `http://` upstream apart; `None` for `https` (and anything
/// that is not a plain-HTTP URL), which goes through hyper's client.
///
/// Runs twice per model call, so it looks at bytes (every separator is
/// ASCII) rather than through `str`'s pattern machinery.
pub(crate) fn split_upstream(url: &str) -> Option<UpstreamParts<'_>> {
    let rest = url.strip_prefix("http://")?;
    let slash = rest.bytes().position(|b| b == b'/').unwrap_or(rest.len());
    let (authority, base) = rest.split_at_checked(slash)?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let close = v6.bytes().position(|b| b == b']')?;
        let (host, after) = (v6.get(..close)?, v6.get(close + 1..)?);
        match after.strip_prefix(':') {
            Some(p) => (host, p.parse().ok()?),
            None if after.is_empty() => (host, 80),
            None => return None,
        }
    } else {
        match authority.bytes().rposition(|b| b == b':') {
            Some(i) => (authority.get(..i)?, authority.get(i + 1..)?.parse().ok()?),
            None => (authority, 80),
        }
    };
    let base_len = base.len() - base.bytes().rev().take_while(|&b| b == b'/').count();
    (!host.is_empty()).then_some(UpstreamParts {
        authority,
        host,
        port,
        base: base.get(..base_len)?,
    })
}

/// Headers that belong to one connection, never forwarded.
/// Lowercase, as both forwarding paths compare them.
pub(crate) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, including those named in `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for h in named {
        headers.remove(h);
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

/// Errors of the gateway, each a JSON reply.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No app by that name.
    #[error("No app {0} is registered here")]
    UnknownApp(String),
    /// The path is not `/run/OWNER/NAME[/…]`.
    #[error("Call a model at /run/OWNER/NAME[/PATH]")]
    BadPath,
    /// The upstream refused or could not be reached.
    #[error("The app's upstream could not be reached")]
    Unreachable,
    /// The upstream did not answer within the app's timeout.
    #[error("The app's upstream did not answer within {0} ms")]
    Timeout(i64),
    /// The upstream's address is one this app may not use.
    #[error("The app's upstream address is refused: {0}")]
    Refused(String),
    /// Sending failed (logged; answered as [`GatewayError::Unreachable`]).
    #[error("The app's upstream could not be reached")]
    Failed(String),
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> ApiError {
        match e {
            GatewayError::UnknownApp(_) | GatewayError::BadPath => {
                ApiError::NotFound(e.to_string())
            }
            GatewayError::Unreachable | GatewayError::Failed(_) | GatewayError::Refused(_) => {
                ApiError::BadGateway(e.to_string())
            }
            GatewayError::Timeout(_) => ApiError::GatewayTimeout(e.to_string()),
        }
    }
}

/// A model call's path taken apart (see [`split_run_path`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RunPath<'a> {
    /// `OWNER/NAME`: the app directory's cache key, as it stands in the path.
    pub(crate) app: &'a str,
    /// The owner.
    pub(crate) owner: &'a str,
    /// The name.
    pub(crate) name: &'a str,
    /// The rest of the path after the name (may be empty).
    pub(crate) tail: &'a str,
}

/// Splits `/run/OWNER/NAME/REST` into its parts.
pub(crate) fn split_run_path(path: &str) -> Option<RunPath<'_>> {
    let rest = path.strip_prefix("/run/")?;
    let (owner, after_owner) = rest.split_once('/')?;
    let (name, tail) = match after_owner.find('/') {
        Some(i) => (&after_owner[..i], &after_owner[i..]),
        None => (after_owner, ""),
    };
    let app = &rest[..rest.len() - tail.len()];
    (!owner.is_empty() && !name.is_empty()).then_some(RunPath {
        app,
        owner,
        name,
        tail,
    })
}

/// The gateway handler.
pub async fn run(
    State(state): State<AppState>,
    Caller(principal): Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let run = split_run_path(req.uri().path()).ok_or(GatewayError::BadPath)?;
    if !rules::tail_is_safe(run.tail) {
        return Err(rules::escaping_path());
    }
    let app = state
        .apps()
        .find_keyed(run.app, run.owner, run.name)
        .await?
        .ok_or_else(|| GatewayError::UnknownApp(run.app.to_owned()))?;
    let tail = run.tail;
    // An upstream without a path ("http://host:port") still needs one.
    let bare_host = app.upstream.splitn(4, '/').count() < 4;
    let tail = if tail.is_empty() && bare_host {
        "/"
    } else {
        tail
    };
    let target = match req.uri().query() {
        Some(q) => format!("{}{tail}?{q}", app.upstream),
        None => format!("{}{tail}", app.upstream),
    };
    let request_id = state.request_ids().next();
    forward(&state, &app, &principal, req, &target, &request_id).await
}

async fn forward(
    state: &AppState,
    app: &AppRecord,
    principal: &Principal,
    req: Request,
    target: &str,
    request_id: &str,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    parts.uri = target.parse().map_err(|_| {
        ApiError::Internal(format!("bad upstream URL for {}/{}", app.owner, app.name))
    })?;
    parts.version = axum::http::Version::HTTP_11;
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::HOST);
    rules::strip_our_cookies(headers);
    // Identity headers come from us only, never from the client.
    for h in [X_FAL_USER_ID, X_FAL_KEY_ID, X_FAL_REQUEST_ID] {
        headers.remove(h);
    }
    let value = |s: &str| HeaderValue::from_str(s).map_err(|_| ApiError::Internal("header".into()));
    headers.insert(X_FAL_USER_ID, value(principal.user_id.as_str())?);
    if let Some(k) = principal.key_id {
        headers.insert(X_FAL_KEY_ID, value(&k.to_string())?);
    }
    let rid = value(request_id)?;
    headers.insert(X_FAL_REQUEST_ID, rid.clone());

    let wait = Duration::from_millis(u64::try_from(app.timeout_ms).unwrap_or(0));
    let reach = crate::reach::reach_of(state, app).await;
    // Trailers stay here; a failure of the client's body (hyper found its
    // framing broken) is told apart from the upstream's.
    let (body, client_failed) = rules::NoTrailers::new(body);
    let mut request = axum::http::Request::from_parts(parts, Body::new(body));
    let connection = hyper_util::client::legacy::connect::capture_connection(&mut request);
    let sent = state.upstream().request(request, reach);
    let failed = |e: GatewayError| {
        let mut r = ApiError::from(e).into_response();
        r.headers_mut().insert(X_FAL_REQUEST_ID, rid.clone());
        Ok(r)
    };
    let upstream = match tokio::time::timeout(wait, sent).await {
        Err(_) => {
            tracing::warn!(app = %format!("{}/{}", app.owner, app.name), request_id, "upstream timed out");
            return failed(GatewayError::Timeout(app.timeout_ms));
        }
        Ok(Err(_)) if client_failed.load(std::sync::atomic::Ordering::Relaxed) => {
            let mut r = rules::bad_chunked().closing();
            r.headers_mut().insert(X_FAL_REQUEST_ID, rid);
            return Ok(r);
        }
        Ok(Err(GatewayError::Failed(e))) => {
            tracing::warn!(app = %format!("{}/{}", app.owner, app.name), request_id, error = %e, "upstream unreachable");
            return failed(GatewayError::Unreachable);
        }
        Ok(Err(e)) => {
            tracing::warn!(app = %format!("{}/{}", app.owner, app.name), request_id, error = %e, "upstream refused");
            return failed(e);
        }
        Ok(Ok(r)) => r,
    };
    let (mut parts, body) = upstream.into_parts();
    // The same framing rules as the hand-written path: both framings, or a
    // coding but chunked, is a 502 (the body is dropped unread, so hyper
    // does not keep the connection).
    let te = parts.headers.get_all(header::TRANSFER_ENCODING);
    let has_length = parts.headers.contains_key(header::CONTENT_LENGTH);
    if let Err(e) = rules::check_response_framing(te.iter().map(|v| v.as_bytes()), has_length) {
        tracing::warn!(app = %format!("{}/{}", app.owner, app.name), request_id, error = e, "upstream broke its framing");
        // Its framing in doubt, the connection is never used again.
        if let Some(c) = connection.connection_metadata().as_ref() {
            c.poison();
        }
        return failed(GatewayError::Unreachable);
    }
    strip_hop_by_hop(&mut parts.headers);
    if parts.status == StatusCode::NO_CONTENT || parts.status == StatusCode::NOT_MODIFIED {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    // The head goes out with the body's first data, or after a short wait
    // for it: a body that breaks before that is still a 502, as on the
    // hand-written path (where the head goes out with what came with it).
    let mut body = body;
    let first = if http_body::Body::is_end_stream(&body) {
        None
    } else {
        tokio::time::timeout(FIRST_DATA_WAIT, body.frame())
            .await
            .ok()
    };
    let body = match first {
        Some(Some(Err(e))) => {
            tracing::warn!(app = %format!("{}/{}", app.owner, app.name), request_id, error = %e, "upstream broke its response");
            if let Some(c) = connection.connection_metadata().as_ref() {
                c.poison();
            }
            return failed(GatewayError::Unreachable);
        }
        Some(Some(Ok(frame))) => match frame.into_data() {
            Ok(data) => Body::new(rules::NoTrailers::with_first(data, body)),
            Err(_trailers) => Body::empty(),
        },
        Some(None) => Body::empty(),
        None => Body::new(rules::NoTrailers::new(body).0),
    };
    parts.headers.insert(X_FAL_REQUEST_ID, rid);
    Ok(Response::from_parts(parts, body))
}

/// How long hyper's path waits for a response body's first data before
/// sending the head without it (a stream whose first event is slow).
const FIRST_DATA_WAIT: Duration = Duration::from_millis(100);

/// The built-in demo app `fal-ai/echo`: answers with the JSON it was sent
/// plus the caller's key id (`fal_key_id`), as the gateway reported it.
pub async fn echo(headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let key_id = headers
        .get(X_FAL_KEY_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let value: serde_json::Value = if body.is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(serde_json::json!({"detail": format!("echo takes JSON: {e}")})),
                )
                    .into_response();
            }
        }
    };
    let out = match value {
        serde_json::Value::Object(mut m) => {
            m.insert("fal_key_id".into(), key_id.into());
            serde_json::Value::Object(m)
        }
        other => serde_json::json!({"input": other, "fal_key_id": key_id}),
    };
    axum::Json(out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_paths_split_into_owner_name_and_tail() {
        let parts = |p| split_run_path(p).map(|r| (r.app, r.owner, r.name, r.tail));
        assert_eq!(
            parts("/run/fal-ai/echo"),
            Some(("fal-ai/echo", "fal-ai", "echo", ""))
        );
        assert_eq!(parts("/run/a/b/c/d"), Some(("a/b", "a", "b", "/c/d")));
        assert_eq!(parts("/run/a/b/"), Some(("a/b", "a", "b", "/")));
        assert_eq!(split_run_path("/run/a"), None);
        assert_eq!(split_run_path("/run//b"), None);
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

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
