//! Image names: validation of repository paths, tags and digests (the distribution grammar),
//! and [`ImageSource`], an image in another registry as a person writes it (imports).

use crate::RegistryError;
use std::net::IpAddr;

/// Where Docker Hub's registry API lives (`docker.io` is only the name people write).
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The name references use for Docker Hub.
pub const DOCKER_HUB: &str = "docker.io";

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

/// `host[:port]` / `[v6][:port]` split into host (brackets kept) and port, both validated.
pub(crate) fn split_host_port(hostport: &str) -> Option<(&str, Option<u16>)> {
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
    let port = match port {
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|&n| n > 0)?)
        }
        Some(_) => return None,
        None => None,
    };
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
/// Parsing is separate from importing so a bad reference is refused when the form is submitted,
/// before any network traffic; which registries may be read is the caller's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSource {
    /// `host[:port]` as references name it, lowercase (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path inside that registry, e.g. `library/nginx`.
    pub repository: String,
    /// The tag, when one was written (`latest` when neither tag nor digest was).
    pub tag: Option<String>,
    /// The pinned `sha256:` digest, when one was written: the manifest fetched must have it.
    pub digest: Option<String>,
}

impl ImageSource {
    /// Parses `host[:port]/repo[:tag][@sha256:…]` or a Docker Hub name like `nginx:1.27`
    /// (`docker.io/library/nginx:1.27`). No scheme: whether a registry is spoken to over HTTPS
    /// or (only ever for one an operator listed) plain HTTP is not the writer's choice.
    pub fn parse(input: &str) -> Result<Self, RegistryError> {
        let input = input.trim();
        let bad = |why: &str| RegistryError::InvalidReference(format!("{input:?}: {why}"));
        if input.is_empty() {
            return Err(bad("it is empty"));
        }
        if input.len() > 512 || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains spaces or is longer than 512 characters"));
        }
        if input.contains("://") {
            return Err(bad(
                "write the reference without http:// or https://, like ghcr.io/owner/app:1.0",
            ));
        }
        let (name, digest) = match input.split_once('@') {
            Some((n, d)) => {
                if !valid_digest(d) {
                    return Err(bad("the part after @ must be sha256: and 64 hex digits"));
                }
                (n, Some(d.to_string()))
            }
            None => (input, None),
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
                    "the tag after ':' may only use letters, digits, '.', '_' and '-' (at most 128)",
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
        let (registry, hub) = match host {
            None => (DOCKER_HUB.to_string(), true),
            Some(h) => {
                if split_host_port(h).is_none() {
                    return Err(bad("the registry address is not a valid host[:port]"));
                }
                let hub = ["docker.io", "index.docker.io", DOCKER_HUB_API]
                    .iter()
                    .any(|d| h.eq_ignore_ascii_case(d));
                if hub {
                    (DOCKER_HUB.to_string(), true)
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
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the pinned digest, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// Where the registry's API is reached (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The registry's host without port or IPv6 brackets.
    pub fn host(&self) -> &str {
        let h = split_host_port(&self.registry).map_or(self.registry.as_str(), |(h, _)| h);
        h.trim_start_matches('[').trim_end_matches(']')
    }

    /// The host when it is written as an IP address (`localhost` counts as 127.0.0.1).
    pub fn host_ip(&self) -> Option<IpAddr> {
        let h = self.host();
        if h.eq_ignore_ascii_case("localhost") {
            return Some(IpAddr::from([127, 0, 0, 1]));
        }
        h.parse().ok()
    }
}

impl std::fmt::Display for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
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

    #[test]
    fn references_are_parsed_like_docker_does() {
        let s = ok("127.0.0.1:5000/library/foo:1.0");
        assert_eq!(s.registry, "127.0.0.1:5000");
        assert_eq!(s.repository, "library/foo");
        assert_eq!(s.reference(), "1.0");
        assert_eq!(s.host(), "127.0.0.1");
        assert_eq!(s.host_ip(), Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(ok("localhost:5000/a/b").reference(), "latest");
        assert_eq!(
            ok("localhost/a").host_ip(),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(ok("[::1]:5000/a").host(), "::1");
        let s = ok(&format!("ghcr.io/owner/app@{D}"));
        assert_eq!((s.registry.as_str(), s.reference()), ("ghcr.io", D));
        assert_eq!(s.tag, None);
        assert_eq!(s.to_string(), format!("ghcr.io/owner/app@{D}"));
        let s = ok(&format!("Registry.Example.com:8443/team/app:v1@{D}"));
        assert_eq!(s.reference(), D, "a digest wins over a tag");
        assert_eq!(s.registry, "registry.example.com:8443");
        assert_eq!(
            s.to_string(),
            format!("registry.example.com:8443/team/app:v1@{D}")
        );
        let hub = ok("nginx:1.27");
        assert_eq!(hub.registry, DOCKER_HUB);
        assert_eq!(hub.api_host(), DOCKER_HUB_API);
        assert_eq!(hub.repository, "library/nginx");
        assert_eq!(hub.to_string(), "docker.io/library/nginx:1.27");
        assert_eq!(
            ok("index.docker.io/bitnami/redis").repository,
            "bitnami/redis"
        );
        assert_eq!(
            ok("10.0.0.1/x:1").host_ip(),
            Some(IpAddr::from([10, 0, 0, 1]))
        );
    }

    #[test]
    fn bad_references_are_explained() {
        for s in [
            "",
            "   ",
            "Foo/Bar:1",
            "https://ghcr.io/x/y",
            "http://127.0.0.1:5000/x",
            "host.io/x:bad tag",
            "host.io/x:",
            "host.io/x@sha256:abc",
            "host.io/",
            "host.io:99999/x",
            "host.io:+80/x",
            "a//b",
            "x:-1",
            "-bad.io/x",
        ] {
            invalid(s);
        }
        assert!(invalid("Foo/Bar:1").contains("lowercase"));
        assert!(invalid("https://ghcr.io/x").contains("without http"));
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

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
    }
}
