//! The listening sockets of one server: one per worker, all on one port.
//!
//! The workers share the port through `SO_REUSEPORT`, and the kernel spreads
//! connections over them. But `SO_REUSEPORT` lets *any* socket of the same
//! user join the group: a second `fal serve` on the same address (another
//! data directory, or plain HTTP beside TLS) would start without complaint
//! and take about half the connections.
//!
//! So the first socket binds and listens *without* `SO_REUSEPORT`: the kernel
//! then refuses the address to anyone else already listening there, and a
//! later socket that does not ask for `SO_REUSEPORT` cannot listen beside
//! it. Only once it listens is `SO_REUSEPORT` turned on, so this server's
//! other workers can join it (the kernel checks the flag of the sockets
//! already there when a new one binds and listens). Every `fal serve` opens
//! its first socket the same way, so a second one fails with "address
//! already in use" whether it starts later or at the same instant: of two
//! first sockets only one can be listening.
//!
//! Rejected: a probe bind before binding the group leaves a window in which
//! two servers starting together both pass; one socket shared by all
//! workers loses the kernel's spreading of connections.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel keeps per socket.
const BACKLOG: i32 = 4096;

/// Binds `workers` (at least one) listeners on `addr`, all on the same
/// port (the one the kernel chose when `addr`'s port is 0). Fails with
/// [`io::ErrorKind::AddrInUse`] when another process serves the address.
pub(crate) fn bind_workers(
    addr: SocketAddr,
    workers: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let first = new_socket(addr)?;
    first.bind(&addr.into())?;
    first.listen(BACKLOG)?;
    #[cfg(unix)]
    first.set_reuse_port(true)?;
    let local = first
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("the listener has no IP address"))?;
    let mut listeners = vec![std::net::TcpListener::from(first)];
    for _ in 1..workers.max(1) {
        let socket = new_socket(local)?;
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        socket.bind(&local.into())?;
        socket.listen(BACKLOG)?;
        listeners.push(socket.into());
    }
    Ok(listeners)
}

/// A non-blocking TCP socket for `addr`'s family, with `SO_REUSEADDR` (a
/// restart need not wait for the last run's connections in TIME_WAIT).
fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn all_workers_share_the_port_chosen_for_port_zero() {
        let listeners = bind_workers(loopback(), 4).unwrap();
        assert_eq!(listeners.len(), 4);
        let port = listeners[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        for l in &listeners {
            assert_eq!(l.local_addr().unwrap().port(), port);
        }
    }

    #[test]
    fn a_second_server_on_the_address_is_refused() {
        let first = bind_workers(loopback(), 3).unwrap();
        let addr = first[0].local_addr().unwrap();
        for workers in [1, 3] {
            let err = bind_workers(addr, workers).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        }
        // A plain listener (another program) is refused too.
        assert_eq!(
            std::net::TcpListener::bind(addr).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        drop(first);
        // Once the first server is gone, the address is free again.
        assert_eq!(bind_workers(addr, 2).unwrap().len(), 2);
    }

    #[test]
    fn an_address_another_program_listens_on_is_refused() {
        let other = std::net::TcpListener::bind(loopback()).unwrap();
        let err = bind_workers(other.local_addr().unwrap(), 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn of_servers_starting_together_exactly_one_gets_the_address() {
        for _ in 0..20 {
            let port = std::net::TcpListener::bind(loopback())
                .unwrap()
                .local_addr()
                .unwrap();
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
            let starts: Vec<_> = (0..4)
                .map(|_| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        bind_workers(port, 2)
                    })
                })
                .collect();
            let results: Vec<_> = starts.into_iter().map(|t| t.join().unwrap()).collect();
            let won = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(won, 1, "{results:?}");
        }
    }
}
