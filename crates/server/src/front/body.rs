//! Bodies pumped through the connection's buffers as they arrive, never
//! held whole: the client's request body to the upstream, the upstream's
//! response head and body back; and our own small answers written whole.

use std::io::{self, Write as _};
use std::time::Duration;

use axum::response::Response;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::READ_ROOM;
use crate::gateway::pool::UpConn;
use crate::h1::response::{self, Parsed, ResponseHead};
use crate::h1::{Chunked, Framing, header_slots, write};

/// How an exchange with an upstream failed.
pub(super) enum Failure {
    /// The client went away: close, no answer.
    Client,
    /// The client broke its body's chunked framing: 400, then close.
    BadBody,
    /// The client's body stalled longer than the body timeout (408, close).
    BodyTimeout,
    /// The upstream could not be reached or broke off (502).
    Upstream(String),
    /// The upstream's address is one this app may not use (502 saying why).
    Refused(String),
}

/// Sends the rest of a request body that was not all in `buf` when the
/// head went out, reading more from the client as needed; a client silent
/// for `pause` is cut off (an inactivity timeout, so that a long upload that
/// keeps moving goes through). Leaves in `buf` whatever follows the body (a
/// pipelined request).
pub(super) async fn send_body<IO>(
    io: &mut IO,
    buf: &mut Vec<u8>,
    up: &mut UpConn,
    framing: Framing,
    pause: Duration,
) -> Result<(), Failure>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunked = Chunked::default();
    let upstream_failed = |e: io::Error| Failure::Upstream(e.to_string());
    loop {
        let (take, pass) = match framing {
            Framing::Length(_) => {
                let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                (n, n)
            }
            Framing::Chunked => chunked.scan(buf).map_err(|_| Failure::BadBody)?,
            Framing::Empty | Framing::UntilClose => return Ok(()),
        };
        if pass > 0 {
            up.stream
                .write_all(&buf[..pass])
                .await
                .map_err(upstream_failed)?;
        }
        buf.drain(..take);
        left = left.saturating_sub(take as u64);
        let done = match framing {
            Framing::Length(_) => left == 0,
            _ => chunked.done(),
        };
        if done {
            if framing == Framing::Chunked {
                // The end of the body, its trailers (if any) left out.
                up.stream
                    .write_all(b"\r\n")
                    .await
                    .map_err(upstream_failed)?;
            }
            return Ok(());
        }
        if buf.capacity() - buf.len() < READ_ROOM / 4 {
            buf.reserve(READ_ROOM);
        }
        match tokio::time::timeout(pause, io.read_buf(buf)).await {
            Err(_) => return Err(Failure::BodyTimeout),
            Ok(Ok(0) | Err(_)) => return Err(Failure::Client),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads the upstream's response head (skipping `1xx` interim answers) and
/// writes the client's version of it into `out`, without the framing
/// headers, which the caller adds (see [`crate::h1::response`]).
pub(super) async fn read_response_head(
    up: &mut UpConn,
    head_method: bool,
    out: &mut Vec<u8>,
) -> Result<ResponseHead, String> {
    loop {
        if !up.buf.is_empty() {
            match response::parse(&up.buf, head_method, &mut header_slots(), out)? {
                Parsed::Final(head) => return Ok(head),
                Parsed::Interim(len) => {
                    up.buf.drain(..len);
                    continue;
                }
                Parsed::Partial => {}
            }
        }
        if up.buf.capacity() - up.buf.len() < READ_ROOM / 4 {
            up.buf.reserve(READ_ROOM);
        }
        match up.stream.read_buf(&mut up.buf).await {
            Ok(0) => return Err("the upstream closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// How sending a response body failed.
pub(super) enum BodyFailure {
    /// Before a byte reached the client (the upstream broke its framing or
    /// closed early): the client can still be answered.
    Unsent(String),
    /// After: closing is all that is left.
    Sent,
}

/// Writes the response head in `out` and the body after it as it arrives
/// from the upstream: as is for a length or chunks (trailers left out),
/// re-chunked when the upstream marks the end by closing. `Ok` once the
/// body has ended.
pub(super) async fn send_response_body<IO>(
    io: &mut IO,
    up: &mut UpConn,
    framing: Framing,
    out: &mut Vec<u8>,
) -> Result<(), BodyFailure>
where
    IO: AsyncWrite + Unpin,
{
    let mut sent = false;
    let result = relay_response_body(io, up, framing, out, &mut sent).await;
    result.map_err(|e| {
        if sent {
            BodyFailure::Sent
        } else {
            BodyFailure::Unsent(e.to_string())
        }
    })
}

/// [`send_response_body`]'s loop; `sent` turns true at the first write.
async fn relay_response_body<IO>(
    io: &mut IO,
    up: &mut UpConn,
    framing: Framing,
    out: &mut Vec<u8>,
    sent: &mut bool,
) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let mut chunked = Chunked::default();
    let mut eof = false;
    loop {
        // Move what the upstream sent (up to the body's end) behind the head.
        let done = match framing {
            Framing::Empty => true,
            Framing::Length(_) => {
                let take = usize::try_from(left).map_or(up.buf.len(), |l| l.min(up.buf.len()));
                out.extend_from_slice(&up.buf[..take]);
                up.buf.drain(..take);
                left -= take as u64;
                left == 0
            }
            Framing::Chunked => {
                let (take, pass) = chunked
                    .scan(&up.buf)
                    .map_err(|_| io::Error::other("bad chunked body from the upstream"))?;
                out.extend_from_slice(&up.buf[..pass]);
                up.buf.drain(..take);
                if chunked.done() {
                    out.extend_from_slice(b"\r\n");
                }
                chunked.done()
            }
            Framing::UntilClose => {
                if !up.buf.is_empty() {
                    let _ = write!(out, "{:x}\r\n", up.buf.len());
                    out.extend_from_slice(&up.buf);
                    out.extend_from_slice(b"\r\n");
                    up.buf.clear();
                }
                if eof {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                eof
            }
        };
        if !out.is_empty() {
            *sent = true;
            io.write_all(out).await?;
            io.flush().await?;
            out.clear();
        }
        if done {
            return Ok(());
        }
        if up.buf.capacity() - up.buf.len() < READ_ROOM / 4 {
            up.buf.reserve(READ_ROOM);
        }
        match up.stream.read_buf(&mut up.buf).await {
            Ok(0) if framing == Framing::UntilClose => eof = true,
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes a whole (small) response made by the router's types: our own
/// answers, errors among them (see [`crate::h1::write::answer`]); to a
/// `HEAD` request (`head_method`), the head only.
pub(super) async fn write_response<IO>(
    io: &mut IO,
    out: &mut Vec<u8>,
    response: Response,
    close: bool,
    head_method: bool,
) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
{
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    write::answer(out, &parts, &body, close, head_method);
    io.write_all(out).await?;
    io.flush().await
}
