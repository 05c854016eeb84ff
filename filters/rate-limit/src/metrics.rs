//! Counters, visible in Envoy's `/stats` as `wasmcustom.gw.rate_limit.*`.

use gw_host::abi;
use proxy_wasm::types::MetricType;

#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics {
    requests: Option<u32>,
    admitted: Option<u32>,
    limited: Option<u32>,
    table_full: Option<u32>,
    cas_retries: Option<u32>,
    store_errors: Option<u32>,
    redis_unavailable: Option<u32>,
    reclaimed: Option<u32>,
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

fn define(name: &str) -> Option<u32> {
    abi::define_metric(MetricType::Counter, name).ok()
}

impl Metrics {
    pub fn define() -> Self {
        Self {
            requests: define("gw.rate_limit.requests"),
            admitted: define("gw.rate_limit.admitted"),
            limited: define("gw.rate_limit.limited"),
            table_full: define("gw.rate_limit.table_full"),
            cas_retries: define("gw.rate_limit.cas_retries"),
            store_errors: define("gw.rate_limit.store_errors"),
            redis_unavailable: define("gw.rate_limit.redis_unavailable"),
            reclaimed: define("gw.rate_limit.reclaimed"),
        }
    }

    pub fn add(&self, counter: Counter, n: u64) {
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
        if let Some(id) = id {
            let _ = abi::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn inc(&self, counter: Counter) {
        self.add(counter, 1);
    }
}
