//! Leaf helper: building links.

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
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
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
