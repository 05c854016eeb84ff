//! Header maps without the SDK's UTF-8 panics.
//!
//! `hostcalls::get_map` and `get_map_value` call `String::from_utf8(..)
//! .unwrap()` on header values, and HTTP allows bytes 0x80-0xFF in values
//! (obs-text): one such header from a client would kill the worker's VM.
//! These helpers read bytes and decode lossily (invalid bytes become U+FFFD,
//! which no credential or identity check accepts).

use proxy_wasm::hostcalls;
use proxy_wasm::types::MapType;

/// Every header of `map` as (name, value) pairs, in order.
pub fn all(map: MapType) -> Vec<(String, String)> {
    match hostcalls::get_map_bytes(map) {
        Ok(pairs) => pairs
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect(),
        Err(status) => {
            log::warn!("cannot read headers {map:?}: {status:?}");
            Vec::new()
        }
    }
}

/// One header of `map` (the first value when repeated).
pub fn get(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(map, name)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// The request headers.
pub fn request_headers() -> Vec<(String, String)> {
    all(MapType::HttpRequestHeaders)
}

/// Remove every value of a request header.
pub fn remove_request_header(name: &str) {
    if let Err(status) = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name) {
        log::warn!("cannot remove request header {name}: {status:?}");
    }
}

/// `:status` of an HTTP callout's response (None when absent or not a number).
pub fn call_response_status() -> Option<u32> {
    get(MapType::HttpCallResponseHeaders, ":status").and_then(|s| s.trim().parse().ok())
}
