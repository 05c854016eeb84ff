//! Reading the request body once and sharing what it says.

use crate::port::Host;
use gw_core::filter_state;
use gw_core::protocol::a2a;
use gw_core::protocol::jsonrpc::{InspectError, JsonRpcBody};
use gw_core::protocol::request_facts::RequestFacts;
use proxy_wasm::types::{BufferType, MetricType};
use std::cell::Cell;

thread_local! {
    /// The two counters' ids, defined once per VM (metric ids are the VM's,
    /// whatever the filter: a cache of host-given names, not request state).
    static BODY_COUNTERS: Cell<Option<(u32, u32)>> = const { Cell::new(None) };
}

/// Count a parse (`wasmcustom.gw.body.parsed`) or a reuse of published facts
/// (`wasmcustom.gw.body.facts_reused`). Every filter VM defines the same two
/// names, and Envoy keeps one counter per name, so the pair shows for the
/// whole chain that a body is parsed once however many filters read it.
fn count_inspection(h: &mut dyn Host, parsed: bool) {
    let ids = BODY_COUNTERS.with(|cell| {
        if cell.get().is_none() {
            let mut define = |name| h.define_metric(MetricType::Counter, name).ok();
            if let (Some(p), Some(r)) = (define("gw.body.parsed"), define("gw.body.facts_reused")) {
                cell.set(Some((p, r)));
            }
        }
        cell.get()
    });
    if let Some((parsed_id, reused_id)) = ids {
        let id = if parsed { parsed_id } else { reused_id };
        let _ = h.increment_metric(id, 1);
    }
}

/// The buffered request body (call when `end_of_stream` is true).
pub fn request_body(h: &mut dyn Host, body_size: usize) -> Vec<u8> {
    if body_size == 0 {
        return Vec::new(); // nothing to read: no host call for zero bytes
    }
    h.buffer(BufferType::HttpRequestBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The facts another filter already published for this request's body
/// (counted as a reuse), without reading the body itself.
pub fn published_facts(h: &mut dyn Host) -> Option<RequestFacts> {
    let facts = crate::state::request_facts(h)?;
    count_inspection(h, false);
    Some(facts)
}

/// The facts of this request's body: those another filter already published,
/// else parse `body` and publish them for the filters after us.
/// Returns the parsed body too when we parsed it (a filter that needs more
/// than the facts, such as audit's JSONPath captures, can use it).
pub fn inspect_request(
    h: &mut dyn Host,
    body: &[u8],
) -> Result<(RequestFacts, Option<JsonRpcBody>), InspectError> {
    if let Some(facts) = published_facts(h) {
        return Ok((facts, None));
    }
    count_inspection(h, true);
    let (parsed, facts) = RequestFacts::inspect(body)?;
    crate::state::set(h, filter_state::REQUEST_FACTS, &facts.to_json());
    Ok((facts, Some(parsed)))
}

/// [`inspect_request`] for a request whose HTTP method and path are known:
/// an A2A REST request (`POST /a2a/rest/message:send`) gets its facts from
/// the route and never an error (its body is not JSON-RPC, and is the
/// agent's to judge); any other request is inspected as JSON-RPC.
/// For a REST request that we read ourselves the JSON-RPC view of it comes
/// back too (see `RequestFacts::from_rest`), so JSONPath captures written
/// for JSON-RPC read both bindings.
pub fn inspect_request_on(
    h: &mut dyn Host,
    http_method: &str,
    path: &str,
    body: &[u8],
) -> Result<(RequestFacts, Option<JsonRpcBody>), InspectError> {
    let Some(call) = a2a::rest_call(http_method, path) else {
        return inspect_request(h, body);
    };
    if let Some(facts) = published_facts(h) {
        return Ok((facts, None));
    }
    count_inspection(h, true);
    let (view, facts) = RequestFacts::from_rest(&call, body);
    crate::state::set(h, filter_state::REQUEST_FACTS, &facts.to_json());
    Ok((facts, Some(view)))
}

/// The facts of a request without a body that names an A2A REST operation
/// by its route (`GET /a2a/rest/tasks/{id}`), and its JSON-RPC view;
/// published for the filters after us like a body's. `None` for any other
/// bodiless request.
pub fn inspect_bodiless(
    h: &mut dyn Host,
    http_method: &str,
    path: &str,
) -> Option<(RequestFacts, JsonRpcBody)> {
    let call = a2a::rest_call(http_method, path)?;
    let (view, facts) = RequestFacts::from_rest(&call, b"");
    if crate::state::request_facts(h).is_none() {
        crate::state::set(h, filter_state::REQUEST_FACTS, &facts.to_json());
    }
    Some((facts, view))
}

/// Replace the first `body_size` bytes of the request body the current
/// callback sees with `bytes`.
pub fn replace_request_body(
    h: &mut dyn Host,
    body_size: usize,
    bytes: &[u8],
) -> Result<(), proxy_wasm::types::Status> {
    h.set_buffer(BufferType::HttpRequestBody, 0, body_size, bytes)
}
