//! proxy-wasm adapter of the rate-limit filter: exact sliding windows per
//! verified agent × operation (see `gw_core::rate_limit::sliding_window` for the
//! definition, `docs/rate-limit.md` for the config).
//!
//! - `root`: owns the loaded config, pre-creates the shared-data slots,
//!   sweeps expired windows on a tick;
//! - `http`: per-request state machine (headers → body → decision →
//!   optional Redis callout → pass with RateLimit headers, or 429);
//! - `redis_call`: the request's side of the multi-replica store (waits
//!   for the one callout, then admits, refuses or applies `onUnavailable`);
//! - the stores themselves (shared-data slots, the Redis callout) are the
//!   crate `gw_rate_limit_store` (`filters/rate-limit-store`);
//! - `metrics`: the filter's counters (`wasmcustom.gw.rate_limit.*`).

mod http;
mod metrics;
mod redis_call;
mod root;

/// A fresh root of the filter (the module is `filters/wasm/rate-limit`).
pub fn new_root() -> Box<dyn gw_host::filter::FilterRoot> {
    Box::new(root::RateLimitRoot::default())
}
