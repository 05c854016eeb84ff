//! What a denied caller receives: the recipe's `deniedResponse`.
//!
//! Two shapes exist because two kinds of client exist:
//! - **HTTP**: the recipe's status (403) and templated body, exactly as
//!   configured. Right for clients of the recipe's per-operation paths
//!   (`POST /mcp/tools/call`), which read the HTTP status.
//! - **JSON-RPC**: HTTP 200 with a JSON-RPC error that echoes the request
//!   `id`; the configured body (rendered) goes into `error.data`. The
//!   official MCP clients treat an HTTP 4xx on their single endpoint as a
//!   transport failure, while a JSON-RPC error fails only that one call and
//!   the session keeps working.
//!
//! `format: auto` (the default) picks HTTP on the recipe's per-operation
//! paths and JSON-RPC on the single MCP endpoint.

use crate::config::ConfigError;
use crate::json_path::JsonPath;
use crate::template::{Bindings, Escape, Scope, Template};
use serde_json::{json, Value};

/// Variables a denial template may use.
pub const DENIAL_VARS: &[&str] = &[
    "agentId",
    "agentName",
    "toolName",
    "allowedTools",
    "method",
    "reason",
];

const DENIAL_SCOPE: Scope<'static> = Scope {
    vars: DENIAL_VARS,
    payload: false,
    headers: false,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DenialFormat {
    /// HTTP on the recipe's per-operation paths, JSON-RPC on the single endpoint.
    #[default]
    Auto,
    Http,
    JsonRpc,
}

/// The default JSON-RPC error code for a denied call.
pub const DEFAULT_JSONRPC_CODE: i64 = crate::protocol::jsonrpc::codes::TOOL_DENIED;

pub const DEFAULT_BODY: &str = r##"{
  "error": "tool_access_denied",
  "message": "Agent '#[vars.agentId]' is not authorized to invoke tool '#[vars.toolName]'",
  "allowedTools": "#[vars.allowedTools]"
}
"##;

/// The loaded `deniedResponse`.
#[derive(Debug, Clone)]
pub struct DeniedResponse {
    pub status: u16,
    body: Template,
    headers: Vec<(String, Template)>,
    pub format: DenialFormat,
    pub jsonrpc_code: i64,
}

/// Values for one denial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenialContext {
    pub agent_id: String,
    pub agent_name: String,
    /// The tool name (or resource URI / prompt name) that was refused.
    pub tool_name: String,
    /// The matching rule's allowed patterns, joined with `, `.
    pub allowed_tools: String,
    pub method: String,
    /// Machine-readable reason ([`crate::tool_acl::rules::DenyReason::as_str`]).
    pub reason: String,
}

impl Bindings for DenialContext {
    fn var(&self, name: &str, path: &JsonPath) -> Option<String> {
        if !path.steps().is_empty() {
            return None;
        }
        Some(
            match name {
                "agentId" => &self.agent_id,
                "agentName" => &self.agent_name,
                "toolName" => &self.tool_name,
                "allowedTools" => &self.allowed_tools,
                "method" => &self.method,
                "reason" => &self.reason,
                _ => return None,
            }
            .clone(),
        )
    }
}

pub use crate::reply::LocalReply as Reply;

impl DeniedResponse {
    pub fn new(
        status: u16,
        body: &str,
        headers: Vec<(String, String)>,
        format: DenialFormat,
        jsonrpc_code: i64,
    ) -> Result<Self, ConfigError> {
        if !(400..=599).contains(&status) && format != DenialFormat::JsonRpc {
            return Err(ConfigError::at(
                "statusCode",
                format!("a denial must be an HTTP error (400-599), got {status}"),
            ));
        }
        let body = Template::parse(body, DENIAL_SCOPE).map_err(|m| ConfigError::at("body", m))?;
        let headers = headers
            .into_iter()
            .map(|(name, value)| {
                let template = Template::parse(&value, DENIAL_SCOPE)
                    .map_err(|m| ConfigError::at(format!("headers.{name}"), m))?;
                if !crate::protocol::http::is_header_name(&name, false) {
                    return Err(ConfigError::at(
                        format!("headers.{name}"),
                        "not a valid HTTP header name",
                    ));
                }
                Ok((name.to_ascii_lowercase(), template))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            status,
            body,
            headers,
            format,
            jsonrpc_code,
        })
    }

    /// The recipe's response, for `DenialFormat::Http`.
    pub fn http(&self, ctx: &DenialContext) -> Reply {
        let body = self.body.render(ctx, Escape::JsonString);
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, t)| (n.clone(), t.render(ctx, Escape::HeaderValue)))
            .collect();
        if !headers.iter().any(|(n, _)| n == "content-type") {
            let json = serde_json::from_str::<Value>(&body).is_ok();
            headers.push((
                "content-type".into(),
                if json {
                    "application/json"
                } else {
                    "text/plain; charset=utf-8"
                }
                .into(),
            ));
        }
        Reply {
            status: u32::from(self.status),
            headers,
            body,
        }
    }

    /// The JSON-RPC error object for one denied request: `message` comes from
    /// the rendered body's `message` member when it has one, and the whole
    /// rendered body is `data`.
    pub fn jsonrpc_error(&self, ctx: &DenialContext) -> Value {
        let rendered = self.body.render(ctx, Escape::JsonString);
        let data = serde_json::from_str::<Value>(&rendered).unwrap_or(Value::String(rendered));
        let message = data
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "agent '{}' is not authorized to invoke '{}'",
                    ctx.agent_id, ctx.tool_name
                )
            });
        json!({"code": self.jsonrpc_code, "message": message, "data": data})
    }
}

/// A JSON-RPC response carrying `error`, echoing `id` (null when unknown).
pub fn jsonrpc_error_response(id: Option<&Value>, error: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> DenialContext {
        DenialContext {
            agent_id: "sentinel-1".into(),
            agent_name: "Sentinel".into(),
            tool_name: "execute_code".into(),
            allowed_tools: "search_patterns, classify_content, read_config".into(),
            method: "tools/call".into(),
            reason: "denied_by_rule".into(),
        }
    }

    fn recipe() -> DeniedResponse {
        DeniedResponse::new(
            403,
            DEFAULT_BODY,
            vec![],
            DenialFormat::Auto,
            DEFAULT_JSONRPC_CODE,
        )
        .unwrap()
    }

    #[test]
    fn recipe_body_renders_as_configured() {
        let reply = recipe().http(&ctx());
        assert_eq!(reply.status, 403);
        assert_eq!(
            reply.headers,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            v,
            json!({
                "error": "tool_access_denied",
                "message": "Agent 'sentinel-1' is not authorized to invoke tool 'execute_code'",
                "allowedTools": "search_patterns, classify_content, read_config"
            })
        );
        // exactly the template, whitespace included
        assert!(reply
            .body
            .starts_with("{\n  \"error\": \"tool_access_denied\",\n"));
    }

    #[test]
    fn hostile_tool_names_cannot_break_the_json() {
        let mut c = ctx();
        c.tool_name = "x\",\"allowedTools\":\"*\"\n".into();
        let reply = recipe().http(&c);
        let v: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            v["allowedTools"],
            "search_patterns, classify_content, read_config"
        );
        assert!(v["message"]
            .as_str()
            .unwrap()
            .contains("x\",\"allowedTools"));
    }

    #[test]
    fn jsonrpc_error_wraps_the_rendered_body() {
        let err = recipe().jsonrpc_error(&ctx());
        assert_eq!(err["code"], -32001);
        assert_eq!(
            err["message"],
            "Agent 'sentinel-1' is not authorized to invoke tool 'execute_code'"
        );
        assert_eq!(err["data"]["error"], "tool_access_denied");
        let resp = jsonrpc_error_response(Some(&json!("req-7")), err);
        assert_eq!(resp["id"], "req-7");
        assert_eq!(resp["jsonrpc"], "2.0");
        assert_eq!(jsonrpc_error_response(None, json!({}))["id"], Value::Null);
    }

    #[test]
    fn plain_text_bodies_and_custom_headers() {
        let d = DeniedResponse::new(
            451,
            "no #[vars.toolName] for you",
            vec![("X-Denied-Tool".into(), "#[vars.toolName]".into())],
            DenialFormat::Http,
            -32003,
        )
        .unwrap();
        let reply = d.http(&ctx());
        assert_eq!(reply.body, "no execute_code for you");
        assert!(reply
            .headers
            .contains(&("x-denied-tool".into(), "execute_code".into())));
        assert!(reply
            .headers
            .contains(&("content-type".into(), "text/plain; charset=utf-8".into())));
        let err = d.jsonrpc_error(&ctx());
        assert_eq!(err["data"], "no execute_code for you");
        assert_eq!(err["code"], -32003);
        assert!(err["message"].as_str().unwrap().contains("execute_code"));
    }

    #[test]
    fn bad_templates_and_statuses_are_config_errors() {
        let e = DeniedResponse::new(403, "#[vars.agentID]", vec![], DenialFormat::Auto, -1)
            .unwrap_err();
        assert_eq!(e.path, "body");
        let e = DeniedResponse::new(
            403,
            "#[payload.params.name]",
            vec![],
            DenialFormat::Auto,
            -1,
        )
        .unwrap_err();
        assert_eq!(e.path, "body");
        let e = DeniedResponse::new(200, "x", vec![], DenialFormat::Http, -1).unwrap_err();
        assert_eq!(e.path, "statusCode");
        let e = DeniedResponse::new(
            403,
            "x",
            vec![("bad header".into(), "v".into())],
            DenialFormat::Http,
            -1,
        )
        .unwrap_err();
        assert_eq!(e.path, "headers.bad header");
    }
}
