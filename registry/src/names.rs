//! Image names: validation of repository paths, tags and digests (the distribution grammar).

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

#[cfg(test)]
mod tests {
    use super::*;

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
