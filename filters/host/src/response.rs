//! Response headers and body, for filters that read or rewrite responses.

use crate::port::Host;
use proxy_wasm::types::{BufferType, MapType};

/// A response header (lossy UTF-8, see [`crate::headers`]). Only while
/// the response headers are available (in `response_headers`).
pub fn header(h: &mut dyn Host, name: &str) -> Option<String> {
    crate::headers::get(h, MapType::HttpResponseHeaders, name)
}

/// Set (or with `None` remove) a response header.
pub fn set_header(h: &mut dyn Host, name: &str, value: Option<&str>) {
    if let Err(status) = h.set_header(MapType::HttpResponseHeaders, name, value) {
        log::warn!("cannot set response header {name}: {status:?}");
    }
}

/// Add a response header value (keeping those already there).
pub fn add_header(h: &mut dyn Host, name: &str, value: &str) {
    if let Err(status) = h.add_header(MapType::HttpResponseHeaders, name, value) {
        log::warn!("cannot add response header {name}: {status:?}");
    }
}

/// The HTTP status of the response (0 if unreadable).
pub fn status(h: &mut dyn Host) -> u32 {
    header(h, ":status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The response body bytes the current callback sees.
pub fn body(h: &mut dyn Host, body_size: usize) -> Vec<u8> {
    // An empty chunk (the end of a stream whose data already passed) has
    // nothing to read: no host call for zero bytes.
    if body_size == 0 {
        return Vec::new();
    }
    h.buffer(BufferType::HttpResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Replace the response body bytes the current callback sees.
pub fn replace_body(h: &mut dyn Host, body_size: usize, bytes: &[u8]) -> bool {
    match h.set_buffer(BufferType::HttpResponseBody, 0, body_size, bytes) {
        Ok(()) => true,
        Err(status) => {
            log::warn!("cannot replace response body: {status:?}");
            false
        }
    }
}
