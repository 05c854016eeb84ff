//! Reading the request body once and sharing what it says.

use crate::abi;
use gw_core::filter_state;
use gw_core::jsonrpc::{InspectError, JsonRpcBody};
use gw_core::request_facts::RequestFacts;
use proxy_wasm::types::BufferType;

/// The buffered request body (call when `end_of_stream` is true).
pub fn request_body(body_size: usize) -> Vec<u8> {
    abi::get_buffer(BufferType::HttpRequestBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The facts of this request's body: those another filter already published,
/// else parse `body` and publish them for the filters after us.
/// Returns the parsed body too when we parsed it (a filter that needs more
/// than the facts, such as audit's JSONPath captures, can use it).
pub fn inspect_request(body: &[u8]) -> Result<(RequestFacts, Option<JsonRpcBody>), InspectError> {
    if let Some(facts) = crate::state::request_facts() {
        return Ok((facts, None));
    }
    let (parsed, facts) = RequestFacts::inspect(body)?;
    crate::state::set(filter_state::REQUEST_FACTS, &facts.to_json());
    Ok((facts, Some(parsed)))
}
