//! Who the client is: the TCP peer, or, behind a trusted proxy, the
//! right-most `X-Forwarded-For` entry that is not a trusted proxy itself.
//! And which addresses count as one client: an IPv4 address, or an IPv6
//! /64 (what one customer line or host is usually given).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The header proxies name the client in (believed only from
/// [`TrustedProxies`]).
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one
/// address (a `/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network's address, host bits cleared.
    net: IpAddr,
    /// The prefix length.
    prefix: u8,
}

/// A CIDR that does not parse; says what was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address or a CIDR network (e.g. 10.0.0.0/8, 127.0.0.1, fd00::/8)")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Cidr, BadCidr> {
        let bad = || BadCidr(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Cidr {
            net: mask(addr, prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Cidr {
    /// Whether `addr` is in this network (IPv4-mapped IPv6 addresses count
    /// as their IPv4 address).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        addr.is_ipv4() == self.net.is_ipv4() && mask(addr, self.prefix) == self.net
    }
}

/// `addr` with all but its first `prefix` bits cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & keep))
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & keep))
        }
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// These networks.
    pub fn new(networks: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    /// Whether `addr` is one of them.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(addr))
    }

    /// The client behind a connection from `peer` whose request carried
    /// these `X-Forwarded-For` header values (in order). From an untrusted
    /// peer the header is ignored: anyone can write it. From a trusted one,
    /// the entries are read right to left (each proxy appends the address
    /// it saw), skipping trusted proxies: the first other address is the
    /// client. An entry that is not an address stops the walk at the last
    /// address known good; if every entry is a trusted proxy, the left-most.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in forwarded.rev() {
            for entry in value.rsplit(|&b| b == b',') {
                let Some(addr) = parse_entry(entry) else {
                    return client;
                };
                client = addr;
                if !self.trusts(addr) {
                    return addr;
                }
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, with spaces around it, IPv6
/// perhaps in brackets, perhaps with a port (`[2001:db8::1]:443`,
/// `192.0.2.1:80`).
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(a.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside
            .parse::<Ipv6Addr>()
            .ok()
            .map(|a| IpAddr::V6(a).to_canonical());
    }
    let (host, port) = s.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The unit failures are counted by: one IPv4 address, or one IPv6 /64
/// (one host can pick any of 2^64 addresses in its /64, so counting
/// single IPv6 addresses would count nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address (IPv4-mapped IPv6 addresses included).
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl ClientKey {
    /// The key `addr` counts under.
    pub fn of(addr: IpAddr) -> ClientKey {
        match addr.to_canonical() {
            IpAddr::V4(a) => ClientKey::V4(u32::from(a)),
            IpAddr::V6(a) => ClientKey::V6((u128::from(a) >> 64) as u64),
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::V4(a) => write!(f, "{}", Ipv4Addr::from(*a)),
            ClientKey::V6(p) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*p) << 64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|c| c.parse().unwrap()).collect())
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")) && !all.contains(ip("::1")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "::/129",
            "host/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let t = proxies(&["127.0.0.1/32"]);
        let spoof = [b"10.6.6.6".as_slice()];
        assert_eq!(
            t.client(ip("192.0.2.9"), spoof.into_iter()),
            ip("192.0.2.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("127.0.0.1"), spoof.into_iter()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_entry() {
        let t = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        let one = |v: &'static str| t.client(peer, [v.as_bytes()].into_iter());
        assert_eq!(one("203.0.113.7"), ip("203.0.113.7"));
        // A client that writes its own header cannot pick its address.
        assert_eq!(one("1.1.1.1, 203.0.113.7, 10.0.0.2"), ip("203.0.113.7"));
        assert_eq!(one(" [2001:db8::1]:443 "), ip("2001:db8::1"));
        assert_eq!(one("198.51.100.2:8080"), ip("198.51.100.2"));
        // Garbage stops the walk at the last good hop.
        assert_eq!(one("203.0.113.7, junk, 10.0.0.2"), ip("10.0.0.2"));
        assert_eq!(one("junk"), peer);
        // Only proxies: the left-most.
        assert_eq!(one("10.0.0.3, 10.0.0.2"), ip("10.0.0.3"));
        // Several header lines read as one list, in order.
        let two = [b"203.0.113.7".as_slice(), b"10.0.0.9".as_slice()];
        assert_eq!(t.client(peer, two.into_iter()), ip("203.0.113.7"));
        assert_eq!(t.client(peer, std::iter::empty()), peer);
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:1.2.3.4")),
            ClientKey::of(ip("1.2.3.4"))
        );
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(ClientKey::of(ip("1.2.3.4")).to_string(), "1.2.3.4");
    }
}
