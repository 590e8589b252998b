//! Which addresses an app's upstream may be on: a pure classification of IP
//! addresses, and the rule applied to it at registration and at connect time.
//!
//! - Global addresses: anyone.
//! - Internal ones (loopback, private, unique-local, link-local, shared
//!   CGNAT space, unspecified, multicast, documentation, benchmarking and
//!   other reserved ranges, including IPv4 addresses embedded in IPv6
//!   forms such as `::ffff:127.0.0.1`): only apps of operators.
//! - Cloud-metadata addresses (`169.254.169.254`, `fd00:ec2::254`,
//!   `100.100.100.200`, …): nobody, unless the server runs with
//!   `--allow-metadata-upstreams`, and then operators only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What kind of address an upstream is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Reachable on the public internet.
    Global,
    /// Inside some network (the text names which kind, for messages).
    Internal(&'static str),
    /// A cloud provider's instance-metadata service.
    Metadata,
}

/// IPv4 metadata services: AWS/GCP/Azure/Oracle/DigitalOcean, AWS ECS task
/// metadata, EKS pod identity, Alibaba, Tencent, Oracle's old address.
const METADATA_V4: [Ipv4Addr; 6] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 170, 23),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(169, 254, 0, 23),
    Ipv4Addr::new(192, 0, 0, 192),
];

/// IPv6 metadata services (AWS's IMDS and EKS pod identity).
const METADATA_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
    Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),
];

/// Classifies an address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::{Global, Internal, Metadata};
    if METADATA_V4.contains(&ip) {
        return Metadata;
    }
    let ranges: [([u8; 4], u32, &'static str); 16] = [
        ([0, 0, 0, 0], 8, "an unspecified (\"this network\") address"),
        ([10, 0, 0, 0], 8, "a private address"),
        ([100, 64, 0, 0], 10, "a shared (CGNAT) address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([169, 254, 0, 0], 16, "a link-local address"),
        ([172, 16, 0, 0], 12, "a private address"),
        ([192, 0, 0, 0], 24, "a reserved (IETF) address"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 88, 99, 0], 24, "a reserved (6to4 relay) address"),
        ([192, 168, 0, 0], 16, "a private address"),
        ([198, 18, 0, 0], 15, "a benchmarking address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([240, 0, 0, 0], 4, "a reserved address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
    ];
    ranges
        .iter()
        .find(|(net, bits, _)| in_v4(ip, *net, *bits))
        .map_or(Global, |(_, _, what)| Internal(what))
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::{Global, Internal, Metadata};
    if METADATA_V6.contains(&ip) {
        return Metadata;
    }
    let s = ip.segments();
    let embedded = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if ip.is_unspecified() {
        return Internal("an unspecified address");
    }
    if ip.is_loopback() {
        return Internal("a loopback address");
    }
    // ::ffff:a.b.c.d (mapped) and 64:ff9b::a.b.c.d (NAT64) reach the IPv4
    // address they carry.
    if s[..6] == [0, 0, 0, 0, 0, 0xffff] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(embedded());
    }
    // 6to4 (2002:AABB:CCDD::/48) reaches AA.BB.CC.DD.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return classify_v4(v4);
    }
    match s[0] {
        0xfc00..=0xfdff => Internal("a unique-local (private) address"),
        0xfe80..=0xfebf => Internal("a link-local address"),
        0xfec0..=0xfeff => Internal("a site-local address"),
        0xff00..=0xffff => Internal("a multicast address"),
        // 2001::/23 (Teredo, ORCHID, other IETF assignments), 2001:db8::/32
        // and 3fff::/20 (documentation).
        0x2001 if s[1] < 0x0200 => Internal("a reserved (IETF) address"),
        0x2001 if s[1] == 0x0db8 => Internal("a documentation address"),
        0x3fff if s[1] < 0x1000 => Internal("a documentation address"),
        // Global unicast is 2000::/3; everything else is reserved
        // (IPv4-compatible ::a.b.c.d, 100::/64 discard, 64:ff9b:1::/48, …).
        0x2000..=0x3fff => Global,
        _ => Internal("a reserved address"),
    }
}

/// Whom an upstream connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// The app's owner is an operator: internal addresses are allowed.
    pub internal: bool,
    /// `--allow-metadata-upstreams`: metadata addresses count as internal
    /// instead of being refused for everyone.
    pub metadata: bool,
}

/// Why an address may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Refusal {
    /// The address.
    pub ip: IpAddr,
    /// The sentence for the caller.
    pub detail: String,
}

/// Applies the rule: `Ok` when `ip` may be used with `reach`.
pub fn check(ip: IpAddr, reach: Reach) -> Result<(), Refusal> {
    let refuse = |detail: String| Err(Refusal { ip, detail });
    match classify(ip) {
        AddressClass::Global => Ok(()),
        AddressClass::Metadata if !reach.metadata => refuse(format!(
            "{ip} is a cloud metadata address: no app may use it unless the server runs with \
             --allow-metadata-upstreams"
        )),
        AddressClass::Metadata if !reach.internal => refuse(format!(
            "{ip} is a cloud metadata address: only operators' apps may use it"
        )),
        AddressClass::Internal(what) if !reach.internal => refuse(format!(
            "{ip} is {what}: only operators' apps may use loopback, private, link-local or \
             other internal addresses"
        )),
        AddressClass::Metadata | AddressClass::Internal(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> AddressClass {
        classify(s.parse().unwrap())
    }

    #[test]
    fn global_addresses() {
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "169.253.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860:4860::8888",
        ] {
            assert_eq!(class(ip), AddressClass::Global, "{ip}");
        }
    }

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.5",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.1.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
        ] {
            assert!(
                matches!(class(ip), AddressClass::Internal(_)),
                "{ip}: {:?}",
                class(ip)
            );
        }
    }

    #[test]
    fn metadata_addresses() {
        for ip in [
            "169.254.169.254",
            "169.254.170.2",
            "169.254.170.23",
            "100.100.100.200",
            "169.254.0.23",
            "192.0.0.192",
            "fd00:ec2::254",
            "fd00:ec2::23",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert_eq!(class(ip), AddressClass::Metadata, "{ip}");
        }
    }

    #[test]
    fn the_rule_by_reach() {
        let user = Reach {
            internal: false,
            metadata: false,
        };
        let operator = Reach {
            internal: true,
            metadata: false,
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(check(ip("8.8.8.8"), user).is_ok());
        let r = check(ip("::ffff:127.0.0.1"), user).unwrap_err();
        assert!(r.detail.contains("loopback"), "{}", r.detail);
        assert!(r.detail.contains("operators"), "{}", r.detail);
        assert!(check(ip("127.0.0.1"), operator).is_ok());
        assert!(check(ip("[::]".trim_matches(['[', ']'])), operator).is_ok());
        // Metadata: nobody by default, operators only when allowed.
        for reach in [user, operator] {
            let r = check(ip("169.254.169.254"), reach).unwrap_err();
            assert!(r.detail.contains("--allow-metadata-upstreams"));
        }
        let allowed = |internal| Reach {
            internal,
            metadata: true,
        };
        assert!(check(ip("fd00:ec2::254"), allowed(true)).is_ok());
        assert!(check(ip("fd00:ec2::254"), allowed(false)).is_err());
    }
}
