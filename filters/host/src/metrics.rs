//! One shape for every filter's metrics: a [`Counter`] (or [`Gauge`]) is
//! the id Envoy gave a name, or nothing when the host refused it (a metric
//! is never worth failing a request for).

use crate::port::Host;
use proxy_wasm::types::MetricType;

/// A counter (`wasmcustom.<name>` in Envoy's stats).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counter(Option<u32>);

impl Counter {
    pub fn define(h: &mut dyn Host, name: &str) -> Self {
        Self(define(h, MetricType::Counter, name))
    }

    /// Add `n` (nothing to do, and no host call, for 0).
    pub fn add(self, h: &mut dyn Host, n: u64) {
        if let (Some(id), true) = (self.0, n > 0) {
            let _ = h.increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn inc(self, h: &mut dyn Host) {
        self.add(h, 1);
    }
}

/// A gauge: a value set, not added to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Gauge(Option<u32>);

impl Gauge {
    pub fn define(h: &mut dyn Host, name: &str) -> Self {
        Self(define(h, MetricType::Gauge, name))
    }

    pub fn set(self, h: &mut dyn Host, value: u64) {
        if let Some(id) = self.0 {
            let _ = h.record_metric(id, value);
        }
    }
}

fn define(h: &mut dyn Host, kind: MetricType, name: &str) -> Option<u32> {
    match h.define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("cannot define metric {name}: {status:?}");
            None
        }
    }
}
