//! Judging every governed message of a request body: the whole decision of
//! the tool ACL, as a value the filter turns into host calls.
//!
//! Every message of a batch is judged; one denied message denies the
//! request (the others are answered "not executed"), so a batch cannot
//! smuggle a denied call past the ACL.

use crate::protocol::request_facts::{MessageFacts, RequestFacts, VerifiedIdentity};
use crate::tool_acl::config::ToolAclConfig;
use crate::tool_acl::denial::{jsonrpc_error_response, DenialContext, DenialFormat, Reply};
use crate::tool_acl::request_guard::{Refusal, INVALID_PARAMS};
use crate::tool_acl::rules::{Agent, Ruling, TargetKind};
use serde_json::{json, Value};

#[derive(Debug)]
pub enum Verdict {
    /// Nothing governed, or every governed message allowed.
    Allow,
    /// A governed message cannot be judged (no tool name or URI).
    Refuse { refusal: Refusal, id: Option<Value> },
    /// At least one message denied: answer with `reply`. `first` describes
    /// the first denial (for logs).
    Deny {
        reply: Reply,
        first: Box<DenialContext>,
    },
}

/// Judge `facts` for the verified agent. `identity` is asked only when a
/// message is governed (it reads filter state). `on_operation_path` is true
/// on the recipe's per-operation paths (`/mcp/tools/call`), where the `auto`
/// denial format is the recipe's HTTP response rather than a JSON-RPC error.
pub fn authorize(
    config: &ToolAclConfig,
    facts: &RequestFacts,
    identity: impl FnOnce() -> Option<VerifiedIdentity>,
    on_operation_path: bool,
) -> Verdict {
    let governed: Vec<(&MessageFacts, TargetKind)> = facts
        .messages
        .iter()
        .filter_map(|m| {
            let kind = TargetKind::of(m.operation()?)?;
            config.governs(kind).then_some((m, kind))
        })
        .collect();
    if governed.is_empty() {
        return Verdict::Allow;
    }
    let identity = identity();
    let agent = identity.as_ref().map(|i| Agent {
        id: &i.agent_id,
        name: &i.agent_name,
    });
    let mut denied: Vec<(&MessageFacts, DenialContext)> = Vec::new();
    for (message, kind) in governed {
        let target = match kind {
            TargetKind::Resource => message.uri.as_deref(),
            TargetKind::Tool | TargetKind::Prompt => message.name.as_deref(),
        };
        let Some(target) = target else {
            let field = if kind == TargetKind::Resource {
                "uri"
            } else {
                "name"
            };
            return Verdict::Refuse {
                refusal: Refusal::new(
                    400,
                    INVALID_PARAMS,
                    format!(
                        "{} needs a string params.{field}",
                        kind.operation().canonical_name()
                    ),
                ),
                id: message.id.clone(),
            };
        };
        if let Ruling::Deny { reason, rule } = config.acl.decide(agent, kind, target) {
            denied.push((
                message,
                DenialContext {
                    agent_id: agent.map_or_else(|| "unknown".to_string(), |a| a.id.to_string()),
                    agent_name: agent.map(|a| a.name.to_string()).unwrap_or_default(),
                    tool_name: target.to_string(),
                    allowed_tools: rule
                        .map(|r| r.permissions(kind).allowed.patterns().join(", "))
                        .unwrap_or_default(),
                    method: message.method.clone().unwrap_or_default(),
                    reason: reason.as_str().to_string(),
                },
            ));
        }
    }
    let Some((first_message, first)) = denied.first() else {
        return Verdict::Allow;
    };
    let format = match config.denial.format {
        DenialFormat::Auto if on_operation_path => DenialFormat::Http,
        DenialFormat::Auto => DenialFormat::JsonRpc,
        f => f,
    };
    let reply = if format == DenialFormat::Http {
        config.denial.http(first)
    } else {
        jsonrpc_denial(config, facts, first_message, &denied)
    };
    Verdict::Deny {
        reply,
        first: Box::new(first.clone()),
    }
}

fn jsonrpc_denial(
    config: &ToolAclConfig,
    facts: &RequestFacts,
    first: &MessageFacts,
    denied: &[(&MessageFacts, DenialContext)],
) -> Reply {
    let error_for = |m: &MessageFacts| -> Value {
        match denied.iter().find(|(d, _)| std::ptr::eq(*d, m)) {
            Some((_, ctx)) => config.denial.jsonrpc_error(ctx),
            None => json!({
                "code": config.denial.jsonrpc_code,
                "message": "not executed: another request in this batch was denied",
            }),
        }
    };
    let body = if facts.batch {
        let replies: Vec<Value> = facts
            .messages
            .iter()
            .filter(|m| m.id.is_some() && m.method.is_some())
            .map(|m| jsonrpc_error_response(m.id.as_ref(), error_for(m)))
            .collect();
        if replies.is_empty() {
            // Only notifications: JSON-RPC answers nothing.
            return Reply {
                status: 202,
                headers: Vec::new(),
                body: String::new(),
            };
        }
        Value::Array(replies)
    } else {
        jsonrpc_error_response(first.id.as_ref(), error_for(first))
    };
    Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::tool_acl::config::ToolAclSpec;

    fn recipe() -> ToolAclConfig {
        load::<ToolAclSpec, ToolAclConfig>(include_bytes!(
            "../../../../examples/recipe/mcp-tool-acl.yaml"
        ))
        .unwrap()
    }

    fn facts(body: &str) -> RequestFacts {
        RequestFacts::inspect(body.as_bytes()).unwrap().1
    }

    fn agent(id: &str) -> impl FnOnce() -> Option<VerifiedIdentity> + '_ {
        move || {
            Some(VerifiedIdentity {
                agent_id: id.to_string(),
                ..Default::default()
            })
        }
    }

    fn nobody() -> Option<VerifiedIdentity> {
        None
    }

    const CALL_EXECUTE: &str =
        r#"{"jsonrpc":"2.0","id":"x-1","method":"tools/call","params":{"name":"execute_code"}}"#;

    #[test]
    fn allowed_and_ungoverned_messages_pass() {
        let c = recipe();
        let read = facts(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_config"}}"#,
        );
        assert!(matches!(
            authorize(&c, &read, agent("sentinel-1"), false),
            Verdict::Allow
        ));
        let list = facts(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert!(matches!(
            authorize(&c, &list, nobody, false),
            Verdict::Allow
        ));
    }

    #[test]
    fn denial_on_the_single_endpoint_is_a_jsonrpc_error_echoing_the_id() {
        let Verdict::Deny { reply, first } =
            authorize(&recipe(), &facts(CALL_EXECUTE), agent("sentinel-1"), false)
        else {
            panic!("expected a denial")
        };
        assert_eq!(reply.status, 200);
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["id"], "x-1");
        assert_eq!(first.tool_name, "execute_code");
        assert_eq!(
            first.allowed_tools,
            "search_patterns, classify_content, read_config"
        );
    }

    #[test]
    fn denial_on_the_recipe_path_is_the_recipe_403() {
        let Verdict::Deny { reply, .. } =
            authorize(&recipe(), &facts(CALL_EXECUTE), agent("sentinel-1"), true)
        else {
            panic!("expected a denial")
        };
        assert_eq!(reply.status, 403);
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"], "tool_access_denied");
    }

    #[test]
    fn a_batch_hiding_a_denied_call_is_denied_whole() {
        let batch = facts(
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_config"}},
                {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write_file"}}]"#,
        );
        let Verdict::Deny { reply, .. } = authorize(&recipe(), &batch, agent("sentinel-1"), false)
        else {
            panic!("expected a denial")
        };
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 2);
        assert!(body[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not executed"));
    }

    #[test]
    fn unknown_agents_are_denied_and_nameless_calls_refused() {
        let read = facts(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_config"}}"#,
        );
        assert!(matches!(
            authorize(&recipe(), &read, nobody, false),
            Verdict::Deny { .. }
        ));
        let nameless = facts(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{}}"#);
        match authorize(&recipe(), &nameless, agent("admin-1"), false) {
            Verdict::Refuse { refusal, id } => {
                assert_eq!((refusal.http_status, id), (400, Some(json!(4))));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
