//! Our own bindings to the proxy-wasm ABI 0.2.1 host functions, returning
//! `Result<_, Status>` for every status the host may answer.
//!
//! Every `proxy_wasm::hostcalls` function ends in a catch-all status arm
//! that panics ("unexpected status"), and a panic kills the worker's Wasm VM (with
//! `FAIL_CLOSED`, every later request on that worker gets a 503). Envoy does
//! answer statuses the SDK does not expect, e.g. when a header map is read
//! from a callback where it is no longer available. The SDK also declares the
//! imports as returning its `Status` enum, which has no variant for several
//! host codes (BadExpression, InvalidMemoryAccess, Unimplemented, ...): here
//! the imports return the raw `u32` and [`status`] maps it.
//!
//! The imports are the same symbols the SDK imports (module `env`); memory
//! the host returns was allocated through the SDK's exported
//! `proxy_on_memory_allocate` (a boxed `[u8]` of exactly the returned size),
//! so ownership is taken exactly like the SDK does:
//! `Vec::from_raw_parts(ptr, size, size)` when the pointer is non-null.
//!
//! `dispatch_http_call` is deliberately not here: the SDK must register the
//! callout token to route `on_http_call_response` to the calling context, and
//! that registration is private to the SDK.
//!
//! Off wasm (host unit tests, host clippy) the imports do not exist; stubs
//! answer [`HOST_STUB_STATUS`] so that everything compiles and fails softly.

use proxy_wasm::types::{BufferType, Bytes, MapType, MetricType, Status, StreamType};
use std::ptr::{null, null_mut};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the stubs answer off wasm (`InternalFailure`).
#[cfg(not(target_arch = "wasm32"))]
pub const HOST_STUB_STATUS: u32 = 10;

/// Declares the imports on wasm and same-signature stubs elsewhere.
macro_rules! host_functions {
    ($( fn $name:ident ( $( $arg:ident : $ty:ty ),* $(,)? ); )*) => {
        #[cfg(target_arch = "wasm32")]
        #[link(wasm_import_module = "env")]
        extern "C" {
            $( fn $name( $( $arg: $ty ),* ) -> u32; )*
        }

        $(
            #[cfg(not(target_arch = "wasm32"))]
            #[allow(unused_variables, clippy::too_many_arguments)]
            unsafe fn $name( $( $arg: $ty ),* ) -> u32 {
                HOST_STUB_STATUS
            }
        )*
    };
}

host_functions! {
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64);
    fn proxy_set_tick_period_milliseconds(period: u32);
    fn proxy_get_buffer_status(
        buffer_type: u32,
        return_buffer_size: *mut usize,
        return_flags: *mut u32,
    );
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    );
    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    );
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    );
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    );
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize);
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    );
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    );
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    );
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    );
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    );
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    );
    fn proxy_register_shared_queue(name_data: *const u8, name_size: usize, return_id: *mut u32);
    fn proxy_resolve_shared_queue(
        vm_id_data: *const u8,
        vm_id_size: usize,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    );
    fn proxy_dequeue_shared_queue(
        queue_id: u32,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    );
    fn proxy_enqueue_shared_queue(queue_id: u32, value_data: *const u8, value_size: usize);
    fn proxy_continue_stream(stream_type: u32);
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    );
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    );
    fn proxy_increment_metric(metric_id: u32, offset: i64);
    fn proxy_record_metric(metric_id: u32, value: u64);
}

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
const EMPTY: u32 = 7;

/// The SDK's `Status` for a raw host status. Codes the SDK enum has no
/// variant for (BadExpression 5, InvalidMemoryAccess 6, ResultMismatch 9,
/// BrokenConnection 11, Unimplemented 12, anything newer) become
/// `InternalFailure`.
pub fn status(raw: u32) -> Status {
    match raw {
        0 => Status::Ok,
        1 => Status::NotFound,
        2 => Status::BadArgument,
        3 => Status::SerializationFailure,
        4 => Status::ParseFailure,
        7 => Status::Empty,
        8 => Status::CasMismatch,
        10 => Status::InternalFailure,
        other => {
            log::debug!("proxy-wasm host status {other} mapped to InternalFailure");
            Status::InternalFailure
        }
    }
}

fn check(raw: u32) -> Result<(), Status> {
    match raw {
        OK => Ok(()),
        other => Err(status(other)),
    }
}

/// Take ownership of memory the host allocated through the SDK's
/// `proxy_on_memory_allocate` (exactly `size` bytes), like the SDK does.
///
/// # Safety
/// `data` is null or was returned by the host together with `size` for a
/// call that answered `Ok`.
unsafe fn take(data: *mut u8, size: usize) -> Option<Bytes> {
    if data.is_null() {
        None
    } else {
        Some(Vec::from_raw_parts(data, size, size))
    }
}

fn u32_len(len: usize) -> Result<u32, Status> {
    u32::try_from(len).map_err(|_| Status::BadArgument)
}

/// Serialize header pairs: u32 LE count, count × (u32 key_len, u32
/// value_len), then each key and value followed by a NUL.
pub fn serialize_map(pairs: &[(&str, &str)]) -> Result<Bytes, Status> {
    let mut bytes = Vec::with_capacity(
        pairs
            .iter()
            .fold(4usize, |n, (k, v)| n.saturating_add(k.len() + v.len() + 10)),
    );
    bytes.extend_from_slice(&u32_len(pairs.len())?.to_le_bytes());
    for (key, value) in pairs {
        bytes.extend_from_slice(&u32_len(key.len())?.to_le_bytes());
        bytes.extend_from_slice(&u32_len(value.len())?.to_le_bytes());
    }
    for (key, value) in pairs {
        bytes.extend_from_slice(key.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
    }
    Ok(bytes)
}

fn read_len(bytes: &[u8], at: usize) -> Option<usize> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(raw)).ok()
}

/// `len` bytes at `*at` followed by a NUL; advances `*at` past the NUL.
fn read_field(bytes: &[u8], at: &mut usize, len: usize) -> Option<Bytes> {
    let end = at.checked_add(len)?;
    let field = bytes.get(*at..end)?.to_vec();
    if bytes.get(end) != Some(&0) {
        return None;
    }
    *at = end.checked_add(1)?;
    Some(field)
}

/// Deserialize the host's header-map pairs (format of [`serialize_map`]).
/// Empty input is an empty map; anything truncated or inconsistent is
/// `Err(ParseFailure)`. Never panics, whatever the bytes.
pub fn deserialize_map(bytes: &[u8]) -> Result<Vec<(Bytes, Bytes)>, Status> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    parse_map(bytes).ok_or(Status::ParseFailure)
}

fn parse_map(bytes: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let count = read_len(bytes, 0)?;
    let mut at = count.checked_mul(8)?.checked_add(4)?;
    if at > bytes.len() {
        return None; // also bounds the allocation below
    }
    let mut pairs = Vec::with_capacity(count);
    for n in 0..count {
        let sizes = n.checked_mul(8)?.checked_add(4)?;
        let key_len = read_len(bytes, sizes)?;
        let value_len = read_len(bytes, sizes.checked_add(4)?)?;
        let key = read_field(bytes, &mut at, key_len)?;
        let value = read_field(bytes, &mut at, value_len)?;
        pairs.push((key, value));
    }
    Some(pairs)
}

/// Property path segments joined by NUL (as the SDK serializes them).
fn serialize_path(path: &[&str]) -> Bytes {
    let mut bytes = Vec::new();
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            bytes.push(0);
        }
        bytes.extend_from_slice(part.as_bytes());
    }
    bytes
}

fn opt_ptr(value: Option<&[u8]>) -> (*const u8, usize) {
    value.map_or((null(), 0), |v| (v.as_ptr(), v.len()))
}

/// The host clock.
pub fn get_current_time() -> Result<SystemTime, Status> {
    let mut nanos: u64 = 0;
    check(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// Set the root context's tick period (saturating at `u32::MAX` ms).
pub fn set_tick_period(period: Duration) -> Result<(), Status> {
    let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
    check(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// Length of a buffer (e.g. the request body Envoy holds for us).
pub fn get_buffer_status(buffer_type: BufferType) -> Result<usize, Status> {
    let mut size: usize = 0;
    let mut flags: u32 = 0;
    check(unsafe { proxy_get_buffer_status(buffer_type as u32, &mut size, &mut flags) })?;
    Ok(size)
}

/// Bytes of a buffer; `Ok(None)` when the host has none (`NotFound`).
pub fn get_buffer(
    buffer_type: BufferType,
    start: usize,
    max_size: usize,
) -> Result<Option<Bytes>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let raw = unsafe {
        proxy_get_buffer_bytes(buffer_type as u32, start, max_size, &mut data, &mut size)
    };
    match raw {
        OK => Ok(unsafe { take(data, size) }),
        NOT_FOUND => Ok(None),
        other => Err(status(other)),
    }
}

/// Replace `size` bytes of a buffer from `start` with `value`.
pub fn set_buffer(
    buffer_type: BufferType,
    start: usize,
    size: usize,
    value: &[u8],
) -> Result<(), Status> {
    check(unsafe {
        proxy_set_buffer_bytes(buffer_type as u32, start, size, value.as_ptr(), value.len())
    })
}

/// Every pair of a header map, as raw bytes.
pub fn get_map_pairs(map_type: MapType) -> Result<Vec<(Bytes, Bytes)>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    check(unsafe { proxy_get_header_map_pairs(map_type as u32, &mut data, &mut size) })?;
    match unsafe { take(data, size) } {
        Some(serialized) => deserialize_map(&serialized),
        None => Ok(Vec::new()),
    }
}

/// One header's value; `Ok(None)` when absent.
pub fn get_map_value_bytes(map_type: MapType, key: &str) -> Result<Option<Bytes>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let raw = unsafe {
        proxy_get_header_map_value(
            map_type as u32,
            key.as_ptr(),
            key.len(),
            &mut data,
            &mut size,
        )
    };
    match raw {
        OK => Ok(Some(unsafe { take(data, size) }.unwrap_or_default())),
        NOT_FOUND => Ok(None),
        other => Err(status(other)),
    }
}

/// Remove every value of a header.
pub fn remove_map_value(map_type: MapType, key: &str) -> Result<(), Status> {
    check(unsafe { proxy_remove_header_map_value(map_type as u32, key.as_ptr(), key.len()) })
}

/// Replace a header (or with `None` remove it).
pub fn set_map_value(map_type: MapType, key: &str, value: Option<&str>) -> Result<(), Status> {
    let Some(value) = value else {
        return remove_map_value(map_type, key);
    };
    check(unsafe {
        proxy_replace_header_map_value(
            map_type as u32,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Add a header value (keeping existing values).
pub fn add_map_value(map_type: MapType, key: &str, value: &str) -> Result<(), Status> {
    check(unsafe {
        proxy_add_header_map_value(
            map_type as u32,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// A host property; `Ok(None)` when absent.
pub fn get_property(path: &[&str]) -> Result<Option<Bytes>, Status> {
    let path = serialize_path(path);
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let raw = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    match raw {
        OK => Ok(unsafe { take(data, size) }),
        NOT_FOUND => Ok(None),
        other => Err(status(other)),
    }
}

/// Set a host property (filter state `wasm.<path>`).
pub fn set_property(path: &[&str], value: Option<&[u8]>) -> Result<(), Status> {
    let path = serialize_path(path);
    let (value_data, value_size) = opt_ptr(value);
    check(unsafe { proxy_set_property(path.as_ptr(), path.len(), value_data, value_size) })
}

/// Shared data under `key` and its CAS token; `(None, None)` when absent.
pub fn get_shared_data(key: &str) -> Result<(Option<Bytes>, Option<u32>), Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    let raw =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match raw {
        OK => Ok((unsafe { take(data, size) }, (cas != 0).then_some(cas))),
        NOT_FOUND => Ok((None, None)),
        other => Err(status(other)),
    }
}

/// Write shared data; with `cas`, only if nobody wrote since that token
/// (`Err(CasMismatch)` otherwise).
pub fn set_shared_data(key: &str, value: Option<&[u8]>, cas: Option<u32>) -> Result<(), Status> {
    let (value_data, value_size) = opt_ptr(value);
    check(unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value_data,
            value_size,
            cas.unwrap_or(0),
        )
    })
}

/// Register (or re-register) a shared queue of this VM.
pub fn register_shared_queue(name: &str) -> Result<u32, Status> {
    let mut id: u32 = 0;
    check(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// A shared queue's id; `Ok(None)` when nobody registered it.
pub fn resolve_shared_queue(vm_id: &str, name: &str) -> Result<Option<u32>, Status> {
    let mut id: u32 = 0;
    let raw = unsafe {
        proxy_resolve_shared_queue(
            vm_id.as_ptr(),
            vm_id.len(),
            name.as_ptr(),
            name.len(),
            &mut id,
        )
    };
    match raw {
        OK => Ok(Some(id)),
        NOT_FOUND => Ok(None),
        other => Err(status(other)),
    }
}

/// The next queue item; `Ok(None)` when the queue is empty.
pub fn dequeue_shared_queue(queue_id: u32) -> Result<Option<Bytes>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let raw = unsafe { proxy_dequeue_shared_queue(queue_id, &mut data, &mut size) };
    match raw {
        OK => Ok(unsafe { take(data, size) }),
        EMPTY => Ok(None),
        other => Err(status(other)),
    }
}

/// Append an item to a shared queue.
pub fn enqueue_shared_queue(queue_id: u32, value: Option<&[u8]>) -> Result<(), Status> {
    let (value_data, value_size) = opt_ptr(value);
    check(unsafe { proxy_enqueue_shared_queue(queue_id, value_data, value_size) })
}

/// Resume a paused request.
pub fn resume_http_request() -> Result<(), Status> {
    check(unsafe { proxy_continue_stream(StreamType::HttpRequest as u32) })
}

/// Send a local reply (not gRPC).
pub fn send_http_response(
    status_code: u32,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<(), Status> {
    let headers = serialize_map(headers)?;
    let (body_data, body_size) = opt_ptr(body);
    check(unsafe {
        proxy_send_local_response(
            status_code,
            null(),
            0,
            body_data,
            body_size,
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// Define a metric; returns its id.
pub fn define_metric(metric_type: MetricType, name: &str) -> Result<u32, Status> {
    let mut id: u32 = 0;
    check(unsafe { proxy_define_metric(metric_type as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// Add `offset` to a counter or gauge.
pub fn increment_metric(metric_id: u32, offset: i64) -> Result<(), Status> {
    check(unsafe { proxy_increment_metric(metric_id, offset) })
}

/// Set a gauge (or histogram sample).
pub fn record_metric(metric_id: u32, value: u64) -> Result<(), Status> {
    check(unsafe { proxy_record_metric(metric_id, value) })
}

#[cfg(test)]
#[path = "abi_test.rs"]
mod tests;
