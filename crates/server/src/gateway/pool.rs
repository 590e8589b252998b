//! Kept-alive connections to plain-HTTP upstreams, for the hand-written
//! forwarding path: one pool per worker thread (its sockets belong to that
//! thread's runtime), keyed by the upstream's `host:port`.

use std::collections::HashMap;

use fal_store::AppRecord;

use super::reach::ReachPolicy;
use crate::addresses::{AddressClass, classify};
use crate::h1::target::UpstreamParts;
use crate::metrics::PoolMetrics;

/// Idle connections kept per upstream authority.
pub const MAX_IDLE_PER_UPSTREAM: usize = 1024;

/// An idle-able HTTP/1.1 connection to a plain-HTTP upstream.
pub struct UpConn {
    /// The socket.
    pub stream: tokio::net::TcpStream,
    /// Bytes read from it and not yet used (a response head being parsed,
    /// the start of its body). Empty while the connection is idle.
    pub buf: Vec<u8>,
    /// Whether its peer is not a global address: reused only for apps
    /// whose owner may reach internal addresses.
    internal: bool,
}

impl UpConn {
    /// Connects to `upstream` for `app`, only on addresses its owner may
    /// use (see [`super::reach`]); a refusal carries a
    /// [`crate::addresses::Refusal`].
    pub async fn connect(
        upstream: &UpstreamParts<'_>,
        policy: &ReachPolicy,
        app: &AppRecord,
    ) -> std::io::Result<UpConn> {
        let addrs = policy
            .resolve_for(app, upstream.host, upstream.port)
            .await?;
        let stream = tokio::net::TcpStream::connect(&addrs[..]).await?;
        stream.set_nodelay(true)?;
        let internal = stream
            .peer_addr()
            .map_or(true, |a| classify(a.ip()) != AddressClass::Global);
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

/// Idle connections by upstream authority, most recently used last.
/// Looked up twice per model call, so with a fast hasher: the keys are the
/// operator's upstream addresses, not an attacker's choice.
#[derive(Default)]
pub struct Pool {
    /// `host:port` → idle connections.
    idle: std::sync::Mutex<HashMap<String, Vec<UpConn>, foldhash::fast::RandomState>>,
    /// Connections idle, opened and reused, for `/metrics`.
    metrics: PoolMetrics,
}

impl Pool {
    /// An empty pool that counts into `metrics`.
    pub fn new(metrics: PoolMetrics) -> Pool {
        Pool {
            idle: Default::default(),
            metrics,
        }
    }

    /// A new connection to `upstream` for `app` ([`UpConn::connect`]),
    /// counted.
    pub async fn connect(
        &self,
        upstream: &UpstreamParts<'_>,
        policy: &ReachPolicy,
        app: &AppRecord,
    ) -> std::io::Result<UpConn> {
        let conn = UpConn::connect(upstream, policy, app).await?;
        self.metrics.opened.inc();
        Ok(conn)
    }

    /// An idle connection to `authority` that still looks usable; closed
    /// ones found on the way are dropped.
    pub fn take(&self, authority: &str) -> Option<UpConn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(authority)?;
        while let Some(conn) = list.pop() {
            self.metrics.idle.add(-1);
            if conn.looks_alive() {
                return Some(conn);
            }
        }
        None
    }

    /// [`Self::take`] for `app`: a kept connection to an internal address
    /// only when `app` may reach one (the pool is keyed by authority, which
    /// apps of different owners may share).
    pub async fn take_for(
        &self,
        authority: &str,
        policy: &ReachPolicy,
        app: &AppRecord,
    ) -> Option<UpConn> {
        let conn = self.take(authority)?;
        if conn.internal && !policy.reach_of(app).await.internal {
            return None;
        }
        self.metrics.reused.inc();
        Some(conn)
    }

    /// Keeps `conn` for the next request to `authority` (its last response
    /// was read to the end and nothing followed it).
    pub fn put_back(&self, authority: &str, mut conn: UpConn) {
        conn.buf.clear();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        match idle.get_mut(authority) {
            Some(list) if list.len() < MAX_IDLE_PER_UPSTREAM => list.push(conn),
            Some(_) => return,
            None => {
                idle.insert(authority.to_owned(), vec![conn]);
            }
        }
        self.metrics.idle.add(1);
    }
}

impl Drop for Pool {
    /// The idle connections close with the pool (a worker that stops).
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(|p| p.into_inner());
        let n: usize = idle.values().map(Vec::len).sum();
        self.metrics.idle.add(-i64::try_from(n).unwrap_or(i64::MAX));
    }
}
