//! Envoy stats of the audit filter (`wasmcustom.gw.audit.*` in `/stats`;
//! the sender's are in `gw_audit_sender`). Counters of the same name
//! defined by several VMs (one per worker, plus the singleton) are one stat
//! in Envoy's store.

use gw_host::metrics::Counter;
use gw_host::port::Host;

/// Counters of the HTTP filter.
#[derive(Debug, Clone, Copy)]
pub struct FilterMetrics {
    /// Events built (one per request/response pair).
    pub events: Counter,
    /// Events lost before reaching the sender (no sender queue).
    pub dropped: Counter,
    /// Request bodies not parsed (too large or not JSON-RPC).
    pub bodies_unparsed: Counter,
}

impl FilterMetrics {
    pub fn define(h: &mut dyn Host) -> Self {
        Self {
            events: Counter::define(h, "gw.audit.events"),
            dropped: Counter::define(h, "gw.audit.events_dropped"),
            bodies_unparsed: Counter::define(h, "gw.audit.request_bodies_unparsed"),
        }
    }
}
