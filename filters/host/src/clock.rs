//! The host clock (Envoy's time source), for windows, expiries and events.

use crate::abi;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch by the host clock; WASI's clock if the host
/// call fails, zero if both do.
pub fn now() -> Duration {
    abi::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch (see [`now`]).
pub fn now_ms() -> u64 {
    u64::try_from(now().as_millis()).unwrap_or(u64::MAX)
}
