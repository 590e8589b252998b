//! The per-connection loop: reads request heads, lets [`super::forward`]
//! decide each one's path, and gives the connection to hyper and the
//! router when the hand-written path does not take a request.

use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tower_service::Service;

use super::idle::{Bufs, ClientIo, GRACE};

use super::body::write_response;
use super::forward::Prepared;
use super::rewind::Rewind;
use super::{Conn, ConnTimer, READ_ROOM};
use crate::h1::MAX_HEAD;

impl Conn {
    /// Serves requests on `io` until the client closes, asks to close, the
    /// server stops, or the connection is handed to hyper.
    pub(super) async fn serve<IO: ClientIo>(self, mut io: IO) {
        // Held while a request is under way (see `super::idle`).
        let mut bufs = Bufs::default();
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
            let now = tokio::time::Instant::now();
            let head_deadline = now + self.idle_timeout;
            // Quiet this long after a request, it gives its buffers back
            // (see `super::idle`).
            let grace_deadline = now + GRACE;
            let prepared = loop {
                if !bufs.read.is_empty() {
                    match self.prepare(&bufs.read, &mut bufs.req_out).await {
                        Some(p) => break p,
                        None if bufs.read.len() > MAX_HEAD => break Prepared::HandOff,
                        None => {}
                    }
                }
                let idle = bufs.read.is_empty();
                let grace = idle && bufs.held();
                if idle && !grace && bufs.read.capacity() == 0 {
                    // Quiet (or new): wait for a request holding nothing.
                    let ready = tokio::select! {
                        biased;
                        ready = std::future::poll_fn(|cx| io.poll_readable(cx)) => ready,
                        () = &mut stopped => return,
                        () = timer.reached(head_deadline) => return,
                    };
                    if ready.is_err() {
                        return;
                    }
                }
                let buf = &mut bufs.read;
                if buf.capacity() - buf.len() < READ_ROOM / 4 {
                    buf.reserve(READ_ROOM);
                }
                let deadline = if grace { grace_deadline } else { head_deadline };
                let read = tokio::select! {
                    biased;
                    read = io.read_buf(buf) => read,
                    () = &mut stopped, if idle => return,
                    // Quiet for the grace, idle too long, or too slow a head.
                    () = timer.reached(deadline) => {
                        if grace {
                            bufs.release(!IO::WAITS_BARE);
                            continue;
                        }
                        return;
                    }
                };
                match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => bufs.take(),
                }
            };
            let next = match prepared {
                Prepared::HandOff => return self.hand_off(io, bufs.into_read()).await,
                Prepared::Answer {
                    response,
                    head_len,
                    body,
                    seen,
                    close,
                    head_method,
                } => {
                    // The body can be skipped only if it is all here.
                    let skip = body.all_in(bufs.read.len() - head_len);
                    let close = close || skip.is_none() || *self.stop.borrow();
                    let status = response.status().as_u16();
                    if write_response(&mut io, &mut bufs.resp_out, response, close, head_method)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    self.done(&seen, status, None);
                    if let Some(n) = skip {
                        bufs.read.drain(..head_len + n);
                    }
                    !close
                }
                Prepared::Forward(f) => {
                    self.forward(
                        &mut io,
                        &mut bufs.read,
                        &mut bufs.req_out,
                        &mut bufs.resp_out,
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
