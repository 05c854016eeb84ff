//! proxy-wasm adapter of the rate-limit filter: exact sliding windows per
//! verified agent × operation (see `gw_core::rate_limit::sliding_window` for the
//! definition, `docs/rate-limit.md` for the config).
//!
//! - `root`: owns the loaded config, pre-creates the shared-data slots,
//!   sweeps expired windows on a tick;
//! - `http`: per-request state machine (headers → body → decision →
//!   optional Redis callout → pass with RateLimit headers, or 429);
//! - `redis_call`: the multi-replica store, one callout per request;
//! - `local_store`: shared data as the slot store that
//!   `gw_core::rate_limit::admission` decides over;
//! - `metrics`: the filter's counters (`wasmcustom.gw.rate_limit.*`).

mod http;
mod local_store;
mod metrics;
mod redis_call;
mod root;

/// A fresh root of the filter (the module is `filters/wasm/rate-limit`).
pub fn new_root() -> Box<dyn gw_host::filter::FilterRoot> {
    Box::new(root::RateLimitRoot::default())
}
