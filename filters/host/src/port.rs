//! The host as a port: every call a filter makes into Envoy, as one trait.
//!
//! Adapters never call the proxy-wasm ABI themselves: every callback is
//! handed a `&mut dyn Host` and every helper of this crate takes one. Three
//! implementations:
//!
//! - [`Abi`]: the real host, over our panic-free bindings ([`crate::abi`]);
//! - [`crate::memo::Composed`]: the one-module chain's view of the host for
//!   one stage (request headers and filter state read once for all stages,
//!   resumes and tick requests recorded for the chain instead of sent);
//! - [`crate::memory::MemoryHost`]: an in-memory host for unit tests, which
//!   also counts the calls a request makes.
//!
//! The methods are the raw host operations (bytes in, bytes out, every host
//! status as an error); the helpers in [`crate::headers`], [`crate::state`],
//! [`crate::body`], ... give them meaning.

use crate::abi;
use proxy_wasm::types::{BufferType, Bytes, MapType, MetricType, Status};
use std::time::{Duration, SystemTime};

/// Everything a filter asks of Envoy.
pub trait Host {
    // ---- header maps (request, response, trailers, callout response)
    /// Every pair of a header map.
    fn header_pairs(&mut self, map: MapType) -> Result<Vec<(Bytes, Bytes)>, Status>;
    /// Every pair of a header map as text (invalid UTF-8 replaced). The
    /// default reads [`Host::header_pairs`]; the chain's memo answers from
    /// the copy it keeps without cloning it first.
    fn header_text_pairs(&mut self, map: MapType) -> Result<Vec<(String, String)>, Status> {
        Ok(self
            .header_pairs(map)?
            .iter()
            .map(|(n, v)| (lossy(n), lossy(v)))
            .collect())
    }
    /// One header's value (the first when repeated); `Ok(None)` when absent.
    fn header_value(&mut self, map: MapType, name: &str) -> Result<Option<Bytes>, Status>;
    /// Replace a header, or remove it with `None`.
    fn set_header(&mut self, map: MapType, name: &str, value: Option<&str>) -> Result<(), Status>;
    /// Add a header value, keeping the ones already there.
    fn add_header(&mut self, map: MapType, name: &str, value: &str) -> Result<(), Status>;

    // ---- buffers (bodies, callout response body, plugin configuration)
    /// Length of a buffer.
    fn buffer_len(&mut self, buffer: BufferType) -> Result<usize, Status>;
    /// Up to `max` bytes of a buffer from `start`; `Ok(None)` when there is none.
    fn buffer(
        &mut self,
        buffer: BufferType,
        start: usize,
        max: usize,
    ) -> Result<Option<Bytes>, Status>;
    /// Replace `size` bytes of a buffer from `start` with `value`.
    fn set_buffer(
        &mut self,
        buffer: BufferType,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), Status>;

    // ---- properties (request attributes, filter state)
    /// A property; `Ok(None)` when absent.
    fn property(&mut self, path: &[&str]) -> Result<Option<Bytes>, Status>;
    /// Set a property (filter state `wasm.<path>`).
    fn set_property(&mut self, path: &[&str], value: Option<&[u8]>) -> Result<(), Status>;

    // ---- shared data (per vm_id, every worker)
    /// The value under `key` and its CAS token; `(None, None)` when absent.
    fn shared_data(&mut self, key: &str) -> Result<(Option<Bytes>, Option<u32>), Status>;
    /// Write `key`; with `cas`, only if nobody wrote since that token
    /// (`Err(CasMismatch)` otherwise).
    fn set_shared_data(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        cas: Option<u32>,
    ) -> Result<(), Status>;

    // ---- shared queues
    fn register_queue(&mut self, name: &str) -> Result<u32, Status>;
    /// A queue's id; `Ok(None)` when nobody registered it.
    fn resolve_queue(&mut self, vm_id: &str, name: &str) -> Result<Option<u32>, Status>;
    fn enqueue(&mut self, queue: u32, value: &[u8]) -> Result<(), Status>;
    /// The next item; `Ok(None)` when the queue is empty.
    fn dequeue(&mut self, queue: u32) -> Result<Option<Bytes>, Status>;

    // ---- callouts
    /// Start an HTTP callout to `upstream` (a cluster name); its answer
    /// comes to the calling context's `call_response` with the token.
    fn dispatch_http_call(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, Status>;

    // ---- the request's flow
    /// Answer the request locally.
    fn send_reply(
        &mut self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Status>;
    /// Let a request this filter paused go on.
    fn resume_request(&mut self) -> Result<(), Status>;
    /// Ask for the root's `tick` every `period`.
    fn set_tick_period(&mut self, period: Duration) -> Result<(), Status>;
    /// The host clock.
    fn now(&mut self) -> Result<SystemTime, Status>;

    // ---- metrics
    fn define_metric(&mut self, kind: MetricType, name: &str) -> Result<u32, Status>;
    fn increment_metric(&mut self, id: u32, offset: i64) -> Result<(), Status>;
    fn record_metric(&mut self, id: u32, value: u64) -> Result<(), Status>;
}

/// Bytes as text, invalid UTF-8 replaced.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The real host: Envoy, through [`crate::abi`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Abi;

impl Host for Abi {
    fn header_pairs(&mut self, map: MapType) -> Result<Vec<(Bytes, Bytes)>, Status> {
        abi::get_map_pairs(map)
    }
    fn header_value(&mut self, map: MapType, name: &str) -> Result<Option<Bytes>, Status> {
        abi::get_map_value_bytes(map, name)
    }
    fn set_header(&mut self, map: MapType, name: &str, value: Option<&str>) -> Result<(), Status> {
        abi::set_map_value(map, name, value)
    }
    fn add_header(&mut self, map: MapType, name: &str, value: &str) -> Result<(), Status> {
        abi::add_map_value(map, name, value)
    }
    fn buffer_len(&mut self, buffer: BufferType) -> Result<usize, Status> {
        abi::get_buffer_status(buffer)
    }
    fn buffer(
        &mut self,
        buffer: BufferType,
        start: usize,
        max: usize,
    ) -> Result<Option<Bytes>, Status> {
        abi::get_buffer(buffer, start, max)
    }
    fn set_buffer(
        &mut self,
        buffer: BufferType,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), Status> {
        abi::set_buffer(buffer, start, size, value)
    }
    fn property(&mut self, path: &[&str]) -> Result<Option<Bytes>, Status> {
        abi::get_property(path)
    }
    fn set_property(&mut self, path: &[&str], value: Option<&[u8]>) -> Result<(), Status> {
        abi::set_property(path, value)
    }
    fn shared_data(&mut self, key: &str) -> Result<(Option<Bytes>, Option<u32>), Status> {
        abi::get_shared_data(key)
    }
    fn set_shared_data(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        cas: Option<u32>,
    ) -> Result<(), Status> {
        abi::set_shared_data(key, value, cas)
    }
    fn register_queue(&mut self, name: &str) -> Result<u32, Status> {
        abi::register_shared_queue(name)
    }
    fn resolve_queue(&mut self, vm_id: &str, name: &str) -> Result<Option<u32>, Status> {
        abi::resolve_shared_queue(vm_id, name)
    }
    fn enqueue(&mut self, queue: u32, value: &[u8]) -> Result<(), Status> {
        abi::enqueue_shared_queue(queue, Some(value))
    }
    fn dequeue(&mut self, queue: u32) -> Result<Option<Bytes>, Status> {
        abi::dequeue_shared_queue(queue)
    }
    fn dispatch_http_call(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, Status> {
        // The SDK's call, not ours: it registers the token so that the
        // answer reaches the calling context (see crate::abi).
        dispatch(upstream, headers, body, timeout)
    }
    fn send_reply(
        &mut self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Status> {
        abi::send_http_response(status, headers, Some(body))
    }
    fn resume_request(&mut self) -> Result<(), Status> {
        abi::resume_http_request()
    }
    fn set_tick_period(&mut self, period: Duration) -> Result<(), Status> {
        abi::set_tick_period(period)
    }
    fn now(&mut self) -> Result<SystemTime, Status> {
        abi::get_current_time()
    }
    fn define_metric(&mut self, kind: MetricType, name: &str) -> Result<u32, Status> {
        abi::define_metric(kind, name)
    }
    fn increment_metric(&mut self, id: u32, offset: i64) -> Result<(), Status> {
        abi::increment_metric(id, offset)
    }
    fn record_metric(&mut self, id: u32, value: u64) -> Result<(), Status> {
        abi::record_metric(id, value)
    }
}

#[cfg(target_arch = "wasm32")]
fn dispatch(
    upstream: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<u32, Status> {
    proxy_wasm::hostcalls::dispatch_http_call(upstream, headers.to_vec(), body, Vec::new(), timeout)
}

/// Off wasm there is no host: the call fails like the other stubs.
#[cfg(not(target_arch = "wasm32"))]
fn dispatch(_: &str, _: &[(&str, &str)], _: Option<&[u8]>, _: Duration) -> Result<u32, Status> {
    Err(Status::InternalFailure)
}
