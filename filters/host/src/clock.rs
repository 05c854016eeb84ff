//! The host clock (Envoy's time source), for windows, expiries and events.

use crate::port::Host;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch by the host clock; WASI's clock if the host
/// call fails, zero if both do.
pub fn now(h: &mut dyn Host) -> Duration {
    h.now()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch (see [`now`]).
pub fn now_ms(h: &mut dyn Host) -> u64 {
    u64::try_from(now(h).as_millis()).unwrap_or(u64::MAX)
}
