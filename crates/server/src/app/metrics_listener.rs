//! `--metrics-listen`: `/metrics` without credentials on an address of its
//! own (a private one, that only the scraper reaches), served by a task
//! beside the server's other background tasks.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::{App, StartError};

impl App {
    /// Binds `--metrics-listen`, when given (a failure stops the start, as
    /// for the main address).
    pub(super) async fn bind_metrics(&self) -> Result<Option<TcpListener>, StartError> {
        let Some(addr) = self.config.metrics_listen else {
            return Ok(None);
        };
        let bind_err = |source| StartError::Bind { addr, source };
        Ok(Some(TcpListener::bind(addr).await.map_err(bind_err)?))
    }

    /// Serves `/metrics` on `listener` until the task is aborted.
    pub(super) fn serve_metrics(&self, listener: TcpListener) -> JoinHandle<()> {
        let router = crate::api::metrics::open_router(self.state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        })
    }
}

/// Where a bound listener listens (`None`: not known).
pub(super) fn local(listener: &Option<TcpListener>) -> Option<SocketAddr> {
    listener.as_ref().and_then(|l| l.local_addr().ok())
}
