//! Per-request cost of the tool ACL's pure logic on the host (not in Envoy):
//! strict parse of a ~300-byte `tools/call` body + rule decision, and
//! per-agent filtering of a cached `tools/list` result.
//! Run: `cargo run --release -p gw-core --example tool_acl_bench`

use gw_core::config::load;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};
use gw_core::tool_acl::rules::{Agent, TargetKind};
use gw_core::tool_acl::tools_list::{cached_response, CacheEntry};
use serde_json::json;
use std::hint::black_box;

const CONFIG: &str = r#"
accessRules:
  - agentPattern: "sentinel-*"
    allowedTools: ["search_patterns", "classify_content", "read_config"]
    deniedTools: ["execute_code", "write_file"]
  - agentPattern: "alchemy-*"
    allowedTools: ["generate_video", "render_scene", "read_template"]
    deniedTools: ["delete_*"]
  - agentPattern: "admin-*"
    allowedTools: ["*"]
"#;

#[path = "support/per_op.rs"]
mod support;
use support::per_op;

fn main() -> Result<(), String> {
    let config: ToolAclConfig =
        load::<ToolAclSpec, ToolAclConfig>(CONFIG.as_bytes()).map_err(|e| e.to_string())?;
    let body = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_patterns","arguments":{"query":"map object keys","category":"transform","limit":25,"notes":"a typical small tools/call body of about three hundred bytes, padded with text"}}}"#;
    println!("body: {} bytes", body.len());
    let agent = Some(Agent {
        id: "sentinel-42",
        name: "",
    });
    per_op(
        "parse tools/call (strict, duplicate-key check)",
        200_000,
        || {
            black_box(RequestFacts::inspect(black_box(body)).map(|(_, f)| f).ok());
        },
    );
    per_op("decide (3 recipe rules, globs)", 2_000_000, || {
        black_box(config.acl.decide(
            black_box(agent),
            TargetKind::Tool,
            black_box("search_patterns"),
        ));
    });
    per_op("parse + decide", 200_000, || {
        if let Ok((_, facts)) = RequestFacts::inspect(black_box(body)) {
            let name = facts.single().and_then(|m| m.name.as_deref()).unwrap_or("");
            black_box(config.acl.decide(agent, TargetKind::Tool, name));
        }
    });
    let tools: Vec<_> = (0..50)
        .map(|i| json!({"name": format!("tool_{i}"), "description": "d", "inputSchema": {"type": "object"}}))
        .chain(["search_patterns", "read_config"].iter().map(|n| json!({"name": n, "inputSchema": {}})))
        .collect();
    let entry = CacheEntry {
        key: "k".into(),
        stored_at_ms: 0,
        expires_at_ms: u64::MAX,
        result: json!({"tools": tools}),
        form: Default::default(),
    };
    let view = config.acl.view(agent);
    per_op(
        "tools/list from cache, 52 tools filtered for one agent",
        20_000,
        || {
            black_box(cached_response(&entry, &json!(1), &view, 1));
        },
    );
    Ok(())
}
