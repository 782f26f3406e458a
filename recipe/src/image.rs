//! Image reference syntax (`[host[:port]/]path[:tag][@digest]`).
//!
//! Why our own check: a base image typed into a script directive ends up in a `FROM` line, so
//! it must be a plain reference and nothing else (no spaces, `$(…)`, quotes or newlines).

/// Whether `reference` is a syntactically valid image reference.
pub(crate) fn valid(reference: &str) -> bool {
    if reference.is_empty() || reference.len() > 255 {
        return false;
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let Some((algorithm, hex)) = digest.split_once(':') else {
            return false;
        };
        let algorithm_ok = !algorithm.is_empty()
            && algorithm
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
    }
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(tag) = tag {
        let first_ok = tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let rest_ok = tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !first_ok || !rest_ok || tag.len() > 128 {
            return false;
        }
    }
    let components: Vec<&str> = name.split('/').collect();
    let path = match components.as_slice() {
        [host, path @ ..]
            if !path.is_empty() && (host.contains(['.', ':']) || *host == "localhost") =>
        {
            if !valid_host(host) {
                return false;
            }
            path
        }
        all => all,
    };
    path.iter().all(|component| valid_component(component))
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    name_ok && port_ok
}

/// A path component: lowercase letters and digits, separated by `.`, `_`, `__` or dashes.
fn valid_component(component: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    edge_ok(component.chars().next())
        && edge_ok(component.chars().last())
        && component
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && !component.contains("..")
        && !component.contains("___")
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn accepts_real_references() {
        for reference in [
            "debian",
            "debian:bookworm-slim",
            "python:3.12",
            "trythis/base:bookworm",
            "ghcr.io/owner/repo:v1.2.3",
            "localhost:5000/trythis/jq",
            "registry.example.com:443/a/b_c/d-e:Latest_1",
            "alpine@sha256:21a3deaa0d32a8057914f36584b5288d2e5ecc984380bc0118285c70fa8c9300",
            "scratch",
        ] {
            assert!(valid(reference), "{reference}");
        }
    }

    #[test]
    fn refuses_garbage() {
        for reference in [
            "",
            "$(rm -rf /)",
            "ubuntu latest",
            "Ubuntu",
            "ubuntu:",
            "ubuntu:-x",
            "-ubuntu",
            "ubuntu;reboot",
            "a//b",
            "ubuntu@sha256:xyz",
            "\"ubuntu\"",
            "ubuntu\n",
        ] {
            assert!(!valid(reference), "{reference:?}");
        }
    }
}
