//! Local replies: the filter answers instead of the upstream.

use crate::abi;
use serde_json::{json, Value};

/// Send a local reply. Errors are logged; there is nothing better to do
/// than let Envoy's own error handling take over.
pub fn send(status: u32, headers: &[(&str, &str)], body: &[u8]) {
    crate::flow::note_reply();
    if let Err(s) = abi::send_http_response(status, headers, Some(body)) {
        log::error!("cannot send local reply {status}: {s:?}");
    }
}

/// [`send`] for headers held as owned strings (as policy replies build them).
pub fn send_owned(status: u32, headers: &[(String, String)], body: &[u8]) {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    send(status, &headers, body);
}

/// `{"error": code, "message": message}` with a JSON content type.
pub fn json_error(status: u32, code: &str, message: &str, extra_headers: &[(&str, &str)]) {
    let body = json!({"error": code, "message": message}).to_string();
    let mut headers = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra_headers);
    send(status, &headers, body.as_bytes());
}

/// A JSON-RPC error answered with HTTP `status` (200 for protocol-level
/// denials so that MCP clients keep their session), echoing the request id.
pub fn jsonrpc_error(
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
        status,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
}

/// The HTTP context of a filter whose root has no configuration. Envoy
/// refuses a plugin whose `on_configure` failed, so this should never see a
/// request; if it does, it fails closed with a 503 rather than returning no
/// context at all (the SDK's dispatcher panics on `None`, which kills the
/// worker's VM).
pub struct Unconfigured {
    pub filter: &'static str,
}

impl proxy_wasm::traits::Context for Unconfigured {}

impl proxy_wasm::traits::HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> proxy_wasm::types::Action {
        log::error!("{}: no configuration; refusing the request", self.filter);
        json_error(
            503,
            "gateway_misconfigured",
            &format!("the {} filter has no valid configuration", self.filter),
            &[],
        );
        proxy_wasm::types::Action::Pause
    }
}
