//! Counters of the identity filter (`wasmcustom.gw.identity.*` in Envoy's stats).

use gw_host::metrics::Counter;
use gw_host::port::Host;

#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics {
    pub requests: Counter,
    pub allowed: Counter,
    pub denied: Counter,
    pub unavailable: Counter,
    pub callouts: Counter,
    pub cache_hits: Counter,
    /// Requests refused with 503 because `maxCalloutsInFlight` callouts
    /// were already in flight on this worker.
    pub callouts_rejected: Counter,
}

impl Metrics {
    pub fn define(h: &mut dyn Host) -> Self {
        let mut counter = |name: &str| Counter::define(h, &format!("gw.identity.{name}"));
        Self {
            requests: counter("requests"),
            allowed: counter("allowed"),
            denied: counter("denied"),
            unavailable: counter("unavailable"),
            callouts: counter("callouts"),
            cache_hits: counter("cache_hits"),
            callouts_rejected: counter("callouts_rejected"),
        }
    }
}
