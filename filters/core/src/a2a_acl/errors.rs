//! The A2A stage's refusals, each in the format of the binding it answers:
//!
//! - JSON-RPC: a JSON-RPC error with A2A's code (`-32001` TaskNotFound,
//!   `-32009` VersionNotSupported) and HTTP 200, as the a2a-sdk server
//!   answers them (clients read A2A errors from a 200); an access denial
//!   has no A2A code, so it gets HTTP 403 and the configured code
//!   (`a2a.deniedResponse.jsonRpcCode`, default [`DEFAULT_DENIED_CODE`]).
//! - HTTP+JSON (REST): A2A 1.0's error body, a `google.rpc.Status` as JSON
//!   (`{"error": {"code": <http status>, "status": "NOT_FOUND", "message",
//!   "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
//!   "reason": "TASK_NOT_FOUND", "domain": "a2a-protocol.org", ...}]}}`)
//!   with the same HTTP status, which is what the a2a-sdk's REST client maps
//!   back to its typed errors.

use crate::tool_acl::denial::jsonrpc_error_response;
use serde_json::{json, Value};

/// JSON-RPC `TaskNotFoundError`.
pub const TASK_NOT_FOUND: i64 = -32001;
/// JSON-RPC "Invalid Request".
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC `VersionNotSupportedError` (A2A 1.0).
pub const VERSION_NOT_SUPPORTED: i64 = -32009;
/// JSON-RPC code of an access denial (server-error range, outside the
/// codes A2A assigns: -32001..-32009).
pub const DEFAULT_DENIED_CODE: i64 = -32040;
/// `google.rpc.ErrorInfo` domain of A2A's own errors.
pub const A2A_DOMAIN: &str = "a2a-protocol.org";
/// ... and of the gateway's access denial, which A2A does not define.
pub const GATEWAY_DOMAIN: &str = "gateway.a2a";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The task is another agent's, or unknown: "not found" either way, so
    /// a caller cannot learn that someone else's task exists.
    TaskNotFound,
    VersionNotSupported,
    AccessDenied,
    /// A body the gateway cannot read strictly where what it says matters
    /// (a REST send: its `message.taskId` and skill hints).
    InvalidRequest,
}

impl Kind {
    /// The audit trail's decision (`filter_state::decision`) for it.
    pub fn decision(self) -> &'static str {
        use crate::filter_state::decision;
        match self {
            Kind::VersionNotSupported | Kind::InvalidRequest => decision::BAD_REQUEST,
            Kind::TaskNotFound | Kind::AccessDenied => decision::FORBIDDEN,
        }
    }
}

/// A refusal ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct A2aReply {
    pub status: u16,
    pub body: String,
    pub kind: Kind,
}

/// What the error concerns (for `data` / `ErrorInfo.metadata`).
#[derive(Debug, Clone, Default)]
pub struct Detail {
    pub message: String,
    pub metadata: serde_json::Map<String, Value>,
}

/// The refusal for a JSON-RPC request (`id` of the request, if any).
pub fn jsonrpc(kind: Kind, id: Option<&Value>, detail: &Detail, denied_code: i64) -> A2aReply {
    let (status, code) = match kind {
        Kind::TaskNotFound => (200, TASK_NOT_FOUND),
        Kind::VersionNotSupported => (200, VERSION_NOT_SUPPORTED),
        Kind::AccessDenied => (403, denied_code),
        Kind::InvalidRequest => (400, INVALID_REQUEST),
    };
    let mut error = serde_json::Map::new();
    error.insert("code".into(), Value::from(code));
    error.insert("message".into(), Value::String(detail.message.clone()));
    if !detail.metadata.is_empty() {
        error.insert("data".into(), Value::Object(detail.metadata.clone()));
    }
    let error = Value::Object(error);
    A2aReply {
        status,
        body: jsonrpc_error_response(id, error).to_string(),
        kind,
    }
}

/// The refusal for an HTTP+JSON request.
pub fn rest(kind: Kind, detail: &Detail) -> A2aReply {
    let (status, grpc, reason, domain) = match kind {
        Kind::TaskNotFound => (404, "NOT_FOUND", "TASK_NOT_FOUND", A2A_DOMAIN),
        Kind::VersionNotSupported => (
            400,
            "FAILED_PRECONDITION",
            "VERSION_NOT_SUPPORTED",
            A2A_DOMAIN,
        ),
        Kind::AccessDenied => (403, "PERMISSION_DENIED", "ACCESS_DENIED", GATEWAY_DOMAIN),
        Kind::InvalidRequest => (400, "INVALID_ARGUMENT", "INVALID_REQUEST", A2A_DOMAIN),
    };
    let body = json!({"error": {
        "code": status,
        "status": grpc,
        "message": detail.message,
        "details": [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": domain,
            "metadata": Value::Object(detail.metadata.clone()),
        }],
    }});
    A2aReply {
        status,
        body: body.to_string(),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_not_found_in_both_bindings() {
        let d = Detail {
            message: "Task not found".into(),
            ..Detail::default()
        };
        let r = jsonrpc(Kind::TaskNotFound, Some(&json!(7)), &d, DEFAULT_DENIED_CODE);
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], -32001);
        assert!(v["error"].get("data").is_none());
        let r = rest(Kind::TaskNotFound, &d);
        assert_eq!(r.status, 404);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["status"], "NOT_FOUND");
        assert_eq!(v["error"]["code"], 404);
        assert_eq!(v["error"]["details"][0]["reason"], "TASK_NOT_FOUND");
        assert_eq!(v["error"]["details"][0]["domain"], A2A_DOMAIN);
    }

    #[test]
    fn version_and_denial() {
        let mut d = Detail {
            message: "nope".into(),
            ..Detail::default()
        };
        d.metadata.insert("requested".into(), json!("2.0"));
        let r = jsonrpc(Kind::VersionNotSupported, None, &d, DEFAULT_DENIED_CODE);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!((r.status, v["error"]["code"].as_i64()), (200, Some(-32009)));
        assert_eq!(v["error"]["data"]["requested"], "2.0");
        assert_eq!(v["id"], Value::Null);
        let r = rest(Kind::VersionNotSupported, &d);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(v["error"]["details"][0]["reason"], "VERSION_NOT_SUPPORTED");
        assert_eq!(v["error"]["details"][0]["metadata"]["requested"], "2.0");
        let r = jsonrpc(Kind::AccessDenied, Some(&json!("a")), &d, -32099);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!((r.status, v["error"]["code"].as_i64()), (403, Some(-32099)));
        let r = rest(Kind::AccessDenied, &d);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (r.status, v["error"]["status"].as_str()),
            (403, Some("PERMISSION_DENIED"))
        );
    }
}
