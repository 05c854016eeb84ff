//! Counters, visible in Envoy's `/stats` as `wasmcustom.gw.rate_limit.*`.

use gw_host::metrics::Counter as HostCounter;
use gw_host::port::Host;

#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics {
    requests: HostCounter,
    admitted: HostCounter,
    limited: HostCounter,
    table_full: HostCounter,
    cas_retries: HostCounter,
    store_errors: HostCounter,
    redis_unavailable: HostCounter,
    reclaimed: HostCounter,
}

#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// Requests the filter looked at (any limit configured).
    Requests,
    /// Requests counted in at least one window and admitted.
    Admitted,
    /// Requests refused with the rate-limit reply.
    Limited,
    /// Requests refused because their key was new and its slot full.
    TableFull,
    /// Compare-and-swap retries (another worker wrote the slot first).
    CasRetries,
    /// Shared-data failures (503) and undecodable slots (reset).
    StoreErrors,
    /// Redis/webdis calls that failed (timeout, connect error, bad reply).
    RedisUnavailable,
    /// Expired window records dropped by the background sweep.
    Reclaimed,
}

impl Metrics {
    pub fn define(h: &mut dyn Host) -> Self {
        let mut define = |name: &str| HostCounter::define(h, &format!("gw.rate_limit.{name}"));
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

    pub fn add(&self, h: &mut dyn Host, counter: Counter, n: u64) {
        let id = match counter {
            Counter::Requests => self.requests,
            Counter::Admitted => self.admitted,
            Counter::Limited => self.limited,
            Counter::TableFull => self.table_full,
            Counter::CasRetries => self.cas_retries,
            Counter::StoreErrors => self.store_errors,
            Counter::RedisUnavailable => self.redis_unavailable,
            Counter::Reclaimed => self.reclaimed,
        };
        id.add(h, n);
    }

    pub fn inc(&self, h: &mut dyn Host, counter: Counter) {
        self.add(h, counter, 1);
    }
}
