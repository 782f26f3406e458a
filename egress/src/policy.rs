//! The allow list and the parsing of request targets it is checked against.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What builds and sandboxes may reach through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Host patterns allowed: exact "pypi.org", or "*.debian.org" (any subdomain, and the bare
    /// domain), or "*" (any public host). Matching ignores ASCII case and one trailing dot.
    pub allow_hosts: Vec<String>,
    /// Ports allowed for ordinary destinations (default [80, 443]).
    pub ports: Vec<u16>,
    /// Exceptions: exact "host:port" or "ip:port" (IPv6 as "[::1]:port") destinations allowed even
    /// though private/loopback, e.g. an internal package mirror. The host must match literally as
    /// the client wrote it (ASCII case aside): no patterns, and no matching by resolved address.
    pub mirrors: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_hosts: Self::default_allow_hosts(),
            ports: vec![80, 443],
            mirrors: Vec::new(),
        }
    }
}

impl Policy {
    /// Package registries and source hosts that install scripts commonly fetch from.
    pub fn default_allow_hosts() -> Vec<String> {
        [
            // Debian / Ubuntu / Alpine packages
            "deb.debian.org",
            "security.debian.org",
            "*.debian.org",
            "archive.ubuntu.com",
            "security.ubuntu.com",
            "*.ubuntu.com",
            "dl-cdn.alpinelinux.org",
            // Python
            "pypi.org",
            "files.pythonhosted.org",
            "*.python.org",
            // JavaScript
            "registry.npmjs.org",
            "*.npmjs.org",
            "registry.yarnpkg.com",
            "nodejs.org",
            "deb.nodesource.com",
            // Source hosting
            "github.com",
            "*.github.com",
            "*.githubusercontent.com",
            "codeload.github.com",
            "gitlab.com",
            "*.gitlab.com",
            "bitbucket.org",
            "*.sourceforge.net",
            // Rust
            "crates.io",
            "*.crates.io",
            "static.rust-lang.org",
            "sh.rustup.rs",
            "*.rust-lang.org",
            // Go
            "proxy.golang.org",
            "sum.golang.org",
            "go.dev",
            "dl.google.com",
            // Ruby, Java, Perl, PHP, .NET
            "rubygems.org",
            "*.rubygems.org",
            "repo1.maven.org",
            "repo.maven.apache.org",
            "services.gradle.org",
            "plugins.gradle.org",
            "cpan.metacpan.org",
            "repo.packagist.org",
            "api.nuget.org",
            // Docker's own apt/yum repositories
            "download.docker.com",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }

    /// Canonical form used for matching: lowercase patterns without surrounding whitespace,
    /// trailing dots or IPv6 brackets; empty entries dropped.
    pub(crate) fn normalized(self) -> Self {
        let allow_hosts = self
            .allow_hosts
            .iter()
            .map(|p| {
                let p = p.trim();
                let p = p
                    .strip_prefix('[')
                    .and_then(|p| p.strip_suffix(']'))
                    .unwrap_or(p);
                normalize_host(p)
            })
            .filter(|p| !p.is_empty())
            .collect();
        let mirrors = self
            .mirrors
            .iter()
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| !m.is_empty())
            .collect();
        Self {
            allow_hosts,
            ports: self.ports,
            mirrors,
        }
    }

    pub(crate) fn is_mirror(&self, target: &Target) -> bool {
        let written = target.to_string();
        self.mirrors
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&written))
    }

    pub(crate) fn port_allowed(&self, port: u16) -> bool {
        self.ports.contains(&port)
    }

    pub(crate) fn host_allowed(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.allow_hosts.iter().any(|p| pattern_matches(p, &host))
    }
}

fn normalize_host(h: &str) -> String {
    h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase()
}

/// `p` and `host` are both normalized.
fn pattern_matches(p: &str, host: &str) -> bool {
    if p == "*" {
        return true;
    }
    if let Some(base) = p.strip_prefix("*.") {
        return host == base
            || host
                .strip_suffix(base)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'));
    }
    p == host
}

/// A destination as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Hostname or IP literal, without IPv6 brackets.
    pub host: String,
    /// Set when `host` is an IP literal: such targets are never looked up.
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host:port`, `[v6]:port`, or (with `default_port`) the same without a port.
///
/// Hostnames are restricted to letters, digits, '-', '.' and '_': anything else cannot be a DNS
/// name worth resolving, and rejecting it keeps odd bytes away from the resolver and the logs.
pub(crate) fn parse_authority(s: &str, default_port: Option<u16>) -> Option<Target> {
    let (host, ip, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let v6: Ipv6Addr = inner.parse().ok()?;
        let port = if after.is_empty() {
            None
        } else {
            Some(after.strip_prefix(':')?)
        };
        (inner, Some(IpAddr::V6(v6)), port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            return None;
        }
        (host, host.parse::<Ipv4Addr>().ok().map(IpAddr::V4), port)
    };
    let port = match port {
        Some(p) => parse_port(p)?,
        None => default_port?,
    };
    Some(Target {
        host: host.to_string(),
        ip,
        port,
    })
}

/// Digits only: `u16::from_str` would also take "+80".
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok().filter(|&n| n != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str]) -> Policy {
        Policy {
            allow_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ports: vec![80, 443],
            mirrors: vec!["127.0.0.1:3141".into(), "[::1]:8080".into()],
        }
        .normalized()
    }

    #[test]
    fn patterns() {
        let p = policy(&["pypi.org", "*.Debian.org", " [2001:db8::1] "]);
        for ok in [
            "pypi.org",
            "PyPI.org",
            "pypi.org.",
            "debian.org",
            "deb.debian.org",
            "a.b.debian.org",
            "2001:db8::1",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for no in [
            "files.pypi.org",
            "xpypi.org",
            "notdebian.org",
            "debian.org.evil.com",
            ".debian.org",
            "example.com",
            "127.0.0.1",
        ] {
            assert!(!p.host_allowed(no), "{no}");
        }
        assert!(policy(&["*"]).host_allowed("anything.example"));
        assert!(!policy(&[]).host_allowed("pypi.org"));
    }

    #[test]
    fn default_list_covers_registries() {
        let p = Policy::default().normalized();
        for h in [
            "deb.debian.org",
            "pypi.org",
            "files.pythonhosted.org",
            "registry.npmjs.org",
            "objects.githubusercontent.com",
            "index.crates.io",
            "static.rust-lang.org",
            "proxy.golang.org",
        ] {
            assert!(p.host_allowed(h), "{h}");
        }
        assert!(!p.host_allowed("example.com"));
        assert_eq!(p.ports, vec![80, 443]);
    }

    #[test]
    fn mirrors_match_literally() {
        let p = policy(&[]);
        let t = |s| parse_authority(s, None).expect("target");
        assert!(p.is_mirror(&t("127.0.0.1:3141")));
        assert!(p.is_mirror(&t("[::1]:8080")));
        assert!(!p.is_mirror(&t("127.0.0.1:3142")));
        assert!(!p.is_mirror(&t("localhost:3141")));
        assert!(!p.is_mirror(&t("127.0.0.2:3141")));
    }

    #[test]
    fn authorities() {
        let t = parse_authority("pypi.org:443", None).expect("host:port");
        assert_eq!((t.host.as_str(), t.ip, t.port), ("pypi.org", None, 443));
        assert_eq!(t.to_string(), "pypi.org:443");

        let t = parse_authority("10.1.2.3:8080", None).expect("ip:port");
        assert_eq!(t.ip, Some("10.1.2.3".parse().expect("ip")));

        let t = parse_authority("[::ffff:127.0.0.1]:443", None).expect("v6");
        assert_eq!(t.host, "::ffff:127.0.0.1");
        assert_eq!(t.to_string(), "[::ffff:127.0.0.1]:443");

        let t = parse_authority("example.com", Some(80)).expect("default port");
        assert_eq!(t.port, 80);
        let t = parse_authority("[::1]", Some(80)).expect("v6 default port");
        assert_eq!(t.to_string(), "[::1]:80");

        for bad in [
            "",
            "pypi.org",
            ":443",
            "pypi.org:",
            "pypi.org:+443",
            "pypi.org:0",
            "pypi.org:65536",
            "pypi.org:443:1",
            "::1:443",
            "[::1]443",
            "[fe80::1%eth0]:443",
            "[not-v6]:443",
            "user@host:443",
            "exa mple.com:443",
            "exa%2eple.com:443",
            "ex\u{e9}mple.com:443",
        ] {
            assert_eq!(parse_authority(bad, None), None, "{bad:?}");
        }
    }
}
