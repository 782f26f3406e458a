//! Import by reference: a maintainer names a public image (`host/repo:tag` or
//! `host/repo@sha256:…`) instead of giving a recipe; the build copies it into the platform's
//! registry and it goes live like a built image (smoke check, pull into the sandbox engine).
//!
//! What may be read is decided twice. On the form, without any network traffic: the reference's
//! grammar, the registry on `TRYTHIS_IMPORT_REGISTRIES`, and no host written as a private,
//! loopback or link-local address (`localhost`, `10.0.0.1`) unless the operator listed exactly
//! that registry as `http://host:port`. During the copy: every connection goes through the
//! import's egress proxy (`network::import_policy`), which resolves each name itself and refuses
//! such addresses for every connection, token services and blob CDNs after redirects included.
use crate::config::ImportRegistry;
use registry::{ImageSource, RegistryError};

/// A reference the form accepts: the parsed source and whether its registry is spoken to over
/// plain HTTP (only ever one the operator listed so).
pub struct Accepted {
    pub source: ImageSource,
    pub plain_http: bool,
}

/// Why a reference is refused on the form, in the words the `image` field shows; `None`: it may
/// be imported. `own` is the platform's registry (`host:port`) and `namespace` its projects'
/// namespace: a project's builds are never imported around the rules that guard them.
pub fn check_reference(
    input: &str,
    registries: &[ImportRegistry],
    own: &str,
    namespace: &str,
) -> Result<Accepted, String> {
    let source = ImageSource::parse(input).map_err(|e| match e {
        RegistryError::InvalidReference(m) => format!(
            "This is not an image reference ({m}). Write it like ghcr.io/owner/app:1.0 or ghcr.io/owner/app@sha256:…"
        ),
        other => other.to_string(),
    })?;
    let listed = registries.iter().find(|r| r.host == source.registry);
    let plain_http = listed.is_some_and(|r| r.plain_http);
    if let Some(ip) = source.host_ip() {
        if let (Some(class), false) = (egress::address_refusal(ip), plain_http) {
            return Err(format!(
                "{} is {class}: trythis imports only from public registries, never from private, loopback or link-local addresses.",
                source.registry
            ));
        }
    }
    if listed.is_none() {
        let allowed: Vec<&str> = registries.iter().map(|r| r.host.as_str()).collect();
        return Err(if allowed.is_empty() {
            "Importing images is switched off on this platform (TRYTHIS_IMPORT_REGISTRIES).".into()
        } else {
            format!(
                "{} is not a registry this platform imports from. Allowed: {}.",
                source.registry,
                allowed.join(", ")
            )
        });
    }
    if source.registry == own.to_ascii_lowercase()
        && source.repository.starts_with(&format!("{namespace}/"))
    {
        return Err(format!(
            "{source} is a build of a project on this platform: a project's image is read only as that live project serves it."
        ));
    }
    Ok(Accepted { source, plain_http })
}

/// A failed import in words a maintainer can act on: what the egress proxy refused (if it did),
/// else what the registry said.
pub fn headline(source: &ImageSource, e: &RegistryError, refused: &[egress::Refusal]) -> String {
    if let Some(r) = refused.first() {
        return format!(
            "The import was refused: {} {}. trythis imports only from public addresses, over HTTPS.",
            r.target, r.reason
        );
    }
    match e {
        RegistryError::NotFound(what) => format!(
            "The image {source} was not found ({what}): check the registry, the repository and the tag."
        ),
        RegistryError::Private(_) => {
            format!("This image is private; trythis imports public images only ({source}).")
        }
        RegistryError::TooLarge { .. } => format!(
            "The image is too large to import: {e} (TRYTHIS_IMPORT_MAX_MB, compressed). Nothing was copied."
        ),
        RegistryError::Unreachable(m) => format!(
            "The registry {} could not be reached ({m}). Start the build again later.",
            source.registry
        ),
        RegistryError::InvalidReference(m) => format!("Not a valid image reference: {m}"),
        RegistryError::Protocol(m) => format!("The image could not be imported: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(entries: &[&str]) -> Vec<ImportRegistry> {
        entries
            .iter()
            .map(|e| ImportRegistry::parse(e).unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    fn refused(input: &str, registries: &[ImportRegistry]) -> String {
        match check_reference(input, registries, "127.0.0.1:5000", "trythis") {
            Ok(_) => panic!("{input} was accepted"),
            Err(m) => m,
        }
    }

    #[test]
    fn private_addresses_are_refused_unless_listed_for_plain_http() {
        let defaults = listed(ImportRegistry::DEFAULTS);
        for (input, class) in [
            ("10.0.0.1/x:1", "a private address"),
            ("localhost/x:1", "a loopback address"),
            ("localhost:5000/x:1", "a loopback address"),
            ("127.0.0.1:5000/x:1", "a loopback address"),
            ("169.254.169.254/latest:1", "a link-local address"),
            ("[::1]:5000/x", "a loopback address"),
            ("[fe80::1]/x", "a link-local address"),
        ] {
            let m = refused(input, &defaults);
            assert!(m.contains(class), "{input}: {m}");
        }
        // Listed as a plain HTTPS registry is not enough for a loopback address…
        let m = refused("127.0.0.1:5000/x:1", &listed(&["127.0.0.1:5000"]));
        assert!(m.contains("loopback"), "{m}");
        // …only the operator's explicit http:// entry, for exactly that host:port.
        let test = listed(&["http://127.0.0.1:5000"]);
        let ok = check_reference(
            "127.0.0.1:5000/import/x:1",
            &test,
            "127.0.0.1:5000",
            "trythis",
        );
        assert!(ok.as_ref().is_ok_and(|a| a.plain_http), "{:?}", ok.err());
        assert!(refused("127.0.0.1:5001/x:1", &test).contains("loopback"));
        assert!(refused("localhost:5000/x:1", &test).contains("loopback"));
    }

    #[test]
    fn only_listed_registries_are_read() {
        let defaults = listed(ImportRegistry::DEFAULTS);
        let ok = |s: &str| check_reference(s, &defaults, "127.0.0.1:5000", "trythis");
        assert!(ok("nginx:1.27").is_ok_and(|a| !a.plain_http));
        assert!(ok("ghcr.io/owner/app:1.0").is_ok());
        assert!(ok("registry-1.docker.io/library/redis:7").is_ok());
        let m = refused("registry.example.com/team/app:1", &defaults);
        assert!(
            m.contains("not a registry this platform imports from"),
            "{m}"
        );
        assert!(m.contains("ghcr.io"), "{m}");
        let m = refused("ghcr.io/x:1", &[]);
        assert!(m.contains("switched off"), "{m}");
        let m = refused("Not A Reference", &defaults);
        assert!(m.contains("not an image reference"), "{m}");
    }

    #[test]
    fn project_builds_are_not_imported_around_their_rules() {
        let test = listed(&["http://127.0.0.1:5000"]);
        let m = refused("127.0.0.1:5000/trythis/someone:01abc", &test);
        assert!(m.contains("a build of a project"), "{m}");
    }

    #[test]
    fn headlines_say_what_to_do() {
        let src = ImageSource::parse("ghcr.io/owner/app:1").unwrap_or_else(|e| panic!("{e}"));
        let private = headline(&src, &RegistryError::Private("x".into()), &[]);
        assert!(
            private.starts_with("This image is private; trythis imports public images only"),
            "{private}"
        );
        let missing = headline(
            &src,
            &RegistryError::NotFound("ghcr.io/owner/app:1".into()),
            &[],
        );
        assert!(missing.contains("was not found"), "{missing}");
        let large = RegistryError::TooLarge {
            size: 3 << 30,
            limit: 1 << 30,
        };
        assert!(headline(&src, &large, &[]).contains("image is 3 GB, the limit is 1 GB"));
        let refusal = egress::Refusal {
            target: "ghcr.io:443".into(),
            reason: "resolves to 10.1.2.3, a private address".into(),
        };
        let h = headline(&src, &RegistryError::Unreachable("x".into()), &[refusal]);
        assert!(h.contains("10.1.2.3, a private address"), "{h}");
    }
}
