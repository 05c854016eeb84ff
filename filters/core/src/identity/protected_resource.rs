//! The gateway as an OAuth 2.0 resource server (MCP authorization spec):
//! RFC 9728 protected-resource metadata, and where a `WWW-Authenticate`
//! challenge points.
//!
//! Served at `/.well-known/oauth-protected-resource` and, per RFC 9728 §3.1
//! for a resource with a path, `/.well-known/oauth-protected-resource/mcp`
//! and `/.well-known/oauth-protected-resource/a2a`. A 401 on `/mcp/...`
//! points at the `/mcp` document.

use crate::identity::config::OAuth2Method;
use crate::identity::denial::LocalReply;
use serde_json::json;

pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The request as the metadata needs it.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    pub method: &'a str,
    /// `:path` without the query string.
    pub path: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
}

/// The request line, owned: the identity filter keeps it while a callout
/// is pending, after the headers callback has returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestLine {
    pub method: String,
    /// `:path` without the query string.
    pub path: String,
    pub scheme: String,
    pub authority: String,
}

impl RequestLine {
    /// From the request headers read at once (one host call for all of
    /// them); a repeated pseudo-header counts by its first value.
    pub fn from_headers(headers: &[(String, String)]) -> Self {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let path = get(":path");
        Self {
            method: get(":method"),
            path: path
                .split_once('?')
                .map_or(path.as_str(), |(p, _)| p)
                .to_string(),
            scheme: get(":scheme"),
            authority: get(":authority"),
        }
    }

    pub fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: &self.method,
            path: &self.path,
            scheme: &self.scheme,
            authority: &self.authority,
        }
    }
}

impl RequestInfo<'_> {
    /// `scheme://authority`, with anything that does not belong in a host
    /// name dropped (the authority comes from the client).
    pub fn origin(&self) -> String {
        let scheme = if self.scheme == "http" {
            "http"
        } else {
            "https"
        };
        let authority: String = self
            .authority
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(*c))
            .collect();
        let authority = if authority.is_empty() {
            "localhost".into()
        } else {
            authority
        };
        format!("{scheme}://{authority}")
    }
}

/// `/mcp` for `/mcp/tools/call`, empty for `/`.
pub fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let end = rest.find('/').unwrap_or(rest.len());
    match rest.get(..end) {
        Some(seg) if !seg.is_empty() => path.get(..end + 1).unwrap_or(""),
        _ => "",
    }
}

/// The metadata URL a challenge on `req` points to.
pub fn metadata_url(req: &RequestInfo<'_>) -> String {
    format!("{}{WELL_KNOWN}{}", req.origin(), first_segment(req.path))
}

/// The metadata document when `req` asks for it.
pub fn serve(oauth: &OAuth2Method, req: &RequestInfo<'_>) -> Option<LocalReply> {
    let suffix = req.path.strip_prefix(WELL_KNOWN)?;
    if !(suffix.is_empty() || suffix.starts_with('/')) || !matches!(req.method, "GET" | "HEAD") {
        return None;
    }
    let resource = oauth
        .resource
        .clone()
        .unwrap_or_else(|| format!("{}{suffix}", req.origin()));
    let mut doc = json!({
        "resource": resource,
        "authorization_servers": oauth.authorization_servers,
        "scopes_supported": oauth.all_scopes(),
        "bearer_methods_supported": ["header"],
    });
    if let (Some(name), Some(obj)) = (&oauth.resource_name, doc.as_object_mut()) {
        obj.insert("resource_name".into(), json!(name));
    }
    Some(LocalReply {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "max-age=300".into()),
        ],
        body: doc.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_from_headers() {
        let headers: Vec<(String, String)> = [
            (":method", "POST"),
            (":path", "/mcp/x?key=secret"),
            (":Scheme", "https"),
            (":authority", "gw.test"),
            (":authority", "other"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let line = RequestLine::from_headers(&headers);
        let info = line.info();
        assert_eq!(
            (info.method, info.path, info.scheme, info.authority),
            ("POST", "/mcp/x", "https", "gw.test")
        );
        assert_eq!(RequestLine::from_headers(&[]), RequestLine::default());
    }
    use crate::config::load;
    use crate::identity::config::{IdentityConfig, IdentitySpec};
    use serde_json::Value;

    fn oauth(extra: &str) -> OAuth2Method {
        let text = format!(
            "authMethods:\n  - type: oauth2ClientCredentials\n    tokenUrl: https://auth.example.com/oauth/token\n    introspectionUrl: https://auth.example.com/oauth/introspect\n    requiredScopes: [mcp:tools:invoke]\n    audiences: [https://gateway.test]\n    scopeRules: [{{paths: [/a2a], requiredScopes: [a2a:tasks:send]}}]\n{extra}"
        );
        load::<IdentitySpec, IdentityConfig>(text.as_bytes())
            .unwrap()
            .oauth2
            .unwrap()
    }

    fn req<'a>(method: &'a str, path: &'a str) -> RequestInfo<'a> {
        RequestInfo {
            method,
            path,
            scheme: "https",
            authority: "gw.example:8443",
        }
    }

    #[test]
    fn metadata_for_the_path_resource() {
        let reply = serve(
            &oauth(""),
            &req("GET", "/.well-known/oauth-protected-resource/mcp"),
        )
        .unwrap();
        assert_eq!(reply.status, 200);
        let doc: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(doc["resource"], "https://gw.example:8443/mcp");
        assert_eq!(
            doc["authorization_servers"],
            json!(["https://auth.example.com"])
        );
        assert_eq!(
            doc["scopes_supported"],
            json!(["mcp:tools:invoke", "a2a:tasks:send"])
        );
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        let root = serve(&oauth(""), &req("GET", WELL_KNOWN)).unwrap();
        let doc: Value = serde_json::from_str(&root.body).unwrap();
        assert_eq!(doc["resource"], "https://gw.example:8443");
    }

    #[test]
    fn configured_resource_wins_and_other_paths_are_not_served() {
        let o =
            oauth("    resource: https://mcp-gateway.example.com/mcp\n    resourceName: Gateway\n");
        let doc: Value = serde_json::from_str(
            &serve(&o, &req("GET", "/.well-known/oauth-protected-resource/a2a"))
                .unwrap()
                .body,
        )
        .unwrap();
        assert_eq!(doc["resource"], "https://mcp-gateway.example.com/mcp");
        assert_eq!(doc["resource_name"], "Gateway");
        assert!(serve(&o, &req("POST", WELL_KNOWN)).is_none());
        assert!(serve(&o, &req("GET", "/.well-known/oauth-protected-resourcex")).is_none());
        assert!(serve(&o, &req("GET", "/mcp")).is_none());
    }

    #[test]
    fn challenges_point_at_the_first_segment() {
        assert_eq!(
            metadata_url(&req("POST", "/mcp/tools/call")),
            "https://gw.example:8443/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url(&req("POST", "/a2a")),
            "https://gw.example:8443/.well-known/oauth-protected-resource/a2a"
        );
        assert_eq!(
            metadata_url(&req("POST", "/")),
            "https://gw.example:8443/.well-known/oauth-protected-resource"
        );
        let evil = RequestInfo {
            authority: "x\"y, z=1",
            ..req("GET", "/mcp")
        };
        assert_eq!(evil.origin(), "https://xyz1");
    }
}
