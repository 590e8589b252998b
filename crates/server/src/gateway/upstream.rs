//! Talks to upstreams: the pool of kept connections the hand-written path
//! uses, and hyper's pooled client with rustls for everything else.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::GatewayError;
use super::pool::{MAX_IDLE_PER_UPSTREAM, Pool};
use super::reach::{GuardedResolver, ReachPolicy, refusal_in};
use crate::addresses::{Reach, check};
use crate::metrics::PoolMetrics;

/// hyper's pooled client, for the requests the hand-written path in
/// [`crate::front`] passes on (see there): `https` upstreams and the odd
/// request.
type Fallback = Client<hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>, Body>;

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
    /// Which addresses each app may reach.
    policy: ReachPolicy,
    /// Kept connections to plain-HTTP upstreams.
    pool: Pool,
}

/// hyper's client whose connections reach only what `reach` allows.
fn fallback(reach: Reach) -> Result<Fallback, std::io::Error> {
    let mut http = HttpConnector::new_with_resolver(GuardedResolver { reach });
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

impl UpstreamClient {
    /// A client (for one worker) whose connections follow `policy`; its
    /// pool counts into `metrics`.
    pub fn new(
        policy: ReachPolicy,
        metrics: PoolMetrics,
    ) -> Result<UpstreamClient, std::io::Error> {
        let reach = |internal| Reach {
            internal,
            metadata: policy.allow_metadata(),
        };
        Ok(UpstreamClient {
            inner: Arc::new(Upstreams {
                fallback: fallback(reach(false))?,
                fallback_internal: fallback(reach(true))?,
                policy,
                pool: Pool::new(metrics),
            }),
        })
    }

    /// Which addresses each app may reach.
    pub fn policy(&self) -> &ReachPolicy {
        &self.inner.policy
    }

    /// The kept connections to plain-HTTP upstreams.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Sends `req` (absolute URI) to its upstream through hyper's client,
    /// only to addresses `reach` allows.
    pub async fn request(
        &self,
        req: axum::http::Request<Body>,
        reach: Reach,
    ) -> Result<axum::http::Response<Body>, GatewayError> {
        // hyper connects to an IP literal without asking the resolver.
        if let Some(host) = req.uri().host()
            && let Ok(ip) = host.trim_matches(['[', ']']).parse()
        {
            check(ip, reach).map_err(|r| GatewayError::Refused(r.detail))?;
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
            .map_err(|e| match refusal_in(&e) {
                Some(r) => GatewayError::Refused(r.detail.clone()),
                None => GatewayError::Failed(e.to_string()),
            })
    }
}
