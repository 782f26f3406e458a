//! IP networks in CIDR notation, for the trusted-proxy setting and client addresses.
use std::net::IpAddr;

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `::1/128`; a bare address is /32 or
/// /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Self { net, bits })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
            let (full, rest) = ((bits / 8) as usize, bits % 8);
            a[..full] == b[..full]
                && (rest == 0 || (a[full] ^ b[full]) & (0xffu8 << (8 - rest)) == 0)
        }
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(i)) => prefix(&n.octets(), &i.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(i)) => prefix(&n.octets(), &i.octets(), self.bits),
            _ => false,
        }
    }
}

/// `::ffff:1.2.3.4` is 1.2.3.4 (dual-stack listeners report IPv4 peers that way).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
