//! Header maps without the SDK's panics.
//!
//! `hostcalls::get_map` and `get_map_value` decode header values with a
//! `String::from_utf8` that must not fail, and HTTP allows bytes 0x80-0xFF in values
//! (obs-text): one such header from a client would kill the worker's VM.
//! Every `hostcalls` header function also panics on statuses it does not
//! expect (Envoy answers one when a map is read from a callback where it is
//! no longer available). These helpers read bytes through [`crate::abi`] and
//! decode lossily (invalid bytes become U+FFFD, which no credential or
//! identity check accepts).

use crate::abi;
use proxy_wasm::types::MapType;

/// Every header of `map` as (name, value) pairs, in order.
pub fn all(map: MapType) -> Vec<(String, String)> {
    match abi::get_map_pairs(map) {
        Ok(pairs) => pairs
            .into_iter()
            .map(|(name, value)| {
                (
                    String::from_utf8_lossy(&name).into_owned(),
                    String::from_utf8_lossy(&value).into_owned(),
                )
            })
            .collect(),
        Err(status) => {
            log::warn!("cannot read headers {map:?}: {status:?}");
            Vec::new()
        }
    }
}

/// One header of `map` (the first value when repeated).
pub fn get(map: MapType, name: &str) -> Option<String> {
    if map == MapType::HttpRequestHeaders {
        let found = crate::memo::with_request_headers(
            || all(map),
            |headers| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            },
        );
        if let Some(value) = found {
            return value;
        }
    }
    match abi::get_map_value_bytes(map, name) {
        Ok(value) => value.map(|v| String::from_utf8_lossy(&v).into_owned()),
        Err(status) => {
            log::debug!("cannot read header {name} of {map:?}: {status:?}");
            None
        }
    }
}

/// The request headers.
pub fn request_headers() -> Vec<(String, String)> {
    crate::memo::request_headers(|| all(MapType::HttpRequestHeaders))
        .unwrap_or_else(|| all(MapType::HttpRequestHeaders))
}

/// Remove every value of a request header.
pub fn remove_request_header(name: &str) {
    crate::memo::request_header_changed(name, None);
    if let Err(status) = abi::remove_map_value(MapType::HttpRequestHeaders, name) {
        log::warn!("cannot remove request header {name}: {status:?}");
    }
}

/// `:status` of an HTTP callout's response (None when absent or not a number).
pub fn call_response_status() -> Option<u32> {
    get(MapType::HttpCallResponseHeaders, ":status").and_then(|s| s.trim().parse().ok())
}
