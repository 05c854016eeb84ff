//! How the identity filter says no: status, JSON body, `WWW-Authenticate`
//! challenge and the `gw_decision` value audit records.
//!
//! | error                   | status | when |
//! |-------------------------|--------|------|
//! | `missing_credentials`   | 401 | neither an API key nor a bearer token |
//! | `ambiguous_credentials` | 401 | both an API key and a bearer token |
//! | `invalid_request`       | 401 | malformed or repeated credential header, unsupported `Authorization` scheme |
//! | `invalid_api_key`       | 401 | key unknown, or the validation service says invalid (401/403/404) |
//! | `invalid_token`         | 401 | introspection says inactive, token expired, wrong audience |
//! | `insufficient_scope`    | 403 | token lacks a scope this path needs |
//! | `no_agent_identity`     | 403 | credential valid but `identityExtraction.agentId` renders empty |
//! | `identity_unavailable`  | 503 | validation/introspection endpoint down, slow (timeout), erroring or answering garbage; too many callouts in flight |

use crate::filter_state::decision;
use serde_json::json;

/// The parameters of a `Bearer` challenge beyond `resource_metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BearerChallenge {
    /// RFC 6750 §3.1 error code.
    pub error: Option<&'static str>,
    /// Space-separated scopes needed (with `insufficient_scope`).
    pub scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub status: u32,
    pub error: &'static str,
    pub message: String,
    pub challenge: BearerChallenge,
}

impl Denial {
    fn new(status: u32, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            message: message.into(),
            challenge: BearerChallenge::default(),
        }
    }

    pub fn missing(message: impl Into<String>) -> Self {
        Self::new(401, "missing_credentials", message)
    }
    pub fn ambiguous(message: impl Into<String>) -> Self {
        Self::new(401, "ambiguous_credentials", message).bearer_error("invalid_request")
    }
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(401, "invalid_request", message).bearer_error("invalid_request")
    }
    pub fn invalid_api_key(message: impl Into<String>) -> Self {
        Self::new(401, "invalid_api_key", message)
    }
    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self::new(401, "invalid_token", message).bearer_error("invalid_token")
    }
    pub fn insufficient_scope(missing: &[String], required: &[String]) -> Self {
        let mut d = Self::new(
            403,
            "insufficient_scope",
            format!(
                "the token lacks the scope(s) {} required here",
                missing.join(" ")
            ),
        )
        .bearer_error("insufficient_scope");
        d.challenge.scope = Some(required.join(" "));
        d
    }
    pub fn no_agent_identity(message: impl Into<String>) -> Self {
        Self::new(403, "no_agent_identity", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "identity_unavailable", message)
    }
    /// The worker already has `limit` callouts in flight: refused now
    /// rather than queued (see `budget`).
    pub fn callouts_exhausted(limit: u32) -> Self {
        Self::unavailable(format!(
            "cannot verify the credential now: too many credential checks in flight \
             (maxCalloutsInFlight {limit} per worker); retry shortly"
        ))
    }

    fn bearer_error(mut self, error: &'static str) -> Self {
        self.challenge.error = Some(error);
        self
    }

    /// The `gw_decision` value for audit.
    pub fn decision(&self) -> &'static str {
        match self.status {
            401 => decision::UNAUTHENTICATED,
            403 => decision::FORBIDDEN,
            _ => decision::UNAVAILABLE,
        }
    }

    pub fn body(&self) -> String {
        json!({"error": self.error, "message": self.message}).to_string()
    }
}

pub use crate::reply::LocalReply;

/// `Bearer ...` challenge for `WWW-Authenticate`.
pub fn bearer_challenge(challenge: &BearerChallenge, resource_metadata: &str) -> String {
    let mut params = Vec::new();
    if let Some(error) = challenge.error {
        params.push(format!("error=\"{error}\""));
    }
    if let Some(scope) = &challenge.scope {
        params.push(format!("scope=\"{}\"", quote_safe(scope)));
    }
    params.push(format!(
        "resource_metadata=\"{}\"",
        quote_safe(resource_metadata)
    ));
    format!("Bearer {}", params.join(", "))
}

/// Characters that may go into a quoted-string unescaped (no `"`, `\`,
/// controls): anything else is dropped.
fn quote_safe(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc6750_and_rfc9728() {
        let d = Denial::insufficient_scope(&["a:b".into()], &["a:b".into(), "c".into()]);
        assert_eq!(d.status, 403);
        assert_eq!(d.decision(), "forbidden");
        assert_eq!(
            bearer_challenge(&d.challenge, "https://gw/.well-known/oauth-protected-resource/mcp"),
            "Bearer error=\"insufficient_scope\", scope=\"a:b c\", resource_metadata=\"https://gw/.well-known/oauth-protected-resource/mcp\""
        );
        let d = Denial::missing("x");
        assert_eq!(
            bearer_challenge(&d.challenge, "u\"x"),
            "Bearer resource_metadata=\"ux\""
        );
        assert_eq!(d.decision(), "unauthenticated");
        assert_eq!(Denial::unavailable("x").decision(), "unavailable");
        let busy = Denial::callouts_exhausted(4);
        assert_eq!((busy.status, busy.error), (503, "identity_unavailable"));
        assert!(busy.message.contains("in flight"), "{}", busy.message);
    }

    #[test]
    fn body_is_json_with_error_and_message() {
        let body = Denial::invalid_token("token \"x\" is not active").body();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "invalid_token");
        assert_eq!(v["message"], "token \"x\" is not active");
    }
}
