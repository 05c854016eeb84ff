//! The A2A stage on the in-memory host: what it lets through, what it
//! answers itself, and the task ownership it keeps between requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use gw_a2a_acl::{A2aStage, Counters, Outbox};
use gw_core::config::load;
use gw_core::protocol::request_facts::VerifiedIdentity;
use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};
use gw_host::memory::MemoryHost;
use gw_host::port::Host;
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;

const CONFIG: &str = r#"
a2a:
  accessRules:
    - agentPattern: "sentinel-*"
      allowedOperations: [send, get]
  taskIsolation: { enabled: true }
"#;

fn config() -> Rc<ToolAclConfig> {
    Rc::new(load::<ToolAclSpec, ToolAclConfig>(CONFIG.as_bytes()).unwrap())
}

fn send(id: u32) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"message/send","params":{{"message":{{"role":"user","messageId":"m{id}","parts":[{{"kind":"text","text":"hi"}}]}}}}}}"#
    )
}

fn get(id: u32, task: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tasks/get","params":{{"id":"{task}"}}}}"#)
}

fn cancel(id: u32, task: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tasks/cancel","params":{{"id":"{task}"}}}}"#)
}

/// One A2A JSON-RPC request from `agent` through a fresh stage, up to the
/// end of its body: the stage and the action on the body.
fn request(h: &mut MemoryHost, outbox: &Outbox, agent: &str, body: &str) -> (A2aStage, Action) {
    h.properties.clear();
    let identity = VerifiedIdentity {
        agent_id: agent.into(),
        ..Default::default()
    };
    h.set_property(&["gw_identity"], Some(identity.to_json().as_bytes()))
        .unwrap();
    let len = body.len().to_string();
    let headers: Vec<(String, String)> = [
        (":method", "POST"),
        (":path", "/a2a"),
        (":authority", "gateway.test"),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
        ("accept-encoding", "gzip"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    h.set_headers(MapType::HttpRequestHeaders, &refs);
    h.set_body(BufferType::HttpRequestBody, body.as_bytes());
    let (mut stage, action) =
        A2aStage::start(h, &config(), Counters::default(), outbox, &headers, false)
            .expect("an /a2a request is the stage's");
    assert_eq!(
        action,
        Action::Continue,
        "headers pass (no holdRequestHeaders)"
    );
    // answers are read: the stage asks for them uncompressed
    assert_eq!(
        h.header(MapType::HttpRequestHeaders, "accept-encoding"),
        None
    );
    let action = stage.on_request_body(h, body.len(), true);
    (stage, action)
}

/// The upstream's JSON answer, through the stage.
fn answer(h: &mut MemoryHost, stage: &mut A2aStage, body: &str) {
    h.set_headers(
        MapType::HttpResponseHeaders,
        &[(":status", "200"), ("content-type", "application/json")],
    );
    assert_eq!(stage.on_response_headers(h), Action::Continue);
    h.set_body(BufferType::HttpResponseBody, body.as_bytes());
    assert_eq!(
        stage.on_response_body(h, body.len(), true),
        Action::Continue
    );
}

#[test]
fn a_task_belongs_to_the_agent_that_created_it() {
    let mut h = MemoryHost::new();
    let outbox = Outbox::default();
    let (mut stage, action) = request(&mut h, &outbox, "sentinel-1", &send(1));
    assert_eq!(action, Action::Continue);
    assert!(h.replies.is_empty(), "{:?}", h.replies);
    answer(
        &mut h,
        &mut stage,
        r#"{"jsonrpc":"2.0","id":1,"result":{"kind":"task","id":"task-7","contextId":"c","status":{"state":"completed"}}}"#,
    );
    assert!(!h.shared.is_empty(), "the owner is recorded in shared data");

    // its creator reads it
    let (_, action) = request(&mut h, &outbox, "sentinel-1", &get(2, "task-7"));
    assert_eq!(action, Action::Continue);
    assert!(h.replies.is_empty(), "{:?}", h.replies);

    // another agent is told it does not exist
    let (_, action) = request(&mut h, &outbox, "sentinel-2", &get(3, "task-7"));
    assert_eq!(action, Action::Pause);
    let reply = h.replies[0].body_json();
    assert_eq!(reply["id"], 3, "{reply}");
    assert_eq!(reply["error"]["code"], -32001, "TaskNotFound: {reply}");

    // and a task nobody recorded is not found either
    h.replies.clear();
    let (_, action) = request(&mut h, &outbox, "sentinel-1", &get(4, "task-unknown"));
    assert_eq!(action, Action::Pause);
    assert_eq!(h.replies[0].body_json()["error"]["code"], -32001);
}

#[test]
fn an_operation_no_rule_allows_is_refused_before_the_agent() {
    let mut h = MemoryHost::new();
    let outbox = Outbox::default();
    let (_, action) = request(&mut h, &outbox, "sentinel-1", &cancel(5, "task-7"));
    assert_eq!(action, Action::Pause);
    let reply = h.replies[0].body_json();
    assert_eq!(reply["id"], 5, "{reply}");
    assert_eq!(reply["error"]["code"], -32040, "{reply}");
    assert_eq!(h.filter_state("gw_decision"), Some(&b"forbidden"[..]));

    // an agent no rule names: default deny once rules exist
    h.replies.clear();
    let (_, action) = request(&mut h, &outbox, "stranger-1", &send(6));
    assert_eq!(action, Action::Pause);
    assert_eq!(h.replies[0].body_json()["error"]["code"], -32040);
}
