//! Response headers and body, for filters that rewrite responses.

use crate::abi;
use proxy_wasm::types::{BufferType, MapType};

/// A response header (lossy UTF-8, see [`crate::headers`]). Only while
/// the response headers are available (in `on_http_response_headers`).
pub fn header(name: &str) -> Option<String> {
    crate::headers::get(MapType::HttpResponseHeaders, name)
}

/// Set (or with `None` remove) a response header.
pub fn set_header(name: &str, value: Option<&str>) {
    if let Err(status) = abi::set_map_value(MapType::HttpResponseHeaders, name, value) {
        log::warn!("cannot set response header {name}: {status:?}");
    }
}

/// The HTTP status of the response (0 if unreadable).
pub fn status() -> u32 {
    header(":status").and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The response body bytes the current callback sees.
pub fn body(body_size: usize) -> Vec<u8> {
    abi::get_buffer(BufferType::HttpResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Replace the response body bytes the current callback sees.
pub fn replace_body(body_size: usize, bytes: &[u8]) -> bool {
    match abi::set_buffer(BufferType::HttpResponseBody, 0, body_size, bytes) {
        Ok(()) => {
            crate::flow::note_body_changed();
            true
        }
        Err(status) => {
            log::warn!("cannot replace response body: {status:?}");
            false
        }
    }
}
