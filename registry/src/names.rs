//! Image names: validation of repository paths, tags and digests, and parsing of the image
//! references people paste into the "Docker URL" upload form.

use crate::RegistryError;
use std::net::IpAddr;

/// Where Docker Hub's registry API lives (`docker.io` is only the name people write).
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// `a-z0-9` runs joined by `.`, `_`, `__` or `-…`: one path component of a repository name.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or any number of "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A repository path inside a registry, e.g. `trythis/hello` (no host).
pub(crate) fn valid_repository(repo: &str) -> bool {
    !repo.is_empty() && repo.len() <= 255 && repo.split('/').all(valid_component)
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(crate) fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    match b.first() {
        Some(&f) if word(f) => {}
        _ => return false,
    }
    b.len() <= 128 && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// `sha256:` and 64 lowercase hex digits: the only digest algorithm trythis accepts.
pub(crate) fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x))
    })
}

/// A tag or a digest.
pub(crate) fn valid_reference(reference: &str) -> bool {
    valid_tag(reference) || valid_digest(reference)
}

/// Is `host` (as written in a reference: `name`, `1.2.3.4` or `[v6]`, without port) this machine?
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Splits `host[:port]` / `[v6][:port]` into host and validates both parts.
fn split_host_port(hostport: &str) -> Option<(&str, Option<&str>)> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let host = &hostport[..v6.len() + 2];
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if let Some(p) = port {
        p.parse::<u16>().ok().filter(|&n| n > 0)?;
    }
    let host_ok = host.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-')
            }));
    host_ok.then_some((host, port))
}

/// An image in another registry, parsed from what a person typed: the source of an import.
///
/// Parsing is separate from importing so the server can reject a bad reference when the form is
/// submitted, before any network traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSource {
    /// `host[:port]` the registry API is reached at (`registry-1.docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path inside that registry, e.g. `library/nginx`.
    pub repository: String,
    /// Tag or `sha256:` digest (a digest wins when both are given).
    pub reference: String,
    /// Plain HTTP instead of HTTPS: only ever true for loopback registries.
    pub plain_http: bool,
}

impl ImageSource {
    /// Parses `[http(s)://]host[:port]/repo[:tag][@sha256:…]` or a Docker Hub name like
    /// `nginx:1.27`. Plain HTTP is used for (and only allowed for) registries on this machine
    /// (127.0.0.0/8, ::1, localhost): anything else must be HTTPS, so asking for `http://` to
    /// another host is refused here, without any network traffic.
    pub fn parse(input: &str) -> Result<Self, RegistryError> {
        let input = input.trim();
        let bad = |why: &str| RegistryError::InvalidReference(format!("{input:?} ({why})"));
        if input.is_empty() {
            return Err(bad("it is empty"));
        }
        if input.len() > 1024 || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains spaces or is too long"));
        }
        let lower = input.to_ascii_lowercase();
        let (scheme, rest) = if lower.starts_with("https://") {
            (Some("https"), &input["https://".len()..])
        } else if lower.starts_with("http://") {
            (Some("http"), &input["http://".len()..])
        } else if input.contains("://") {
            return Err(bad("only http:// and https:// addresses are understood"));
        } else {
            (None, input)
        };

        let (name, digest) = match rest.split_once('@') {
            Some((n, d)) => {
                if !valid_digest(d) {
                    return Err(bad("the part after @ must be a sha256:… digest"));
                }
                (n, Some(d))
            }
            None => (rest, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad(
                    "the tag after ':' may only use letters, digits, '.', '_' and '-'",
                ));
            }
        }

        let (host, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first.starts_with('[')
                    || first.eq_ignore_ascii_case("localhost") =>
            {
                (Some(first), rest)
            }
            _ => (None, name),
        };
        if scheme.is_some() && host.is_none() {
            return Err(bad(
                "an address starting with http(s):// needs a registry host",
            ));
        }
        let (registry, hub) = match host {
            None => (DOCKER_HUB_API.to_string(), true),
            Some(h) => {
                if split_host_port(h).is_none() {
                    return Err(bad("the registry address is not a valid host[:port]"));
                }
                let hub = ["docker.io", "index.docker.io", "registry-1.docker.io"]
                    .iter()
                    .any(|d| h.eq_ignore_ascii_case(d));
                if hub {
                    (DOCKER_HUB_API.to_string(), true)
                } else {
                    (h.to_ascii_lowercase(), false)
                }
            }
        };
        if path.is_empty() {
            return Err(bad("the repository name is missing"));
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("repository names are lowercase"));
        }
        if !valid_repository(path) {
            return Err(bad(
                "repository names use lowercase letters, digits and '.', '_', '-' between '/'",
            ));
        }
        let repository = if hub && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let loopback = !hub && split_host_port(&registry).is_some_and(|(h, _)| is_loopback_host(h));
        let plain_http =
            match scheme {
                Some("http") if !loopback => return Err(bad(
                    "plain http:// is only allowed for registries on this machine; use https://",
                )),
                Some("http") => true,
                Some(_) => false,
                None => loopback,
            };
        let reference = digest.or(tag).unwrap_or("latest").to_string();
        Ok(Self {
            registry,
            repository,
            reference,
            plain_http,
        })
    }
}

impl std::fmt::Display for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if valid_digest(&self.reference) {
            '@'
        } else {
            ':'
        };
        write!(
            f,
            "{}/{}{sep}{}",
            self.registry, self.repository, self.reference
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> ImageSource {
        ImageSource::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn invalid(s: &str) -> String {
        match ImageSource::parse(s) {
            Err(RegistryError::InvalidReference(m)) => m,
            other => panic!("{s}: expected InvalidReference, got {other:?}"),
        }
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn loopback_sources_use_plain_http() {
        let s = ok("127.0.0.1:5001/library/foo:1.0");
        assert_eq!(s.registry, "127.0.0.1:5001");
        assert_eq!(s.repository, "library/foo");
        assert_eq!(s.reference, "1.0");
        assert!(s.plain_http);
        assert!(ok("localhost:5000/a/b").plain_http);
        assert!(ok("http://[::1]:5000/a").plain_http);
        assert!(ok("127.1.2.3/a:x").plain_http);
        assert!(
            !ok("https://127.0.0.1:5000/a").plain_http,
            "explicit https is kept"
        );
        assert_eq!(ok("localhost:5000/a/b").reference, "latest");
    }

    #[test]
    fn other_sources_use_https() {
        let s = ok(&format!("ghcr.io/owner/app@{D}"));
        assert_eq!(s.registry, "ghcr.io");
        assert_eq!(s.reference, D);
        assert!(!s.plain_http);
        assert_eq!(s.to_string(), format!("ghcr.io/owner/app@{D}"));
        let s = ok(&format!("registry.example.com:8443/team/app:v1@{D}"));
        assert_eq!(s.reference, D, "a digest wins over a tag");
        assert_eq!(s.registry, "registry.example.com:8443");
        let hub = ok("nginx:1.27");
        assert_eq!(hub.registry, DOCKER_HUB_API);
        assert_eq!(hub.repository, "library/nginx");
        assert_eq!(ok("docker.io/bitnami/redis").repository, "bitnami/redis");
        assert_eq!(ok("https://docker.io/nginx").repository, "library/nginx");
    }

    #[test]
    fn plain_http_elsewhere_is_refused() {
        assert!(invalid("http://registry.example.com/foo:1").contains("plain http"));
        assert!(invalid("http://10.0.0.5:5000/foo").contains("plain http"));
        assert!(invalid("http://0.0.0.0:5000/foo").contains("plain http"));
        assert!(invalid("http://[fe80::1]:5000/foo").contains("plain http"));
    }

    #[test]
    fn bad_references_are_explained() {
        for s in [
            "",
            "   ",
            "Foo/Bar:1",
            "ftp://host/x",
            "host.io/x:bad tag",
            "host.io/x:",
            "host.io/x@sha256:abc",
            "host.io/",
            "host.io:99999/x",
            "a//b",
            "https://nginx",
            "x:-1",
        ] {
            invalid(s);
        }
        assert!(invalid("Foo/Bar:1").contains("lowercase"));
    }

    #[test]
    fn names_follow_the_distribution_grammar() {
        assert!(valid_repository("trythis/hello-world"));
        assert!(valid_repository("a/b__c/d.e/f---g"));
        assert!(!valid_repository("a/_b"));
        assert!(!valid_repository("a/b_"));
        assert!(!valid_repository("a/b..c"));
        assert!(!valid_repository("a/../b"));
        assert!(!valid_repository("a?x"));
        assert!(valid_tag("_a.B-1"));
        assert!(!valid_tag(".a"));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(valid_digest(D));
        assert!(!valid_digest(&D.to_uppercase()));
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("LOCALHOST"));
        assert!(!is_loopback_host("0.0.0.0"));
    }
}
