//! Which destination addresses a build may never reach.
//!
//! `IpAddr::is_global` is unstable, and the std predicates that are stable miss ranges that matter
//! here (CGNAT, benchmarking, addresses embedded in IPv6), so the ranges are spelled out.
//! Documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32) are deliberately
//! allowed: some networks, this development machine's included, hand out such addresses for real
//! upstream proxies.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

pub(crate) const UNSPECIFIED: &str = "an unspecified address";
pub(crate) const THIS_NETWORK: &str = "a 'this network' (0.0.0.0/8) address";
pub(crate) const PRIVATE: &str = "a private address";
pub(crate) const SHARED: &str = "a shared (carrier-grade NAT) address";
pub(crate) const LOOPBACK: &str = "a loopback address";
pub(crate) const LINK_LOCAL: &str = "a link-local address";
pub(crate) const PROTOCOL: &str = "an IETF protocol assignment (192.0.0.0/24) address";
pub(crate) const BENCHMARK: &str = "a benchmarking (198.18.0.0/15) address";
pub(crate) const MULTICAST: &str = "a multicast address";
pub(crate) const RESERVED: &str = "a reserved (240.0.0.0/4) address";
pub(crate) const BROADCAST: &str = "a broadcast address";
pub(crate) const SITE_LOCAL: &str = "a site-local address";
pub(crate) const OWN: &str = "this host's own address";

/// IPv4 ranges, most specific first where they overlap (255.255.255.255 lies inside 240/4).
const V4_RANGES: &[([u8; 4], u32, &str)] = &[
    ([255, 255, 255, 255], 32, BROADCAST),
    ([0, 0, 0, 0], 32, UNSPECIFIED),
    ([0, 0, 0, 0], 8, THIS_NETWORK),
    ([10, 0, 0, 0], 8, PRIVATE),
    ([100, 64, 0, 0], 10, SHARED),
    ([127, 0, 0, 0], 8, LOOPBACK),
    ([169, 254, 0, 0], 16, LINK_LOCAL),
    ([172, 16, 0, 0], 12, PRIVATE),
    ([192, 0, 0, 0], 24, PROTOCOL),
    ([192, 168, 0, 0], 16, PRIVATE),
    ([198, 18, 0, 0], 15, BENCHMARK),
    ([224, 0, 0, 0], 4, MULTICAST),
    ([240, 0, 0, 0], 4, RESERVED),
];

/// Why `ip` must not be reached, as a noun phrase ("a loopback address"), or `None` if it may.
///
/// Besides the fixed ranges this refuses any address the proxy host itself owns: a public address
/// on the host's own interface would otherwise let a build talk to services listening on it.
pub(crate) fn forbidden(ip: IpAddr) -> Option<&'static str> {
    if let Some(class) = special_range(ip) {
        return Some(class);
    }
    let mapped = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    if is_own_address(ip) || mapped.is_some_and(is_own_address) {
        return Some(OWN);
    }
    None
}

/// The fixed, host-independent part of [`forbidden`].
pub(crate) fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let n = u32::from(ip);
    V4_RANGES.iter().find_map(|&(net, bits, class)| {
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        (n & mask == u32::from(Ipv4Addr::from(net)) & mask).then_some(class)
    })
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some(UNSPECIFIED);
    }
    if ip.is_loopback() {
        return Some(LOOPBACK);
    }
    // Addresses that carry an IPv4 address are judged by it: ::ffff:127.0.0.1 reaches 127.0.0.1.
    if let Some(v4) = embedded_v4(ip) {
        return v4_class(v4);
    }
    let first = ip.segments()[0];
    if first & 0xfe00 == 0xfc00 {
        return Some(PRIVATE);
    }
    if first & 0xffc0 == 0xfe80 {
        return Some(LINK_LOCAL);
    }
    if first & 0xffc0 == 0xfec0 {
        return Some(SITE_LOCAL);
    }
    if first & 0xff00 == 0xff00 {
        return Some(MULTICAST);
    }
    None
}

/// The IPv4 address inside IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96), NAT64
/// (64:ff9b::/96 and the local-use 64:ff9b:1::/48) and 6to4 (2002::/16) addresses: each can end up
/// delivered to that IPv4 address by this host's stack or a translator on its network.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 1, ..] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

/// Binding succeeds only for addresses configured on this host, which is exactly the question.
/// Deliberately uncached: interfaces change, and a bind is one cheap syscall.
pub(crate) fn is_own_address(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<&'static str> {
        special_range(s.parse().expect("test address"))
    }

    #[test]
    fn ipv4_ranges() {
        let cases = [
            ("0.0.0.0", Some(UNSPECIFIED)),
            ("0.1.2.3", Some(THIS_NETWORK)),
            ("10.0.0.1", Some(PRIVATE)),
            ("10.255.255.255", Some(PRIVATE)),
            ("100.64.0.1", Some(SHARED)),
            ("100.127.255.254", Some(SHARED)),
            ("100.128.0.1", None),
            ("100.63.255.255", None),
            ("127.0.0.1", Some(LOOPBACK)),
            ("127.255.0.9", Some(LOOPBACK)),
            ("169.254.169.254", Some(LINK_LOCAL)),
            ("169.254.0.1", Some(LINK_LOCAL)),
            ("172.16.0.1", Some(PRIVATE)),
            ("172.31.255.255", Some(PRIVATE)),
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("192.168.1.1", Some(PRIVATE)),
            ("192.0.0.8", Some(PROTOCOL)),
            ("192.0.1.1", None),
            ("198.18.0.1", Some(BENCHMARK)),
            ("198.19.255.255", Some(BENCHMARK)),
            ("198.20.0.0", None),
            ("224.0.0.1", Some(MULTICAST)),
            ("239.255.255.250", Some(MULTICAST)),
            ("240.0.0.1", Some(RESERVED)),
            ("254.1.2.3", Some(RESERVED)),
            ("255.255.255.255", Some(BROADCAST)),
            // Public and documentation addresses are fine.
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("203.0.113.80", None),
            ("192.0.2.1", None),
            ("198.51.100.7", None),
            ("223.255.255.255", None),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        let cases = [
            ("::", Some(UNSPECIFIED)),
            ("::1", Some(LOOPBACK)),
            ("fc00::1", Some(PRIVATE)),
            ("fd12:3456::1", Some(PRIVATE)),
            ("fe80::1", Some(LINK_LOCAL)),
            ("febf::1", Some(LINK_LOCAL)),
            ("fec0::1", Some(SITE_LOCAL)),
            ("ff02::1", Some(MULTICAST)),
            ("ff0e::1", Some(MULTICAST)),
            // Embedded IPv4 is judged as IPv4.
            ("::ffff:127.0.0.1", Some(LOOPBACK)),
            ("::ffff:169.254.169.254", Some(LINK_LOCAL)),
            ("::ffff:10.0.0.1", Some(PRIVATE)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(LOOPBACK)),
            ("::10.1.2.3", Some(PRIVATE)),
            ("64:ff9b::a9fe:a9fe", Some(LINK_LOCAL)),
            ("64:ff9b::808:808", None),
            ("64:ff9b:1::7f00:1", Some(LOOPBACK)),
            ("2002:a01:203::1", Some(PRIVATE)),
            ("2002:808:808::1", None),
            // Public and documentation addresses are fine.
            ("2001:4860:4860::8888", None),
            ("2606:4700::1111", None),
            ("2001:db8::1", None),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn own_addresses_are_detected_by_binding() {
        assert!(is_own_address("127.0.0.1".parse().expect("ip")));
        assert!(!is_own_address("8.8.8.8".parse().expect("ip")));
        assert!(!is_own_address("203.0.113.80".parse().expect("ip")));
        assert_eq!(forbidden("8.8.8.8".parse().expect("ip")), None);
        assert_eq!(forbidden("203.0.113.80".parse().expect("ip")), None);
        assert_eq!(forbidden("127.0.0.1".parse().expect("ip")), Some(LOOPBACK));
    }

    #[test]
    fn a_public_address_of_this_host_is_refused() {
        // Whatever address the default route uses is ours; a UDP "connect" sends nothing.
        let Ok(sock) = UdpSocket::bind("0.0.0.0:0") else {
            return;
        };
        if sock.connect("203.0.113.80:9").is_err() {
            return; // no IPv4 route at all: nothing to test
        }
        let Ok(local) = sock.local_addr() else {
            return;
        };
        let ip = local.ip();
        let want = special_range(ip).unwrap_or(OWN);
        assert_eq!(forbidden(ip), Some(want), "{ip}");
    }
}
