//! Filter state shared between our filters (see `gw_core::filter_state`)
//! and request headers, without panics.

use crate::port::Host;
use gw_core::filter_state;
use gw_core::protocol::request_facts::{RequestFacts, VerifiedIdentity};
use proxy_wasm::types::MapType;

/// Store `value` as filter state `wasm.<key>`.
pub fn set(h: &mut dyn Host, key: &str, value: &str) -> bool {
    match h.set_property(&[key], Some(value.as_bytes())) {
        Ok(()) => true,
        Err(status) => {
            log::warn!("cannot set filter state {key}: {status:?}");
            false
        }
    }
}

/// Read filter state `wasm.<key>` set by one of our filters.
pub fn get(h: &mut dyn Host, key: &str) -> Option<Vec<u8>> {
    let name = format!("wasm.{key}");
    h.property(&["filter_state", &name])
        .ok()
        .flatten()
        .filter(|v| !v.is_empty())
}

pub fn verified_identity(h: &mut dyn Host) -> Option<VerifiedIdentity> {
    get(h, filter_state::VERIFIED_IDENTITY).and_then(|b| VerifiedIdentity::from_json(&b))
}

pub fn request_facts(h: &mut dyn Host) -> Option<RequestFacts> {
    get(h, filter_state::REQUEST_FACTS).and_then(|b| RequestFacts::from_json(&b))
}

pub fn set_decision(h: &mut dyn Host, decision: &str) {
    set(h, filter_state::DECISION, decision);
}

/// A request header (lossy UTF-8: see [`crate::headers`], the SDK's
/// `get_map_value` panics on non-UTF-8 values).
pub fn request_header(h: &mut dyn Host, name: &str) -> Option<String> {
    crate::headers::get(h, MapType::HttpRequestHeaders, name)
}

pub fn set_request_header(h: &mut dyn Host, name: &str, value: Option<&str>) {
    if let Err(status) = h.set_header(MapType::HttpRequestHeaders, name, value) {
        log::warn!("cannot set request header {name}: {status:?}");
    }
}

/// Read a host property such as `request.path` as a string.
pub fn property_string(h: &mut dyn Host, path: &[&str]) -> Option<String> {
    h.property(path)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
}
