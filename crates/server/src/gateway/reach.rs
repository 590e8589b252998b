//! Applies [`crate::addresses`] where upstream addresses are chosen: after
//! name resolution at registration, and at every new connection (so a name
//! that later resolves inside is refused too), on both forwarding paths.

use std::error::Error;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use fal_store::AppRecord;
use hyper_util::client::legacy::connect::dns::Name;

use crate::addresses::{Reach, Refusal, check};
use crate::operators::Operators;

/// Which addresses apps' upstreams may be on: who the operators are (their
/// apps may reach internal addresses) and whether cloud-metadata addresses
/// are allowed to them (`--allow-metadata-upstreams`).
#[derive(Clone)]
pub struct ReachPolicy {
    /// Who the operators are.
    operators: Arc<Operators>,
    /// `--allow-metadata-upstreams`.
    allow_metadata: bool,
}

impl ReachPolicy {
    /// The policy for these operators.
    pub fn new(operators: Arc<Operators>, allow_metadata: bool) -> ReachPolicy {
        ReachPolicy {
            operators,
            allow_metadata,
        }
    }

    /// Whether operators may use cloud-metadata addresses.
    pub fn allow_metadata(&self) -> bool {
        self.allow_metadata
    }

    /// The reach of `app`'s connections: internal addresses only when its
    /// owner is an operator now (a failed lookup counts as "not").
    pub async fn reach_of(&self, app: &AppRecord) -> Reach {
        self.reach_of_user(&app.created_by).await
    }

    /// The reach of connections made for `user` (an app's owner, or whoever
    /// asked for a webhook): internal addresses only for an operator now.
    pub async fn reach_of_user(&self, user: &fal_core::UserId) -> Reach {
        let internal = match self.operators.is_operator(user).await {
            Ok(yes) => yes,
            Err(e) => {
                tracing::warn!(error = %e, "could not tell whether an app's owner is an operator");
                false
            }
        };
        Reach {
            internal,
            metadata: self.allow_metadata,
        }
    }

    /// The addresses `app`'s upstream `host:port` may be connected to now.
    /// Global addresses need no more; others ask whether the app's owner is
    /// an operator (cached), so a loopback upstream of an operator's app
    /// costs no query per connection.
    pub async fn resolve_for(
        &self,
        app: &AppRecord,
        host: &str,
        port: u16,
    ) -> std::io::Result<Vec<SocketAddr>> {
        let open = Reach {
            internal: false,
            metadata: false,
        };
        let addrs = resolve(
            host,
            port,
            Reach {
                internal: true,
                metadata: true,
            },
        )
        .await?;
        if addrs.iter().all(|a| check(a.ip(), open).is_ok()) {
            return Ok(addrs);
        }
        allowed(addrs, self.reach_of(app).await).map_err(std::io::Error::other)
    }
}

/// Keeps the addresses `reach` allows; when none is left, the refusal of
/// the first one.
pub fn allowed(
    addrs: impl IntoIterator<Item = SocketAddr>,
    reach: Reach,
) -> Result<Vec<SocketAddr>, Refusal> {
    let mut first = None;
    let mut ok = Vec::new();
    for a in addrs {
        match check(a.ip(), reach) {
            Ok(()) => ok.push(a),
            Err(r) => {
                first.get_or_insert(r);
            }
        }
    }
    match (ok.is_empty(), first) {
        (true, Some(r)) => Err(r),
        _ => Ok(ok),
    }
}

/// Resolves `host:port` and keeps the addresses `reach` allows. A refusal
/// is an `io::Error` carrying the [`Refusal`] (see [`refusal_in`]).
pub async fn resolve(host: &str, port: u16, reach: Reach) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port)).await?.collect(),
    };
    allowed(addrs, reach).map_err(std::io::Error::other)
}

/// The [`Refusal`] somewhere in an error's chain, if that is why it failed.
pub fn refusal_in<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a Refusal> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refusal>() {
            return Some(r);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<Refusal>())
        {
            return Some(inner);
        }
        cur = err.source();
    }
    None
}

/// hyper's resolver for upstream names, keeping only allowed addresses.
/// (hyper connects to IP literals without asking a resolver: those are
/// checked before the request is sent, in `gateway::forward`.)
#[derive(Clone, Copy, Debug)]
pub struct GuardedResolver {
    /// What connections through this resolver may reach.
    pub reach: Reach,
}

type Resolving = Pin<
    Box<
        dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, Box<dyn Error + Send + Sync>>>
            + Send,
    >,
>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn Error + Send + Sync>;
    type Future = Resolving;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Resolving {
        let reach = self.reach;
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((name.as_str(), 0)).await?;
            match allowed(addrs, reach) {
                Ok(v) => Ok(v.into_iter()),
                Err(r) => Err(Box::new(r) as Box<dyn Error + Send + Sync>),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_found_through_io_errors() {
        let reach = Reach {
            internal: false,
            metadata: false,
        };
        let addrs = [
            "10.0.0.1:80".parse().unwrap(),
            "8.8.8.8:80".parse().unwrap(),
        ];
        // A name that resolves both inside and outside: only the outside is used.
        assert_eq!(allowed(addrs, reach).unwrap(), vec![addrs[1]]);
        let err = allowed([addrs[0]], reach)
            .map_err(std::io::Error::other)
            .unwrap_err();
        let r = refusal_in(&err).unwrap();
        assert!(r.detail.contains("private"), "{}", r.detail);
        assert!(allowed([], reach).unwrap().is_empty());
    }
}
