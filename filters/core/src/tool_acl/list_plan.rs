//! What the tool ACL does with lists, decided from the request and the
//! response headers: which list requests get their answers filtered, when
//! a `tools/list` may be answered from (or stored in) the cache, and how
//! the upstream's answer is read (passed, rewritten whole, rewritten event
//! by event, or refused). The adapter (`filters/tool-acl`) only applies
//! these choices.

use crate::protocol::jsonrpc::JsonRpcBody;
use crate::protocol::operation::Operation;
use crate::protocol::request_facts::RequestFacts;
use crate::tool_acl::config::ToolAclConfig;
use crate::tool_acl::request_guard;
use crate::tool_acl::rules::TargetKind;
use crate::tool_acl::sse_rewrite::Overflow;
use crate::tool_acl::tools_list;
use serde_json::Value;

/// The list a list operation returns, if it is one.
fn listed_kind(op: Operation) -> Option<TargetKind> {
    match op {
        Operation::McpToolsList => Some(TargetKind::Tool),
        Operation::McpResourcesList => Some(TargetKind::Resource),
        Operation::McpPromptsList => Some(TargetKind::Prompt),
        _ => None,
    }
}

/// Ids of the list requests in this body whose answers are filtered
/// (`ToolAclConfig::filtered_lists`).
pub fn filtered_list_ids(config: &ToolAclConfig, facts: &RequestFacts) -> Vec<Value> {
    let kinds = config.filtered_lists();
    facts
        .messages
        .iter()
        .filter(|m| {
            m.operation()
                .and_then(listed_kind)
                .is_some_and(|kind| kinds.contains(&kind))
        })
        .filter_map(|m| m.id.clone())
        .collect()
}

/// A `tools/list` the cache may answer, or store the answer of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheCandidate {
    /// The request's id (the cached answer echoes it).
    pub id: Value,
    /// Its pagination cursor (`None`: the first page).
    pub cursor: Option<String>,
}

/// Whether this request is a cacheable `tools/list`: caching on, tools
/// governed, a single `tools/list` with an id and cacheable params, and
/// not on the 2024-11-05 transport (whose client reads answers from its
/// GET stream only, so a cached answer in the POST's response would never
/// be read). `parsed` is the body if already parsed; else it is parsed here
/// (the facts carry no params; a `tools/list` body is small).
pub fn cache_candidate(
    config: &ToolAclConfig,
    facts: &RequestFacts,
    parsed: Option<&JsonRpcBody>,
    body: &[u8],
    legacy_transport: bool,
) -> Option<CacheCandidate> {
    if !config.filtered_lists().contains(&TargetKind::Tool) || legacy_transport {
        return None;
    }
    config.tools_list.cache?;
    let message = facts.single()?;
    if message.operation() != Some(Operation::McpToolsList) {
        return None;
    }
    let id = message.id.clone()?;
    let reparsed;
    let parsed = match parsed {
        Some(p) => p,
        None => {
            reparsed = crate::protocol::jsonrpc::parse(body).ok()?;
            &reparsed
        }
    };
    let cursor = tools_list::cacheable_params(parsed.messages().first()?.params())?;
    Some(CacheCandidate { id, cursor })
}

/// How the upstream's answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponsePlan {
    /// Not ours to look at.
    Pass,
    /// Buffer the whole JSON answer to a list request and rewrite it.
    Json,
    /// Rewrite SSE events as they pass; `Overflow` says what to do with an
    /// event too big to filter.
    Sse(Overflow),
    /// The answer cannot be filtered (compressed): it becomes an error.
    Refuse,
}

impl ResponsePlan {
    /// The plan for a governed request's answer, from its response
    /// headers. `answers_lists`: the request had list requests whose
    /// answers are filtered.
    pub fn choose(
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        answers_lists: bool,
    ) -> Self {
        let media = content_type
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let encoded = request_guard::check_content_encoding(content_encoding).is_err();
        let stream = media == "text/event-stream";
        if encoded && (stream || answers_lists) {
            // A compressed stream or list answer cannot be filtered: an
            // upstream that ignored our identity Accept-Encoding gets its
            // answer replaced by an error, never passed through unread.
            return ResponsePlan::Refuse;
        }
        if stream {
            // Streams answering a list fail closed on an event too big to
            // filter; other streams (tool results, the GET stream) pass
            // such an event through unexamined rather than break a large
            // tool result.
            return ResponsePlan::Sse(if answers_lists {
                Overflow::Withhold
            } else {
                Overflow::PassThrough
            });
        }
        if answers_lists && (media == "application/json" || media.ends_with("+json")) {
            // MCP clients read lists from JSON or SSE only.
            return ResponsePlan::Json;
        }
        ResponsePlan::Pass
    }
}

/// The unfiltered result to store for a cache miss, among the results an
/// answer carried: the one for the cached request's id, and only from a
/// 200 (an error status or another event: keep waiting, store nothing).
pub fn stored_result<'a>(
    status: u32,
    cached_id: &Value,
    unfiltered: &'a [(Value, Value)],
) -> Option<&'a Value> {
    if status != 200 {
        return None;
    }
    unfiltered
        .iter()
        .find(|(id, _)| id == cached_id)
        .map(|(_, result)| result)
}

/// What becomes of a chunk of a JSON list answer (`ResponsePlan::Json`),
/// which is buffered whole before it is filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonChunk {
    /// Over `toolsList.maxResponseBytes`: replaced by an error, never passed
    /// on unfiltered; `discard_rest` when more of the answer follows.
    TooLarge { discard_rest: bool },
    /// Not the end yet: keep buffering.
    Wait,
    /// The whole answer: filter it.
    Filter,
}

impl JsonChunk {
    pub fn of(buffered: usize, max_response_bytes: usize, end_of_stream: bool) -> Self {
        if buffered > max_response_bytes {
            JsonChunk::TooLarge {
                discard_rest: !end_of_stream,
            }
        } else if !end_of_stream {
            JsonChunk::Wait
        } else {
            JsonChunk::Filter
        }
    }
}

/// A list answer the gateway cannot read as JSON becomes an error, except
/// an empty one (nothing can hide in it).
pub fn unreadable_answer_passes(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn only_a_200_answer_to_the_cached_id_is_stored() {
        let results = [(json!(1), json!({"tools": []})), (json!(2), json!({}))];
        assert_eq!(
            stored_result(200, &json!(1), &results),
            Some(&json!({"tools": []}))
        );
        assert_eq!(stored_result(500, &json!(1), &results), None);
        assert_eq!(stored_result(200, &json!(3), &results), None);
    }

    #[test]
    fn json_answers_are_bounded_then_filtered_whole() {
        assert_eq!(
            JsonChunk::of(11, 10, false),
            JsonChunk::TooLarge { discard_rest: true }
        );
        assert_eq!(
            JsonChunk::of(11, 10, true),
            JsonChunk::TooLarge {
                discard_rest: false
            }
        );
        assert_eq!(JsonChunk::of(10, 10, false), JsonChunk::Wait);
        assert_eq!(JsonChunk::of(10, 10, true), JsonChunk::Filter);
        assert!(unreadable_answer_passes(b" \r\n"));
        assert!(!unreadable_answer_passes(b"<html>"));
    }

    use super::*;
    use serde_json::json;

    fn config(yaml: &str) -> ToolAclConfig {
        crate::config::load::<crate::tool_acl::config::ToolAclSpec, ToolAclConfig>(yaml.as_bytes())
            .unwrap()
    }

    const CACHED: &str = r#"
accessRules:
  - agentPattern: "*"
    allowedTools: ["*"]
toolsList:
  cache: { ttlSeconds: 30 }
"#;

    fn facts(body: &str) -> (JsonRpcBody, RequestFacts) {
        RequestFacts::inspect(body.as_bytes()).unwrap()
    }

    #[test]
    fn only_list_requests_of_filtered_lists_are_remembered() {
        let c = config(CACHED);
        let (_, f) = facts(
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
                {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}},
                {"jsonrpc":"2.0","method":"tools/list"}]"#,
        );
        assert_eq!(filtered_list_ids(&c, &f), [json!(1)]);
    }

    #[test]
    fn a_single_tools_list_with_an_id_is_cacheable() {
        let c = config(CACHED);
        let body = r#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{"cursor":"p2"}}"#;
        let (parsed, f) = facts(body);
        let want = Some(CacheCandidate {
            id: json!("a"),
            cursor: Some("p2".into()),
        });
        assert_eq!(cache_candidate(&c, &f, Some(&parsed), b"", false), want);
        // parsed here when an earlier filter did the parse
        assert_eq!(cache_candidate(&c, &f, None, body.as_bytes(), false), want);
        // never on the 2024-11-05 transport
        assert_eq!(cache_candidate(&c, &f, Some(&parsed), b"", true), None);
    }

    #[test]
    fn batches_notifications_and_uncached_configs_are_not() {
        let c = config(CACHED);
        let (p, f) = facts(r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#);
        assert_eq!(cache_candidate(&c, &f, Some(&p), b"", false), None);
        let (p, f) = facts(r#"{"jsonrpc":"2.0","method":"tools/list"}"#);
        assert_eq!(cache_candidate(&c, &f, Some(&p), b"", false), None);
        let uncached = config("accessRules: []\ntoolsList: { cache: { enabled: false } }\n");
        let (p, f) = facts(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert_eq!(cache_candidate(&uncached, &f, Some(&p), b"", false), None);
    }

    #[test]
    fn the_response_plan_follows_the_headers() {
        use ResponsePlan::*;
        let sse = Some("text/event-stream; charset=utf-8");
        let json = Some("application/json");
        assert_eq!(
            ResponsePlan::choose(sse, None, false),
            Sse(Overflow::PassThrough)
        );
        assert_eq!(
            ResponsePlan::choose(sse, None, true),
            Sse(Overflow::Withhold)
        );
        assert_eq!(ResponsePlan::choose(json, None, true), Json);
        assert_eq!(
            ResponsePlan::choose(Some("application/x+json"), None, true),
            Json
        );
        assert_eq!(ResponsePlan::choose(json, None, false), Pass);
        assert_eq!(ResponsePlan::choose(Some("text/html"), None, true), Pass);
        // compressed: refused when it could hide a list, else passed
        assert_eq!(ResponsePlan::choose(sse, Some("gzip"), false), Refuse);
        assert_eq!(ResponsePlan::choose(json, Some("br"), true), Refuse);
        assert_eq!(ResponsePlan::choose(json, Some("gzip"), false), Pass);
        assert_eq!(ResponsePlan::choose(json, Some("identity"), true), Json);
    }
}
