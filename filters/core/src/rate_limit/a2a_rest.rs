//! The 429 of a limited A2A HTTP+JSON (REST) request, in that binding's
//! error format: a `google.rpc.Status` as JSON with `RESOURCE_EXHAUSTED`,
//! a `google.rpc.ErrorInfo` (reason `RATE_LIMITED`, the agent, the limit,
//! the wait) and a `google.rpc.RetryInfo`. A REST client (the a2a-sdk's
//! among them) reads errors only in this shape; the recipe's
//! `rateLimitResponse` body is for the recipe's JSON paths. Status 429 and
//! the `Retry-After` / `RateLimit` headers stay as configured.

use serde_json::{json, Value};

/// `ErrorInfo.domain` of the gateway's own refusals (A2A defines no
/// rate-limit error).
pub const DOMAIN: &str = "gateway.a2a";

/// The body of the REST 429.
pub fn body(agent_id: &str, limit: &str, operation: &str, retry_after_secs: u64) -> Value {
    json!({"error": {
        "code": 429,
        "status": "RESOURCE_EXHAUSTED",
        "message": format!(
            "rate limit exceeded for agent '{agent_id}' ({operation}); retry after {retry_after_secs} s"
        ),
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMITED",
                "domain": DOMAIN,
                "metadata": {
                    "agentId": agent_id,
                    "limit": limit,
                    "retryAfterSeconds": retry_after_secs.to_string(),
                },
            },
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{retry_after_secs}s"),
            },
        ],
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shape() {
        let b = body("sentinel-1", "tasks/send", "tasks/send", 12);
        assert_eq!(b["error"]["code"], 429);
        assert_eq!(b["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(b["error"]["details"][0]["reason"], "RATE_LIMITED");
        assert_eq!(
            b["error"]["details"][0]["metadata"]["retryAfterSeconds"],
            "12"
        );
        assert_eq!(b["error"]["details"][1]["retryDelay"], "12s");
    }
}
