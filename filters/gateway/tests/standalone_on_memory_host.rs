//! Each filter alone, as its own module runs it (`StandaloneRoot::filter`:
//! the filter wrapped in EndAtTrailers, the host itself, no memo), with its
//! section of the shipped four-module config (envoy/four-modules/gateway.yaml), on the
//! in-memory host: request and response paths, trailers, callouts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use gw_core::protocol::request_facts::VerifiedIdentity;
use gw_host::filter::{Filter, FilterRoot};
use gw_host::memory::MemoryHost;
use gw_host::port::Host;
use gw_host::stage::EndAtTrailers;
use proxy_wasm::types::{Action, BufferType, MapType};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The configuration of the HTTP filter with `root_id` in envoy/gateway.yaml.
fn section(root_id: &str) -> String {
    let text = std::fs::read_to_string(format!("{ROOT}/envoy/four-modules/gateway.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    fn find(v: &serde_yaml_ng::Value, root_id: &str) -> Option<String> {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                if let Some(c) = m.get("config") {
                    if c.get("root_id").and_then(|r| r.as_str()) == Some(root_id) {
                        let text = c["configuration"]["value"].as_str().unwrap_or_default();
                        if !text.contains("role: sender") {
                            return Some(text.to_string());
                        }
                    }
                }
                m.values().find_map(|v| find(v, root_id))
            }
            serde_yaml_ng::Value::Sequence(s) => s.iter().find_map(|v| find(v, root_id)),
            _ => None,
        }
    }
    find(&doc, root_id).unwrap_or_else(|| panic!("no {root_id} in envoy/four-modules/gateway.yaml"))
}

/// A configured root and a host with an MCP request on it.
fn setup(root: Box<dyn FilterRoot>, root_id: &str) -> (MemoryHost, Box<dyn FilterRoot>) {
    let mut host = MemoryHost::new();
    let mut root = root;
    assert!(root.configure(&mut host, section(root_id).as_bytes()));
    (host, root)
}

fn filter(root: &dyn FilterRoot) -> EndAtTrailers<Box<dyn Filter>> {
    EndAtTrailers::new(root.new_filter(1))
}

fn mcp_request(h: &mut MemoryHost, key: Option<&str>, body: &str) {
    let len = body.len().to_string();
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/mcp"),
        (":scheme", "https"),
        (":authority", "gateway.test"),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("content-length", len.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    if let Some(key) = key {
        headers.push(("x-agent-api-key", key));
    }
    h.set_headers(MapType::HttpRequestHeaders, &headers);
    h.set_body(BufferType::HttpRequestBody, body.as_bytes());
    h.properties.clear();
}

/// What the identity filter publishes for the filters after it.
fn verified(h: &mut MemoryHost, agent: &str) {
    let identity = VerifiedIdentity {
        agent_id: agent.into(),
        ..Default::default()
    };
    h.set_property(&["gw_identity"], Some(identity.to_json().as_bytes()))
        .unwrap();
}

fn tools_call(id: u32, tool: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}"}}}}"#)
}

// ---------------------------------------------------------------- identity

#[test]
fn identity_verifies_a_static_key_and_owns_the_verified_headers() {
    let (mut h, root) = setup(gw_identity::new_root(), "gw_identity");
    mcp_request(&mut h, Some("gw-demo-sentinel-1"), "{}");
    // a client's own X-Verified-* header never survives
    h.set_header(
        MapType::HttpRequestHeaders,
        "x-verified-agent-id",
        Some("admin-1"),
    )
    .unwrap();
    let mut f = filter(root.as_ref());
    assert_eq!(f.request_headers(&mut h, 9, false), Action::Continue);
    assert_eq!(
        h.header(MapType::HttpRequestHeaders, "x-verified-agent-id"),
        Some("sentinel-1")
    );
    assert_eq!(
        h.header(MapType::HttpRequestHeaders, "x-agent-api-key"),
        None
    );
    let published = VerifiedIdentity::from_json(h.filter_state("gw_identity").unwrap()).unwrap();
    assert_eq!(published.agent_id, "sentinel-1");
    assert_eq!(h.metric("gw.identity.allowed"), 1);
}

#[test]
fn identity_without_a_credential_answers_401_with_a_challenge() {
    let (mut h, root) = setup(gw_identity::new_root(), "gw_identity");
    mcp_request(&mut h, None, "{}");
    let mut f = filter(root.as_ref());
    assert_eq!(f.request_headers(&mut h, 8, false), Action::Pause);
    let reply = &h.replies[0];
    assert_eq!(reply.status, 401);
    assert!(reply.header("www-authenticate").is_some(), "{reply:?}");
    assert_eq!(h.filter_state("gw_decision"), Some(&b"unauthenticated"[..]));
}

#[test]
fn identity_checks_an_unknown_key_by_callout_then_resumes_envoy() {
    let (mut h, root) = setup(gw_identity::new_root(), "gw_identity");
    mcp_request(&mut h, Some("k-unknown"), "{}");
    let mut f = filter(root.as_ref());
    assert_eq!(f.request_headers(&mut h, 9, false), Action::Pause);
    // the body waits for the answer too
    assert_eq!(f.request_body(&mut h, 2, true), Action::Pause);
    let call = h.callouts[0].clone();
    assert_eq!(call.upstream, "identity_service");
    assert!(
        call.headers
            .iter()
            .any(|(n, v)| n == ":path" && v.ends_with("/validate")),
        "{call:?}"
    );
    h.set_headers(MapType::HttpCallResponseHeaders, &[(":status", "200")]);
    let answer = br#"{"valid":true,"agent_id":"alchemy-7","agent_name":"A7","owner":"media"}"#;
    h.set_body(BufferType::HttpCallResponseBody, answer);
    f.call_response(&mut h, call.token, 1, answer.len(), 0);
    assert_eq!(h.resumed, 1, "standalone, the filter resumes Envoy itself");
    assert_eq!(
        h.header(MapType::HttpRequestHeaders, "x-verified-agent-id"),
        Some("alchemy-7")
    );
    // a second request with the same key: the cache answers, no callout
    mcp_request(&mut h, Some("k-unknown"), "{}");
    let mut f = filter(root.as_ref());
    assert_eq!(f.request_headers(&mut h, 9, false), Action::Continue);
    assert_eq!(h.callouts.len(), 1);
    assert_eq!(h.metric("gw.identity.cache_hits"), 1);
}

// ---------------------------------------------------------------- tool ACL

#[test]
fn tool_acl_denies_on_the_body_even_when_it_ends_in_trailers() {
    let (mut h, root) = setup(gw_tool_acl::new_root(), "gw_tool_acl");
    let body = tools_call(4, "execute_code");
    mcp_request(&mut h, None, &body);
    verified(&mut h, "sentinel-1");
    let mut f = filter(root.as_ref());
    f.request_headers(&mut h, 8, false);
    assert_eq!(f.request_body(&mut h, body.len(), false), Action::Pause);
    assert_eq!(f.request_trailers(&mut h, 1), Action::Pause);
    // on the single /mcp endpoint the denial is a JSON-RPC error (HTTP 200,
    // so the client keeps its session) echoing the request id
    let reply = h.replies[0].body_json();
    assert_eq!(reply["id"], 4, "{reply}");
    assert!(
        reply["error"].to_string().contains("execute_code"),
        "{reply}"
    );
    assert_eq!(h.filter_state("gw_decision"), Some(&b"tool_denied"[..]));
}

#[test]
fn tool_acl_filters_a_tools_list_answer_for_the_agent() {
    let (mut h, root) = setup(gw_tool_acl::new_root(), "gw_tool_acl");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    mcp_request(&mut h, None, body);
    verified(&mut h, "sentinel-1");
    let mut f = filter(root.as_ref());
    f.request_headers(&mut h, 8, false);
    assert_eq!(f.request_body(&mut h, body.len(), true), Action::Continue);
    assert_eq!(
        h.header(MapType::HttpRequestHeaders, "accept-encoding"),
        None
    );
    // the upstream's answer lists a tool sentinel-1 may not call
    let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
        {"name":"read_config","inputSchema":{"type":"object"}},
        {"name":"execute_code","inputSchema":{"type":"object"}}]}}"#;
    h.set_headers(
        MapType::HttpResponseHeaders,
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("content-length", &answer.len().to_string()),
        ],
    );
    assert_eq!(f.response_headers(&mut h, 3, false), Action::Continue);
    // rewritten, so its length is Envoy's to recompute
    assert_eq!(
        h.header(MapType::HttpResponseHeaders, "content-length"),
        None
    );
    h.set_body(BufferType::HttpResponseBody, answer.as_bytes());
    assert_eq!(
        f.response_body(&mut h, answer.len(), true),
        Action::Continue
    );
    let out = String::from_utf8(h.body(BufferType::HttpResponseBody).to_vec()).unwrap();
    assert!(
        out.contains("read_config") && !out.contains("execute_code"),
        "{out}"
    );
    assert_eq!(h.metric("gw.tool_acl.tools_hidden"), 1);
}

// -------------------------------------------------------------- rate limit

#[test]
fn rate_limit_counts_the_verified_agent_and_refuses_past_the_limit() {
    let (mut h, root) = setup(gw_rate_limit::new_root(), "gw_rate_limit");
    let mut limited = None;
    for n in 1..=200 {
        let body = tools_call(n, "read_config");
        mcp_request(&mut h, None, &body);
        verified(&mut h, "alchemy-1");
        let mut f = filter(root.as_ref());
        f.request_headers(&mut h, 8, false);
        if f.request_body(&mut h, body.len(), true) == Action::Pause {
            limited = Some(n);
            break;
        }
        // an admitted request gets its RateLimit fields on the response
        h.set_headers(MapType::HttpResponseHeaders, &[(":status", "200")]);
        f.response_headers(&mut h, 1, false);
        assert!(h
            .header(MapType::HttpResponseHeaders, "ratelimit")
            .is_some());
    }
    let n = limited.expect("limited");
    let reply = h.replies.last().unwrap();
    assert_eq!(reply.status, 429);
    assert!(reply.header("retry-after").is_some());
    assert_eq!(h.metric("gw.rate_limit.admitted"), i64::from(n) - 1);
    // the body was parsed here (no earlier filter published the facts)
    assert_eq!(h.metric("gw.body.parsed"), i64::from(n));
}

// ------------------------------------------------------------------- audit

#[test]
fn audit_records_one_event_per_request_with_its_outcome() {
    let mut h = MemoryHost::new();
    let queue = h.register_queue("gw_audit_events").unwrap();
    let mut root = gw_audit::new_root();
    assert!(root.configure(&mut h, section("gw_audit").as_bytes()));
    assert!(h.tick.is_some(), "the outbox is flushed on a tick");
    let body = tools_call(9, "read_config");
    mcp_request(&mut h, None, &body);
    let mut f = filter(root.as_ref());
    assert_eq!(f.request_headers(&mut h, 8, false), Action::Continue);
    assert_eq!(f.request_body(&mut h, body.len(), true), Action::Continue);
    // audit is first: it published the facts for the filters after it
    assert!(h.filter_state("gw_request").is_some());
    verified(&mut h, "admin-1");
    h.set_headers(
        MapType::HttpResponseHeaders,
        &[(":status", "200"), ("content-type", "application/json")],
    );
    f.response_headers(&mut h, 2, false);
    let answer = br#"{"jsonrpc":"2.0","id":9,"result":{"isError":true}}"#;
    h.set_body(BufferType::HttpResponseBody, answer);
    f.response_body(&mut h, answer.len(), true);
    h.set_property(&["response", "code"], Some(&200u64.to_le_bytes()))
        .unwrap();
    f.log(&mut h);
    root.tick(&mut h);
    let frame = String::from_utf8(h.dequeue(queue).unwrap().expect("a frame")).unwrap();
    let event: serde_json::Value = serde_json::from_str(frame.lines().next().unwrap()).unwrap();
    let text = event.to_string();
    assert!(
        text.contains("read_config") && text.contains("admin-1"),
        "{text}"
    );
    assert!(text.contains("toolError"), "the response capture: {text}");
    assert_eq!(h.metric("gw.audit.events"), 1);
}

/// Host calls of one typical tools/call through the four filters as four
/// modules (each alone on the host, no shared memo): the figure to set
/// against the one-module chain's (on_memory_host.rs, 37). Pinned so that
/// a change to it is made knowingly. Round 3 of issue 13: 50 -> 48, the
/// tool ACL reads a JSON tools/call answer's content-encoding and :status
/// only when the answer can be a list it filters or a stream.
#[test]
fn host_calls_of_a_tools_call_through_four_modules_are_pinned() {
    let mut h = MemoryHost::new();
    h.register_queue("gw_audit_events").unwrap();
    let mut roots: Vec<Box<dyn FilterRoot>> = Vec::new();
    for (root, id) in [
        (gw_audit::new_root(), "gw_audit"),
        (gw_identity::new_root(), "gw_identity"),
        (gw_tool_acl::new_root(), "gw_tool_acl"),
        (gw_rate_limit::new_root(), "gw_rate_limit"),
    ] {
        let mut root = root;
        assert!(root.configure(&mut h, section(id).as_bytes()));
        roots.push(root);
    }
    for round in 0..2 {
        let body = tools_call(1, "read_config");
        mcp_request(&mut h, Some("gw-demo-admin-1"), &body);
        h.reset_calls();
        let mut filters: Vec<_> = roots.iter().map(|r| filter(r.as_ref())).collect();
        for f in &mut filters {
            f.request_headers(&mut h, 9, false);
        }
        for f in &mut filters {
            assert_eq!(f.request_body(&mut h, body.len(), true), Action::Continue);
        }
        h.set_headers(
            MapType::HttpResponseHeaders,
            &[(":status", "200"), ("content-type", "application/json")],
        );
        let answer = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;
        h.set_body(BufferType::HttpResponseBody, answer);
        for f in filters.iter_mut().rev() {
            f.response_headers(&mut h, 2, false);
            f.response_body(&mut h, answer.len(), true);
        }
        for f in &mut filters {
            f.log(&mut h);
            f.done(&mut h);
        }
        if round == 1 {
            assert!(h.replies.is_empty(), "{:?}", h.replies);
            assert_eq!(h.total_calls(), 48, "{:?}", h.calls());
        }
    }
}
