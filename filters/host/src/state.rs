//! Filter state shared between our filters (see `gw_core::filter_state`)
//! and request headers, without panics.

use crate::abi;
use gw_core::filter_state;
use gw_core::protocol::request_facts::{RequestFacts, VerifiedIdentity};
use proxy_wasm::types::MapType;

/// Store `value` as filter state `wasm.<key>`.
pub fn set(key: &str, value: &str) -> bool {
    crate::memo::set_state(key, value.as_bytes());
    match abi::set_property(&[key], Some(value.as_bytes())) {
        Ok(()) => true,
        Err(status) => {
            log::warn!("cannot set filter state {key}: {status:?}");
            false
        }
    }
}

/// Read filter state `wasm.<key>` set by one of our filters.
pub fn get(key: &str) -> Option<Vec<u8>> {
    if let Some(value) = crate::memo::state(key) {
        return Some(value).filter(|v| !v.is_empty());
    }
    let name = format!("wasm.{key}");
    abi::get_property(&["filter_state", &name])
        .ok()
        .flatten()
        .filter(|v| !v.is_empty())
}

pub fn verified_identity() -> Option<VerifiedIdentity> {
    get(filter_state::VERIFIED_IDENTITY).and_then(|b| VerifiedIdentity::from_json(&b))
}

pub fn request_facts() -> Option<RequestFacts> {
    get(filter_state::REQUEST_FACTS).and_then(|b| RequestFacts::from_json(&b))
}

pub fn set_decision(decision: &str) {
    set(filter_state::DECISION, decision);
}

/// A request header (lossy UTF-8: see [`crate::headers`], the SDK's
/// `get_map_value` panics on non-UTF-8 values).
pub fn request_header(name: &str) -> Option<String> {
    crate::headers::get(MapType::HttpRequestHeaders, name)
}

pub fn set_request_header(name: &str, value: Option<&str>) {
    crate::memo::request_header_changed(name, value);
    if let Err(status) = abi::set_map_value(MapType::HttpRequestHeaders, name, value) {
        log::warn!("cannot set request header {name}: {status:?}");
    }
}

pub fn response_header(name: &str) -> Option<String> {
    crate::headers::get(MapType::HttpResponseHeaders, name)
}

/// Read a host property such as `request.path` as a string.
pub fn property_string(path: Vec<&str>) -> Option<String> {
    abi::get_property(&path)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
}
