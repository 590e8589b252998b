//! The per-connection loop: reads request heads, lets [`super::forward`]
//! decide each one's path, and gives the connection to hyper and the
//! router when the hand-written path does not take a request.

use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tower_service::Service;

use super::body::write_response;
use super::forward::{Prepared, log_request};
use super::rewind::Rewind;
use super::{Conn, ConnTimer, READ_ROOM};
use crate::h1::MAX_HEAD;

impl Conn {
    /// Serves requests on `io` until the client closes, asks to close, the
    /// server stops, or the connection is handed to hyper.
    pub(super) async fn serve<IO>(self, mut io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut buf: Vec<u8> = Vec::with_capacity(READ_ROOM);
        let mut req_out: Vec<u8> = Vec::with_capacity(4096);
        let mut resp_out: Vec<u8> = Vec::with_capacity(READ_ROOM);
        // Times the wait for each request head and each upstream exchange.
        let mut timer = ConnTimer::default();
        // Ends an idle wait when the server stops. Made once: registering
        // a fresh waiter for every request head costs more than polling
        // the same one again.
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopped);
        loop {
            // The next head must be here by then (it shares the timer with
            // upstream exchanges; see `forward`).
            let head_deadline = tokio::time::Instant::now() + self.idle_timeout;
            let prepared = loop {
                if !buf.is_empty() {
                    match self.prepare(&buf, &mut req_out).await {
                        Some(p) => break p,
                        None if buf.len() > MAX_HEAD => break Prepared::HandOff,
                        None => {}
                    }
                }
                if buf.capacity() - buf.len() < READ_ROOM / 4 {
                    buf.reserve(READ_ROOM);
                }
                let idle = buf.is_empty();
                let read = tokio::select! {
                    biased;
                    read = io.read_buf(&mut buf) => read,
                    () = &mut stopped, if idle => return,
                    // Idle too long, or too slow a head.
                    () = timer.reached(head_deadline) => return,
                };
                match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            };
            let next = match prepared {
                Prepared::HandOff => return self.hand_off(io, buf).await,
                Prepared::Answer {
                    response,
                    head_len,
                    body,
                    log,
                    close,
                    head_method,
                } => {
                    // The body can be skipped only if it is all here.
                    let skip = body.all_in(buf.len() - head_len);
                    let close = close || skip.is_none() || *self.stop.borrow();
                    let status = response.status().as_u16();
                    if write_response(&mut io, &mut resp_out, response, close, head_method)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    log_request(&log, status);
                    if let Some(n) = skip {
                        buf.drain(..head_len + n);
                    }
                    !close
                }
                Prepared::Forward(f) => {
                    self.forward(
                        &mut io,
                        &mut buf,
                        &mut req_out,
                        &mut resp_out,
                        &mut timer,
                        f,
                    )
                    .await
                }
            };
            if !next {
                return;
            }
        }
    }

    /// Gives the connection to hyper and the router, `read` first.
    async fn hand_off<IO>(self, io: IO, read: Vec<u8>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(Rewind {
            read,
            pos: 0,
            inner: io,
        });
        // Each request learns the connection's peer, as axum's own
        // `serve` would tell it (`ConnectInfo`): the router's failed-auth
        // throttling needs it.
        let router = self.router.clone();
        let peer = ConnectInfo(self.peer);
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(peer);
            router.clone().call(req)
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.idle_timeout);
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let mut stop = self.stop.clone();
        let mut stopping = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
