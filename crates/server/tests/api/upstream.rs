//! A model upstream for the gateway tests: reports what it received,
//! counts streamed bytes, streams server-sent events, and can be slow.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct Upstream {
    /// Requests that reached the upstream at all.
    pub hits: Arc<AtomicUsize>,
    /// Client ports seen by `/headers`: one per connection the gateway opened.
    pub connections: Arc<std::sync::Mutex<std::collections::BTreeSet<u16>>>,
    /// Released by a test to let the SSE stream send its second event.
    pub release_second_event: Arc<Notify>,
    /// Requests `/hold` is holding now.
    pub held: Arc<AtomicUsize>,
    /// One permit lets one `/hold` request answer.
    pub release_held: Arc<tokio::sync::Semaphore>,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            hits: Arc::default(),
            connections: Arc::default(),
            release_second_event: Arc::default(),
            held: Arc::default(),
            release_held: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
}

/// Holds each request until the test releases it, then echoes its JSON.
async fn hold(State(u): State<Upstream>, body: Bytes) -> Response {
    u.hits.fetch_add(1, Ordering::SeqCst);
    u.held.fetch_add(1, Ordering::SeqCst);
    let permit = u.release_held.acquire().await;
    u.held.fetch_sub(1, Ordering::SeqCst);
    if let Ok(p) = permit {
        p.forget();
    }
    let input: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    axum::Json(json!({ "held": true, "input": input })).into_response()
}

async fn headers(
    State(u): State<Upstream>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    req: Request,
) -> Response {
    u.hits.fetch_add(1, Ordering::SeqCst);
    u.connections.lock().unwrap().insert(peer.port());
    let mut h = BTreeMap::new();
    for (k, v) in req.headers() {
        h.insert(k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned());
    }
    let mut resp = axum::Json(json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "headers": h,
    }))
    .into_response();
    // A hop-by-hop header the gateway must not pass back.
    resp.headers_mut()
        .insert("connection", "x-upstream-private".parse().unwrap());
    resp.headers_mut()
        .insert("x-upstream-private", "1".parse().unwrap());
    resp.headers_mut()
        .insert("x-upstream-public", "1".parse().unwrap());
    resp
}

async fn count(State(u): State<Upstream>, req: Request) -> Response {
    u.hits.fetch_add(1, Ordering::SeqCst);
    let mut stream = req.into_body().into_data_stream();
    let mut n: u64 = 0;
    while let Some(chunk) = stream.next().await {
        n += chunk.unwrap().len() as u64;
    }
    axum::Json(json!({ "bytes": n })).into_response()
}

async fn sse(State(u): State<Upstream>, _h: HeaderMap) -> Response {
    u.hits.fetch_add(1, Ordering::SeqCst);
    let release = u.release_second_event.clone();
    let events = futures_util::stream::unfold(0u8, move |step| {
        let release = release.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(Bytes::from("data: first\n\n")), 1)),
                1 => {
                    release.notified().await;
                    Some((Ok(Bytes::from("data: second\n\n")), 2))
                }
                _ => None,
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(events))
        .unwrap()
}

/// Answers and asks for the connection to be closed.
async fn close() -> Response {
    let mut r = "closing".into_response();
    r.headers_mut()
        .insert("connection", "close".parse().unwrap());
    r
}

async fn slow(State(u): State<Upstream>) -> &'static str {
    u.hits.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

/// Starts the upstream; returns its base URL and handle.
pub async fn start() -> (String, Upstream) {
    let u = Upstream::default();
    let app = Router::new()
        .route("/headers", any(headers))
        .route("/headers/{*rest}", any(headers))
        .route("/count", post(count))
        .route("/sse", get(sse))
        .route("/slow", get(slow))
        .route("/close", get(close))
        .route("/hold", post(hold))
        .with_state(u.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    (format!("http://{addr}"), u)
}
