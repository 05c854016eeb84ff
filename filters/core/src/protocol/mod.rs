//! What the gateway understands of MCP and A2A on the wire.
//!
//! - [`http`]: the one check of a header name
//! - [`identity`]: the verified identity's fields and their `X-Verified-Agent-*` headers
//! - [`a2a`]: every A2A binding (JSON-RPC, HTTP+JSON) and version, as operations
//! - [`jsonrpc`]: strict JSON-RPC body inspection (batches, duplicate keys)
//! - [`operation`]: protocol method families (MCP and every A2A version)
//! - [`request_facts`]: what the first body parser hands on to later filters
//! - [`sse`]: incremental Server-Sent Events parser

pub mod a2a;
pub mod http;
pub mod identity;
pub mod jsonrpc;
pub mod operation;
pub mod request_facts;
pub mod sse;

/// `%XX` decoded once (invalid escapes kept as they are), lossy UTF-8: the
/// one decoder of paths, for A2A REST routes and the tool ACL's canonical
/// path alike.
pub fn percent_decode(path: &str) -> String {
    if !path.contains('%') {
        return path.to_string();
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
