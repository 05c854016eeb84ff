//! Header maps without the SDK's panics.
//!
//! `hostcalls::get_map` and `get_map_value` decode header values with a
//! `String::from_utf8` that must not fail, and HTTP allows bytes 0x80-0xFF in values
//! (obs-text): one such header from a client would kill the worker's VM.
//! Every `hostcalls` header function also panics on statuses it does not
//! expect (Envoy answers one when a map is read from a callback where it is
//! no longer available). These helpers read bytes through the host port
//! and decode lossily (invalid bytes become U+FFFD, which no credential or
//! identity check accepts).

use crate::port::Host;
use proxy_wasm::types::MapType;

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every header of `map` as (name, value) pairs, in order.
pub fn all(h: &mut dyn Host, map: MapType) -> Vec<(String, String)> {
    match h.header_text_pairs(map) {
        Ok(pairs) => pairs,
        Err(status) => {
            log::warn!("cannot read headers {map:?}: {status:?}");
            Vec::new()
        }
    }
}

/// One header of `map` (the first value when repeated).
pub fn get(h: &mut dyn Host, map: MapType, name: &str) -> Option<String> {
    match h.header_value(map, name) {
        Ok(value) => value.map(|v| lossy(&v)),
        Err(status) => {
            log::debug!("cannot read header {name} of {map:?}: {status:?}");
            None
        }
    }
}

/// The request headers.
pub fn request_headers(h: &mut dyn Host) -> Vec<(String, String)> {
    all(h, MapType::HttpRequestHeaders)
}

/// Remove every value of a request header.
pub fn remove_request_header(h: &mut dyn Host, name: &str) {
    if let Err(status) = h.set_header(MapType::HttpRequestHeaders, name, None) {
        log::warn!("cannot remove request header {name}: {status:?}");
    }
}

/// `:status` of an HTTP callout's response (None when absent or not a number).
pub fn call_response_status(h: &mut dyn Host) -> Option<u32> {
    get(h, MapType::HttpCallResponseHeaders, ":status").and_then(|s| s.trim().parse().ok())
}
