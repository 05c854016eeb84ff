//! Refusing requests the ACL could not judge reliably.
//!
//! The ACL decides on what the request body says. Anything that could make
//! the body we inspect differ from the body the MCP server executes is
//! refused before any rule is looked at: compressed bodies, non-JSON content
//! types, oversized bodies, `Mcp-Method` / `Mcp-Name` headers that disagree
//! with the body (MCP 2026-07-28: HTTP 400, JSON-RPC -32020), bodies sent
//! to a per-operation path (`/mcp/tools/call`) that carry another method.
//!
//! Paths are compared in a canonical form (percent-decoded, lower case,
//! slashes merged, dot segments resolved, no trailing slash) so that
//! `/MCP//tools/call/`, `/mcp/%74ools/call` and `/mcp/x/../tools/call`
//! are all inspected like `/mcp/tools/call`, whatever Envoy's routing does.

use crate::protocol::operation::Operation;
use crate::protocol::request_facts::RequestFacts;
use crate::tool_acl::config::BatchPolicy;
use base64::Engine as _;

pub use crate::protocol::jsonrpc::codes::{HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST};

/// Why a request is refused before the ACL looks at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub http_status: u16,
    pub jsonrpc_code: i64,
    pub message: String,
}

impl Refusal {
    pub fn new(http_status: u16, jsonrpc_code: i64, message: impl Into<String>) -> Self {
        Self {
            http_status,
            jsonrpc_code,
            message: message.into(),
        }
    }
}

/// Canonical form of a request path for policy decisions.
pub fn canonical_path(raw: &str) -> String {
    let path = crate::protocol::http::path_only(raw);
    // Decode repeatedly: a double-encoded `%252F` must not hide a `/`.
    let mut decoded = path.to_string();
    for _ in 0..3 {
        let next = crate::protocol::percent_decode(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    let lower = decoded.replace('\\', "/").to_lowercase();
    let mut segments: Vec<&str> = Vec::new();
    for segment in lower.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

/// Canonical prefix `prefix` covers `path` (`/mcp` covers `/mcp` and `/mcp/x`).
pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The operation a recipe per-operation path names under `prefix`
/// (`/mcp/tools/call` → tools/call), or `None` for the single endpoint and
/// for paths that name no operation (`/mcp/sse`).
pub fn path_operation(path: &str, prefix: &str) -> Option<Operation> {
    let rest = path.strip_prefix(prefix)?.strip_prefix('/')?;
    Operation::from_method(rest).filter(|op| !op.is_a2a())
}

/// `Content-Type` must be JSON (`application/json`, any parameters).
pub fn check_content_type(value: Option<&str>) -> Result<(), Refusal> {
    let media = value
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/json") => Ok(()),
        Some(other) => Err(Refusal::new(
            415,
            INVALID_REQUEST,
            format!("unsupported content type `{other}`: MCP requests must be application/json"),
        )),
        None => Err(Refusal::new(
            415,
            INVALID_REQUEST,
            "missing content type: MCP requests must be application/json",
        )),
    }
}

/// Only uncompressed bodies can be inspected (`identity` or no header).
pub fn check_content_encoding(value: Option<&str>) -> Result<(), Refusal> {
    match value.map(str::trim) {
        None | Some("") => Ok(()),
        Some(v) if v.eq_ignore_ascii_case("identity") => Ok(()),
        Some(v) => Err(Refusal::new(
            415,
            INVALID_REQUEST,
            format!("content encoding `{v}` is not accepted: send the JSON-RPC body uncompressed"),
        )),
    }
}

/// A body (or declared `Content-Length`) over the limit.
pub fn check_body_size(size: usize, limit: usize) -> Result<(), Refusal> {
    if size > limit {
        Err(Refusal::new(
            413,
            INVALID_REQUEST,
            format!("request body of {size} bytes exceeds the gateway's limit of {limit} bytes"),
        ))
    } else {
        Ok(())
    }
}

/// Decode an `Mcp-Name` / `Mcp-Param-*` value: verbatim, or the
/// `=?base64?…?=` form clients use for values that are not plain ASCII.
/// `None` for a malformed base64 form.
pub fn decode_header_value(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(payload) => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_string()),
    }
}

/// Everything about a body's shape the ACL does not judge: a batch where
/// the configuration refuses them, and the `Mcp-Method` / `Mcp-Name`
/// headers against the body. (A recipe per-operation path does not have to
/// agree with the body's method: the ACL judges the body, which is what the
/// server executes.)
pub fn check_shape(
    batches: BatchPolicy,
    mcp_method: Option<&str>,
    mcp_name: Option<&str>,
    facts: &RequestFacts,
) -> Result<(), Refusal> {
    if facts.batch && batches == BatchPolicy::Reject {
        return Err(Refusal::new(
            400,
            INVALID_REQUEST,
            "JSON-RPC batches are not accepted",
        ));
    }
    check_mcp_headers(mcp_method, mcp_name, facts)
}

/// `Mcp-Method` and `Mcp-Name` (MCP 2026-07-28) must agree with the body.
/// They are optional for older clients; when present they must match, and
/// a batch (which that revision does not allow) cannot match them.
pub fn check_mcp_headers(
    mcp_method: Option<&str>,
    mcp_name: Option<&str>,
    facts: &RequestFacts,
) -> Result<(), Refusal> {
    if mcp_method.is_none() && mcp_name.is_none() {
        return Ok(());
    }
    let mismatch = |m: String| Err(Refusal::new(400, HEADER_MISMATCH, m));
    let Some(message) = facts.single() else {
        return mismatch("Mcp-Method/Mcp-Name headers cannot describe a JSON-RPC batch".into());
    };
    let body_method = message.method.as_deref().unwrap_or("");
    if let Some(header) = mcp_method {
        if header != body_method {
            return mismatch(format!(
                "Mcp-Method header `{header}` does not match the body's method `{body_method}`"
            ));
        }
    }
    if let Some(header) = mcp_name {
        let named = match message.operation() {
            Some(Operation::McpToolsCall | Operation::McpPromptsGet) => message.name.as_deref(),
            Some(Operation::McpResourcesRead) => message.uri.as_deref(),
            // Other methods carry no name the gateway checks; the server validates them.
            _ => return Ok(()),
        };
        let decoded = decode_header_value(header);
        if decoded.as_deref() != named || named.is_none() {
            return mismatch(format!(
                "Mcp-Name header `{header}` does not match the body's `{}`",
                named.unwrap_or("")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_refused_only_when_configured() {
        let batch = RequestFacts::inspect(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#)
            .unwrap()
            .1;
        let r = check_shape(BatchPolicy::Reject, None, None, &batch).unwrap_err();
        assert_eq!((r.http_status, r.jsonrpc_code), (400, INVALID_REQUEST));
        assert!(check_shape(BatchPolicy::default(), None, None, &batch).is_ok());
    }

    #[test]
    fn path_tricks_canonicalize_to_the_same_path() {
        for p in [
            "/mcp/tools/call",
            "/MCP/tools/call",
            "/mcp/Tools/Call",
            "//mcp//tools///call",
            "/mcp/tools/call/",
            "/mcp%2Ftools%2Fcall",
            "/mcp%252Ftools%252Fcall",
            "/mcp/%74ools/call",
            "/mcp/x/../tools/call",
            "/mcp/./tools/call?x=1",
            "/mcp\\tools\\call",
        ] {
            assert_eq!(canonical_path(p), "/mcp/tools/call", "{p}");
        }
        assert_eq!(canonical_path(""), "/");
        assert_eq!(canonical_path("/../.."), "/");
        assert_eq!(canonical_path("/mcp%zz"), "/mcp%zz");
    }

    #[test]
    fn prefixes_and_operations() {
        assert!(is_under("/mcp", "/mcp"));
        assert!(is_under("/mcp/tools/call", "/mcp"));
        assert!(!is_under("/mcpx", "/mcp"));
        assert!(!is_under("/a2a", "/mcp"));
        assert!(is_under("/anything", "/"));
        assert_eq!(
            path_operation("/mcp/tools/call", "/mcp"),
            Some(Operation::McpToolsCall)
        );
        assert_eq!(
            path_operation("/mcp/resources/read", "/mcp"),
            Some(Operation::McpResourcesRead)
        );
        assert_eq!(path_operation("/mcp", "/mcp"), None);
        assert_eq!(path_operation("/mcp/sse", "/mcp"), None);
        assert_eq!(path_operation("/mcp/tasks/send", "/mcp"), None);
    }

    #[test]
    fn content_type_must_be_json() {
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ] {
            let r = check_content_type(Some(bad)).unwrap_err();
            assert_eq!(r.http_status, 415, "{bad}");
        }
        assert_eq!(check_content_type(None).unwrap_err().http_status, 415);
    }

    #[test]
    fn only_identity_encoding() {
        assert!(check_content_encoding(None).is_ok());
        assert!(check_content_encoding(Some("identity")).is_ok());
        assert!(check_content_encoding(Some(" Identity ")).is_ok());
        for bad in ["gzip", "br", "deflate", "identity, gzip", "zstd"] {
            assert_eq!(
                check_content_encoding(Some(bad)).unwrap_err().http_status,
                415
            );
        }
    }

    #[test]
    fn body_limit() {
        assert!(check_body_size(10, 10).is_ok());
        assert_eq!(check_body_size(11, 10).unwrap_err().http_status, 413);
    }

    fn facts(body: &str) -> RequestFacts {
        RequestFacts::inspect(body.as_bytes()).unwrap().1
    }

    #[test]
    fn mcp_headers_must_match_the_body() {
        let call = facts(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute_code"}}"#,
        );
        assert!(check_mcp_headers(None, None, &call).is_ok());
        assert!(check_mcp_headers(Some("tools/call"), Some("execute_code"), &call).is_ok());
        for (m, n) in [
            (Some("tools/list"), None),
            (Some("tools/call"), Some("read_config")),
            (None, Some("read_config")),
            (Some("Tools/Call"), None),
        ] {
            let r = check_mcp_headers(m, n, &call).unwrap_err();
            assert_eq!(
                (r.http_status, r.jsonrpc_code),
                (400, -32020),
                "{m:?} {n:?}"
            );
        }
        let read = facts(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///x"}}"#,
        );
        assert!(check_mcp_headers(Some("resources/read"), Some("file:///x"), &read).is_ok());
        assert!(check_mcp_headers(Some("resources/read"), Some("file:///y"), &read).is_err());
        let batch = facts(r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#);
        assert!(check_mcp_headers(Some("tools/list"), None, &batch).is_err());
        let list = facts(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert!(check_mcp_headers(Some("tools/list"), Some("whatever"), &list).is_ok());
        let nameless = facts(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#);
        assert!(check_mcp_headers(Some("tools/call"), Some(""), &nameless).is_err());
    }

    #[test]
    fn base64_header_values() {
        // "résumé" as the SDK encodes it
        let call =
            facts(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"résumé"}}"#);
        assert!(
            check_mcp_headers(Some("tools/call"), Some("=?base64?csOpc3Vtw6k=?="), &call).is_ok()
        );
        assert_eq!(decode_header_value("=?base64?!!?="), None);
        assert_eq!(decode_header_value("plain").as_deref(), Some("plain"));
        assert!(check_mcp_headers(Some("tools/call"), Some("=?base64?!!?="), &call).is_err());
    }
}
