//! Building links: the pure URL helpers the pages and the server share.

/// Percent-encodes a query value: unreserved characters and `/` (local paths in `next=`) stay,
/// everything else (spaces and `&` in categories, non-ASCII) becomes `%XX`.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Where to go after signing in: a local path only (no open redirect). The log-in page and the
/// server's OAuth start use this one rule.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.len() <= 500
                && !n.chars().any(char::is_control)
                && !has_dot_segment(n) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// Whether the path of `n` has a `.` or `..` segment, written plainly or percent-encoded
/// (`/%2e%2e/`), or an encoded slash or backslash: a browser may resolve them into another
/// path (`/a/..//evil` → `//evil`), so a "local" path with them is not one.
fn has_dot_segment(n: &str) -> bool {
    let path = n.split(['?', '#']).next().unwrap_or_default();
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return true;
    }
    lower
        .replace("%2e", ".")
        .split('/')
        .any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::{safe_next, urlencode};

    #[test]
    fn next_is_a_local_path_only() {
        assert_eq!(safe_next(Some("/p/hello")), "/p/hello");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/a\nb")), "/");
        for dots in [
            "/..",
            "/a/../b",
            "/a/./b",
            "/a/..//evil.example",
            "/%2e%2e/admin",
            "/%2E./x",
            "/a%2f..%2fb",
            "/a%5cb",
        ] {
            assert_eq!(safe_next(Some(dots)), "/", "{dots}");
        }
        assert_eq!(safe_next(Some("/p/a.b?x=..")), "/p/a.b?x=..");
        assert_eq!(safe_next(Some("/search?q=1.2")), "/search?q=1.2");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn query_values_survive_a_round_trip() {
        assert_eq!(urlencode("/p/jq?x=1"), "/p/jq%3Fx%3D1");
        assert_eq!(
            urlencode("Web servers & proxies"),
            "Web%20servers%20%26%20proxies"
        );
        assert_eq!(urlencode("é"), "%C3%A9");
    }
}
