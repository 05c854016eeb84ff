//! Counters, visible in Envoy's `/stats` as `wasmcustom.gw.rate_limit.*`
//! (the shape every filter's metrics take: `gw_host::metrics`).

use gw_host::metrics::Counter;
use gw_host::port::Host;
use gw_rate_limit_store::SlotCounters;

#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics {
    /// Requests the filter looked at (any limit configured).
    pub requests: Counter,
    /// Requests counted in at least one window and admitted.
    pub admitted: Counter,
    /// Requests refused with the rate-limit reply.
    pub limited: Counter,
    /// Requests refused because their key was new and its slot full.
    pub table_full: Counter,
    /// Compare-and-swap retries (another worker wrote the slot first).
    pub cas_retries: Counter,
    /// Shared-data failures (503) and undecodable slots (reset).
    pub store_errors: Counter,
    /// Redis/webdis calls that failed (timeout, connect error, bad reply).
    pub redis_unavailable: Counter,
    /// Expired window records dropped by the background sweep.
    pub reclaimed: Counter,
}

impl Metrics {
    pub fn define(h: &mut dyn Host) -> Self {
        let mut define = |name: &str| Counter::define(h, &format!("gw.rate_limit.{name}"));
        Self {
            requests: define("requests"),
            admitted: define("admitted"),
            limited: define("limited"),
            table_full: define("table_full"),
            cas_retries: define("cas_retries"),
            store_errors: define("store_errors"),
            redis_unavailable: define("redis_unavailable"),
            reclaimed: define("reclaimed"),
        }
    }

    /// The counters the shared-data store adds to.
    pub fn slots(&self) -> SlotCounters {
        SlotCounters {
            cas_retries: self.cas_retries,
            store_errors: self.store_errors,
        }
    }
}
