//! The shipped configuration, read the same way by every test of this crate
//! that drives the one-module chain on the in-memory host, and the benchmark's
//! request and answer (also used by examples/chain_on_memory_host.rs).
#![allow(dead_code)] // each test crate uses its own part
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use gw_host::memory::MemoryHost;
use proxy_wasm::types::{BufferType, MapType};

/// The `gw_gateway` HTTP filter's configuration in the shipped one-module
/// config (not the audit sender service's, which has the same root id).
pub fn shipped_configuration() -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../envoy/gateway.yaml"
    ))
    .unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    fn find(v: &serde_yaml_ng::Value) -> Option<String> {
        match v {
            serde_yaml_ng::Value::Mapping(m) => {
                if let Some(c) = m.get("config") {
                    if c.get("root_id").and_then(|r| r.as_str()) == Some("gw_gateway") {
                        let text = c["configuration"]["value"].as_str().unwrap_or_default();
                        if !text.contains("role: sender") {
                            return Some(text.to_string());
                        }
                    }
                }
                m.values().find_map(find)
            }
            serde_yaml_ng::Value::Sequence(s) => s.iter().find_map(find),
            _ => None,
        }
    }
    find(&doc).expect("a gw_gateway plugin in envoy/gateway.yaml")
}

/// The benchmark's request (scripts/bench_chain.py BODY), so that body and
/// header sizes in the trace are those Envoy sees under load.
pub const BODY: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_config","arguments":{"key":"region","path":"/etc/gateway/services/billing/config.yaml","fields":["region","zone","replicas","owner","tier"],"reason":"capacity review for the quarterly report, read-only access requested by agent"},"_meta":{"progressToken":"bench-0001"}}}"#;
/// The bench upstream's answer (scripts/bench_audit.py upstream_config).
pub const RESULT: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"region: eu-west-1"}],"isError":false}}"#;

/// Load the benchmark's request into the host as Envoy presents it before
/// the first callback (HTTP/1.1, content-length): its headers and body, no
/// properties, no response yet.
pub fn load_request(host: &mut MemoryHost) {
    let len = BODY.len().to_string();
    host.set_headers(
        MapType::HttpRequestHeaders,
        &[
            (":authority", "127.0.0.1"),
            (":path", "/mcp"),
            (":method", "POST"),
            (":scheme", "https"),
            ("content-length", &len),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("x-agent-api-key", "gw-demo-admin-1"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "4b3c2a1d-0000-4000-8000-000000000007"),
        ],
    );
    host.set_body(BufferType::HttpRequestBody, BODY.as_bytes());
    host.properties.clear();
    host.set_headers(MapType::HttpResponseHeaders, &[]);
    host.set_body(BufferType::HttpResponseBody, b"");
}
