//! Local replies: the filter answers instead of the upstream.

use crate::port::Host;
use gw_core::reply::LocalReply;
use serde_json::{json, Value};

/// Send a local reply. Errors are logged; there is nothing better to do
/// than let Envoy's own error handling take over.
pub fn send(h: &mut dyn Host, status: u32, headers: &[(&str, &str)], body: &[u8]) {
    if let Err(s) = h.send_reply(status, headers, body) {
        log::error!("cannot send local reply {status}: {s:?}");
    }
}

/// [`send`] for a reply the policy built.
pub fn send_local(h: &mut dyn Host, reply: &LocalReply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    send(h, reply.status, &headers, reply.body.as_bytes());
}

/// `{"error": code, "message": message}` with a JSON content type.
pub fn json_error(
    h: &mut dyn Host,
    status: u32,
    code: &str,
    message: &str,
    extra_headers: &[(&str, &str)],
) {
    let body = json!({"error": code, "message": message}).to_string();
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra_headers);
    send(h, status, &headers, body.as_bytes());
}

/// A JSON-RPC error answered with HTTP `status` (200 for protocol-level
/// denials so that MCP clients keep their session), echoing the request id.
pub fn jsonrpc_error(
    h: &mut dyn Host,
    status: u32,
    id: Option<&Value>,
    code: i64,
    message: &str,
    data: Option<Value>,
) {
    let mut error = json!({"code": code, "message": message});
    if let (Some(data), Some(obj)) = (data, error.as_object_mut()) {
        obj.insert("data".into(), data);
    }
    let body = json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error});
    send(
        h,
        status,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
}
