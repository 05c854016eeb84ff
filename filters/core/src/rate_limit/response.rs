//! The reply to a limited request: the recipe's `rateLimitResponse` (status,
//! body and header templates), or, when `jsonRpcError` is configured and the
//! request is JSON-RPC, a JSON-RPC error echoing the request id(s) so MCP and
//! A2A clients see a protocol error instead of a transport failure.
//! `Retry-After` is always sent, even if the configured headers omit it.

use crate::json_path::JsonPath;
use crate::protocol::a2a::Binding;
use crate::protocol::request_facts::RequestFacts;
use crate::rate_limit::a2a_rest;
use crate::rate_limit::bill::Charge;
use crate::rate_limit::config::{Limit, RateLimitConfig};
use crate::rate_limit::sliding_window::ceil_secs;
use crate::template::{Bindings, Escape};
use serde_json::{json, Value};

/// Why a request is refused.
#[derive(Debug, Clone)]
pub struct Limited<'a> {
    /// The limit whose window frees last (the one that decides Retry-After).
    pub limit: &'a Limit,
    pub agent_id: &'a str,
    pub tool_name: Option<&'a str>,
    pub retry_after_secs: u64,
}

pub use crate::reply::LocalReply as Reply;

impl Bindings for Limited<'_> {
    fn var(&self, name: &str, _: &JsonPath) -> Option<String> {
        Some(match name {
            "agentId" => self.agent_id.to_string(),
            "retryAfter" => self.retry_after_secs.to_string(),
            "toolName" => self.tool_name.unwrap_or_default().to_string(),
            "operation" => self.limit.operation.canonical_name().to_string(),
            "limitName" => self.limit.name.clone(),
            "maxRequests" => self.limit.max_requests.to_string(),
            "windowSeconds" => self.limit.window_seconds.to_string(),
            "burstAllowance" => self.limit.burst_allowance.to_string(),
            _ => return None,
        })
    }
}

/// Why the request whose charges were refused is refused: the binding
/// charge's limit (the one that frees last; the first charge when unsure)
/// and the Retry-After it implies. A batch larger than a window's quota
/// never fits (`retry_after_ms == u64::MAX`): the client is told to wait a
/// full retention rather than an impossible moment. `None` only when the
/// charges name no limit of `config` (inconsistent state).
pub fn refusal<'a>(
    config: &'a RateLimitConfig,
    charges: &'a [Charge],
    binding: usize,
    retry_after_ms: u64,
    agent_id: &'a str,
) -> Option<Limited<'a>> {
    let charge = charges.get(binding).or_else(|| charges.first());
    let limit = charge.and_then(|c| config.limits.get(c.limit))?;
    let retry_ms = if retry_after_ms == u64::MAX {
        limit.policy.retention_ms()
    } else {
        retry_after_ms
    };
    Some(Limited {
        limit,
        agent_id,
        tool_name: charge.and_then(|c| c.tool_name.as_deref()),
        retry_after_secs: ceil_secs(retry_ms).max(1),
    })
}

/// Build the reply for a refused request. `rate_limit_headers` are the IETF
/// fields (empty when disabled); `facts` the request body's, if it had one.
pub fn refusal_reply(
    config: &RateLimitConfig,
    refusal: &Limited<'_>,
    facts: Option<&RequestFacts>,
    rate_limit_headers: Vec<(String, String)>,
) -> Reply {
    let response = &config.response;
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut has_retry_after = false;
    let mut has_content_type = false;
    for (name, template) in &response.headers {
        has_retry_after |= name == "retry-after";
        has_content_type |= name == "content-type";
        headers.push((name.clone(), template.render(refusal, Escape::HeaderValue)));
    }
    if !has_retry_after {
        headers.push(("retry-after".into(), refusal.retry_after_secs.to_string()));
    }
    headers.extend(rate_limit_headers);

    if let (Some(form), Some(facts)) = (&response.json_rpc, facts) {
        let message = form.message.render(refusal, Escape::Raw);
        let error = |id: &Value| {
            json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {
                    "code": form.code,
                    "message": message,
                    "data": {
                        "error": "agent_rate_limited",
                        "agentId": refusal.agent_id,
                        "limit": refusal.limit.name,
                        "retryAfterSeconds": refusal.retry_after_secs,
                    }
                }
            })
        };
        let ids: Vec<&Value> = facts
            .messages
            .iter()
            .filter_map(|m| m.id.as_ref())
            .collect();
        let body = match (facts.batch, ids.as_slice()) {
            (false, [id]) => Some(error(id)),
            (true, ids) if !ids.is_empty() => {
                Some(Value::Array(ids.iter().map(|id| error(id)).collect()))
            }
            _ => None,
        };
        if let Some(body) = body {
            headers.retain(|(n, _)| n != "content-type");
            headers.push(("content-type".into(), "application/json".into()));
            return Reply {
                status: form.status,
                headers,
                body: body.to_string(),
            };
        }
    }

    // A2A REST: the binding's own error format (`a2a_rest`).
    if facts.and_then(|f| f.binding.as_deref()) == Some(Binding::HttpJson.as_str()) {
        headers.retain(|(n, _)| n != "content-type");
        headers.push(("content-type".into(), "application/json".into()));
        let operation = refusal.limit.operation.canonical_name();
        let body = a2a_rest::body(
            refusal.agent_id,
            &refusal.limit.name,
            operation,
            refusal.retry_after_secs,
        );
        return Reply {
            status: 429,
            headers,
            body: body.to_string(),
        };
    }
    if !has_content_type {
        headers.push(("content-type".into(), response.content_type.into()));
    }
    Reply {
        status: response.status,
        headers,
        body: response.body.render(refusal, Escape::JsonString),
    }
}

/// JSON-RPC code of a refusal delivered on a 2024-11-05 stream when the
/// config has no `jsonRpcError` (the default code of that form).
pub const LEGACY_STREAM_CODE: i64 = -32029;

/// A refusal for a client that reads answers only from its 2024-11-05 GET
/// stream: a JSON-RPC error with the request's `id` (the configured
/// `jsonRpcError` form when there is one, else the recipe body as `data`).
pub fn stream_answer(config: &RateLimitConfig, reply: &Reply, id: &Value) -> Value {
    let code = config
        .response
        .json_rpc
        .as_ref()
        .map_or(LEGACY_STREAM_CODE, |f| f.code);
    crate::tool_acl::legacy_sse::refusal_answer(&reply.body, id, code, "rate limit exceeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPE: &str = include_str!("../../../../examples/recipe/agent-rate-limit.yaml");

    fn refusal<'a>(c: &'a RateLimitConfig, agent: &'static str) -> Limited<'a> {
        Limited {
            limit: &c.limits[0],
            agent_id: agent,
            tool_name: Some("search_patterns"),
            retry_after_secs: 17,
        }
    }

    #[test]
    fn recipe_reply_is_429_with_body_and_retry_after() {
        let c = RateLimitConfig::load(RECIPE.as_bytes()).unwrap();
        let r = refusal_reply(
            &c,
            &refusal(&c, "sentinel-\"1"),
            None,
            vec![("ratelimit".into(), "x".into())],
        );
        assert_eq!(r.status, 429);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"error":"agent_rate_limited","agentId":"sentinel-\"1","retryAfterSeconds":"17"})
        );
        assert!(r.headers.contains(&("retry-after".into(), "17".into())));
        assert!(r
            .headers
            .contains(&("content-type".into(), "application/json".into())));
        assert!(r.headers.contains(&("ratelimit".into(), "x".into())));
    }

    #[test]
    fn retry_after_is_added_when_not_configured() {
        let c = RateLimitConfig::load(
            b"limits: [{path: /mcp/tools/call, maxRequests: 1, windowSeconds: 1}]\nrateLimitResponse: {body: 'slow down #[vars.agentId]'}\n",
        )
        .unwrap();
        let r = refusal_reply(&c, &refusal(&c, "a"), None, vec![]);
        assert_eq!(r.body, "slow down a");
        assert!(r.headers.contains(&("retry-after".into(), "17".into())));
        assert!(r
            .headers
            .contains(&("content-type".into(), "text/plain; charset=utf-8".into())));
    }

    #[test]
    fn json_rpc_form_echoes_ids() {
        let c =
            RateLimitConfig::load(format!("{RECIPE}  jsonRpcError: {{code: -32029}}\n").as_bytes())
                .unwrap();
        let (_, facts) = RequestFacts::inspect(
            br#"{"jsonrpc":"2.0","id":"q7","method":"tools/call","params":{"name":"x"}}"#,
        )
        .unwrap();
        let r = refusal_reply(&c, &refusal(&c, "a"), Some(&facts), vec![]);
        assert_eq!(r.status, 200);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["id"], "q7");
        assert_eq!(body["error"]["code"], -32029);
        assert_eq!(
            body["error"]["message"],
            "Rate limit exceeded: retry after 17 s"
        );
        assert_eq!(body["error"]["data"]["retryAfterSeconds"], 17);
        assert!(r.headers.contains(&("retry-after".into(), "17".into())));

        let (_, batch) = RequestFacts::inspect(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"y"}}]"#,
        )
        .unwrap();
        let r = refusal_reply(&c, &refusal(&c, "a"), Some(&batch), vec![]);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 2);

        // A notification alone has no id to answer: HTTP form.
        let (_, note) = RequestFacts::inspect(
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
        )
        .unwrap();
        assert_eq!(
            refusal_reply(&c, &refusal(&c, "a"), Some(&note), vec![]).status,
            429
        );
    }

    #[test]
    fn stream_answers_are_jsonrpc_errors_with_the_id() {
        let c = RateLimitConfig::load(RECIPE.as_bytes()).unwrap();
        let (_, facts) = RequestFacts::inspect(
            br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x"}}"#,
        )
        .unwrap();
        // Recipe body (HTTP form): wrapped, the body as data.
        let r = refusal_reply(&c, &refusal(&c, "a"), Some(&facts), vec![]);
        let v = stream_answer(&c, &r, &json!(4));
        assert_eq!(v["id"], 4);
        assert_eq!(v["error"]["code"], LEGACY_STREAM_CODE);
        assert_eq!(v["error"]["message"], "rate limit exceeded");
        assert_eq!(v["error"]["data"]["error"], "agent_rate_limited");
        assert_eq!(v["error"]["data"]["retryAfterSeconds"], "17");
        // The JSON-RPC form is delivered as it is.
        let c =
            RateLimitConfig::load(format!("{RECIPE}  jsonRpcError: {{code: -32050}}\n").as_bytes())
                .unwrap();
        let r = refusal_reply(&c, &refusal(&c, "a"), Some(&facts), vec![]);
        let v = stream_answer(&c, &r, &json!(4));
        assert_eq!(v["error"]["code"], -32050);
        assert_eq!(v["error"]["data"]["retryAfterSeconds"], 17);
    }

    #[test]
    fn a2a_rest_requests_get_the_bindings_error_format() {
        let c = RateLimitConfig::load(RECIPE.as_bytes()).unwrap();
        let call = crate::protocol::a2a::rest_call("POST", "/a2a/rest/message:send").unwrap();
        let (_, facts) = RequestFacts::from_rest(&call, br#"{"message":{}}"#);
        let r = refusal_reply(&c, &refusal(&c, "sentinel-1"), Some(&facts), vec![]);
        assert_eq!(r.status, 429);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(
            body["error"]["details"][0]["metadata"]["agentId"],
            "sentinel-1"
        );
        assert!(r.headers.iter().any(|(n, _)| n == "retry-after"));
        assert!(r
            .headers
            .contains(&("content-type".into(), "application/json".into())));
    }
}
