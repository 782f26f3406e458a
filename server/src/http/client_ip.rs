//! Who is on the other end: the TCP peer, or — when the peer is one of the platform's own reverse
//! proxies (`TRYTHIS_TRUSTED_PROXIES`) — the rightmost address in `X-Forwarded-For` that is not
//! one of them. A client can prepend anything to that header; only hops our proxies appended
//! are believed. Rate limits key on this address.
use crate::cidr::{canonical, Cidr};
use crate::http::state::AppState;
use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{request::Parts, Extensions, HeaderMap},
};
use std::net::{IpAddr, SocketAddr};

/// The client's address for `peer` and the `X-Forwarded-For` values, given the trusted proxies.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let trusted_ip = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !trusted_ip(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted_ip(canonical(ip)) => continue,
            Ok(ip) => return canonical(ip),
            // A hop that is not an address was written by someone we do not trust.
            Err(_) => return peer,
        }
    }
    peer
}

/// The client address of a request (see the module comment).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(of_request(
            &parts.extensions,
            &parts.headers,
            &st.config.trusted_proxies,
        )))
    }
}

/// The client address from a request's connection info and headers.
pub fn of_request(extensions: &Extensions, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    client_address(peer, &forwarded, trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter()
            .map(|c| c.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn networks_match_by_prefix() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        let c: Cidr = "172.16.0.0/12".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(c.contains(ip("172.31.0.1")) && !c.contains(ip("172.32.0.1")));
        assert!(cidrs(&["::1"])[0].contains(ip("::1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy".parse::<Cidr>().is_err());
    }

    #[test]
    fn only_hops_our_proxies_appended_are_believed() {
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        // Not from a trusted proxy: the header is the client's own words.
        assert_eq!(
            client_address(ip("198.51.100.7"), &["203.0.113.1"], &trusted),
            ip("198.51.100.7")
        );
        // Client → proxy (10.0.0.2) → our edge proxy (127.0.0.1): the rightmost untrusted hop.
        assert_eq!(
            client_address(
                ip("127.0.0.1"),
                &["6.6.6.6, 198.51.100.7, 10.0.0.2"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Two headers are one list.
        assert_eq!(
            client_address(ip("127.0.0.1"), &["6.6.6.6", "198.51.100.8"], &trusted),
            ip("198.51.100.8")
        );
        // Garbage where an address should be: fall back to the proxy itself.
        assert_eq!(
            client_address(ip("127.0.0.1"), &["198.51.100.7, junk"], &trusted),
            ip("127.0.0.1")
        );
        // No trusted proxies configured: the peer, always.
        assert_eq!(
            client_address(ip("127.0.0.1"), &["198.51.100.7"], &[]),
            ip("127.0.0.1")
        );
    }
}
