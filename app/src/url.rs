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

#[cfg(test)]
mod tests {
    use super::urlencode;

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
