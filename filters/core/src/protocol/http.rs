//! HTTP vocabulary shared by every filter: the one check of a header name,
//! the one reading of a repeated header, and the first step of every path
//! rule (the query and fragment go).

/// An HTTP field name (RFC 9110 §5.1: a `token`). With `pseudo`, an HTTP/2
/// pseudo-header (`:status`) is accepted too (audit's captures read them).
pub fn is_header_name(name: &str, pseudo: bool) -> bool {
    let name = match name.strip_prefix(':') {
        Some(rest) if pseudo => rest,
        _ => name,
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The value of header `name` in `headers` (one read of the whole map),
/// every occurrence joined with `, ` (RFC 9110 §5.3), so that a second
/// `Content-Encoding` or `Mcp-Name` cannot hide behind a first one that
/// looks fine. `None` when absent.
pub fn joined_header(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// `:path` without its query and fragment. Every reading of a request
/// path starts here (the tool ACL's canonical path, A2A routes, audit's
/// recorded path, recipe per-operation paths).
pub fn path_only(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_are_joined() {
        let h = vec![
            ("Content-Encoding".to_string(), "identity".to_string()),
            ("x".to_string(), "1".to_string()),
            ("content-encoding".to_string(), "gzip".to_string()),
        ];
        assert_eq!(
            joined_header(&h, "content-encoding").as_deref(),
            Some("identity, gzip")
        );
        assert_eq!(joined_header(&h, "X").as_deref(), Some("1"));
        assert_eq!(joined_header(&h, "y"), None);
    }

    #[test]
    fn tokens_only() {
        for ok in ["x-agent-api-key", "Retry-After", "a.b_c~1", "x!#$%&'*+^`|"] {
            assert!(is_header_name(ok, false), "{ok}");
        }
        for bad in ["", "a b", "a:b", "é", "x\r\ny", "(x)", ":status", ":"] {
            assert!(!is_header_name(bad, false), "{bad:?}");
        }
        assert!(is_header_name(":status", true));
        assert!(!is_header_name(":", true));
        assert!(!is_header_name("a:b", true));
    }

    #[test]
    fn paths_lose_query_and_fragment() {
        assert_eq!(path_only("/a?b=/c#d"), "/a");
        assert_eq!(path_only("/a#?"), "/a");
        assert_eq!(path_only("?x"), "");
    }
}
