//! The answer side on the in-memory host: a `tools/list` answer filtered
//! for the agent (JSON and SSE), stored in the cache, and a second request
//! answered from it without reaching the upstream.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use gw_core::config::load;
use gw_core::protocol::request_facts::{RequestFacts, VerifiedIdentity};
use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};
use gw_host::memory::MemoryHost;
use gw_host::metrics::Counter;
use gw_host::port::Host;
use gw_tool_lists::{Counters, IdentityMemo, ListAnswers, ListRequest};
use proxy_wasm::types::{Action, BufferType, MapType};

const CONFIG: &str = r#"
accessRules:
  - agentPattern: "sentinel-*"
    allowedTools: ["read_*"]
toolsList:
  filter: true
  cache: { enabled: true, ttlSeconds: 60 }
"#;

const LIST: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;

/// The upstream's answer: one tool sentinel agents may call, one they may not.
const RESULT: &str = r#"{"tools":[
    {"name":"read_config","inputSchema":{"type":"object"}},
    {"name":"execute_code","inputSchema":{"type":"object"}}]}"#;

fn config() -> ToolAclConfig {
    load::<ToolAclSpec, ToolAclConfig>(CONFIG.as_bytes()).unwrap()
}

fn counters(h: &mut MemoryHost) -> Counters {
    let mut c = |name: &str| Counter::define(h, &format!("gw.tool_acl.{name}"));
    Counters {
        no_identity: c("no_identity"),
        list_filtered: c("tools_list_filtered"),
        tools_hidden: c("tools_hidden"),
        cache_hit: c("tools_list_cache_hit"),
        cache_miss: c("tools_list_cache_miss"),
        cache_store: c("tools_list_cache_store"),
        cache_invalidated: c("tools_list_cache_invalidated"),
    }
}

/// A host with a verified agent and the upstream cluster the cache is keyed by.
fn host(agent: &str) -> MemoryHost {
    let mut h = MemoryHost::new();
    let identity = VerifiedIdentity {
        agent_id: agent.into(),
        agent_name: agent.into(),
        ..Default::default()
    };
    h.set_property(&["gw_identity"], Some(identity.to_json().as_bytes()))
        .unwrap();
    h.set_property(&["xds", "cluster_name"], Some(b"mcp-upstream"))
        .unwrap();
    h
}

/// `body` through `prepare`, as tool-acl hands it over once the ACL let
/// it through: the answers and the action on the request body.
fn prepare(
    h: &mut MemoryHost,
    config: &ToolAclConfig,
    who: &mut IdentityMemo,
    body: &str,
    accept: &str,
) -> (ListAnswers, Action) {
    let (parsed, facts) = RequestFacts::inspect(body.as_bytes()).unwrap();
    let mut answers = ListAnswers::new(counters(h));
    let action = answers.prepare(
        h,
        config,
        who,
        ListRequest {
            facts: &facts,
            parsed: Some(parsed),
            body: body.as_bytes(),
            protocol_version: Some("2025-06-18".into()),
            accept: Some(accept.into()),
            legacy: false,
        },
    );
    (answers, action)
}

/// The upstream's answer through the response callbacks, in one chunk:
/// the body the client gets.
fn answer(
    h: &mut MemoryHost,
    config: &ToolAclConfig,
    who: &mut IdentityMemo,
    answers: &mut ListAnswers,
    content_type: &str,
    body: &str,
) -> String {
    let len = body.len().to_string();
    h.set_headers(
        MapType::HttpResponseHeaders,
        &[
            (":status", "200"),
            ("content-type", content_type),
            ("content-length", len.as_str()),
        ],
    );
    assert_eq!(answers.on_response_headers(h, config), Action::Continue);
    assert_eq!(
        h.header(MapType::HttpResponseHeaders, "content-length"),
        None,
        "a rewritten answer's length is Envoy's to recompute"
    );
    h.set_body(BufferType::HttpResponseBody, body.as_bytes());
    assert_eq!(
        answers.on_response_body(h, config, who, body.len(), true),
        Action::Continue
    );
    String::from_utf8(h.body(BufferType::HttpResponseBody).to_vec()).unwrap()
}

fn tool_names(result: &serde_json::Value) -> Vec<&str> {
    result["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

#[test]
fn a_json_answer_is_filtered_for_the_agent_and_stored_unfiltered() {
    let config = config();
    let mut h = host("sentinel-1");
    let mut who = IdentityMemo::default();
    let (mut answers, action) = prepare(&mut h, &config, &mut who, LIST, "application/json");
    assert_eq!(action, Action::Continue, "a miss goes to the upstream");
    assert!(h.replies.is_empty());
    assert_eq!(h.metric("gw.tool_acl.tools_list_cache_miss"), 1);
    let body = format!(r#"{{"jsonrpc":"2.0","id":7,"result":{RESULT}}}"#);
    let out = answer(
        &mut h,
        &config,
        &mut who,
        &mut answers,
        "application/json",
        &body,
    );
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["id"], 7);
    assert_eq!(tool_names(&out["result"]), ["read_config"]);
    assert_eq!(h.metric("gw.tool_acl.tools_hidden"), 1);
    assert_eq!(h.metric("gw.tool_acl.tools_list_cache_store"), 1);
    // the cache keeps the upstream's answer, not this agent's view
    let (doc, _) = h
        .shared
        .get("gw_tool_acl.tools_list.v1|mcp-upstream")
        .unwrap();
    assert!(String::from_utf8_lossy(doc).contains("execute_code"));
}

#[test]
fn an_sse_answer_is_filtered_event_by_event() {
    let config = config();
    let mut h = host("sentinel-1");
    let mut who = IdentityMemo::default();
    let (mut answers, _) = prepare(
        &mut h,
        &config,
        &mut who,
        LIST,
        "application/json, text/event-stream",
    );
    let stream = format!(
        "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{}}}}\n\n\
         event: message\ndata: {{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}}\n\n",
        RESULT.replace('\n', "")
    );
    let out = answer(
        &mut h,
        &config,
        &mut who,
        &mut answers,
        "text/event-stream",
        &stream,
    );
    let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 2, "{out}");
    assert!(events[0].contains("notifications/progress"), "passed as is");
    let data = events[1]
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap();
    let list: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
    assert_eq!(tool_names(&list["result"]), ["read_config"]);
    assert_eq!(h.metric("gw.tool_acl.tools_hidden"), 1);
    assert_eq!(h.metric("gw.tool_acl.tools_list_cache_store"), 1);
}

#[test]
fn a_cache_hit_is_answered_locally_in_the_agents_view() {
    let config = config();
    let mut h = host("sentinel-1");
    let mut who = IdentityMemo::default();
    let (mut answers, _) = prepare(
        &mut h,
        &config,
        &mut who,
        LIST,
        "application/json, text/event-stream",
    );
    let body = format!(r#"{{"jsonrpc":"2.0","id":7,"result":{RESULT}}}"#);
    answer(
        &mut h,
        &config,
        &mut who,
        &mut answers,
        "application/json",
        &body,
    );
    // another request (its own id) from another sentinel: the cache answers
    let mut h2 = host("sentinel-2");
    h2.shared = h.shared.clone();
    let mut who = IdentityMemo::default();
    let again = r#"{"jsonrpc":"2.0","id":"b","method":"tools/list"}"#;
    let (_, action) = prepare(
        &mut h2,
        &config,
        &mut who,
        again,
        "application/json, text/event-stream",
    );
    assert_eq!(action, Action::Pause, "answered here, not upstream");
    assert_eq!(h2.metric("gw.tool_acl.tools_list_cache_hit"), 1);
    let reply = &h2.replies[0];
    assert_eq!(reply.status, 200);
    // in the form the upstream answered (JSON), since the client takes it
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let out = reply.body_json();
    assert_eq!(out["id"], "b", "the cached answer echoes this request's id");
    assert_eq!(tool_names(&out["result"]), ["read_config"]);
}
