//! Envoy stats of the audit filter and sender (`wasmcustom.gw.audit.*` in
//! `/stats`). Counters of the same name defined by several VMs (one per
//! worker, plus the singleton) are one stat in Envoy's store.

use gw_core::audit::batch::BatchStats;
use gw_host::abi;
use proxy_wasm::types::MetricType;

fn define(kind: MetricType, name: &str) -> Option<u32> {
    match abi::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("audit: cannot define metric {name}: {status:?}");
            None
        }
    }
}

pub fn add(metric: Option<u32>, n: u64) {
    if let (Some(id), Ok(n)) = (metric, i64::try_from(n)) {
        if n > 0 {
            let _ = abi::increment_metric(id, n);
        }
    }
}

fn set(metric: Option<u32>, value: u64) {
    if let Some(id) = metric {
        let _ = abi::record_metric(id, value);
    }
}

/// Counters of the HTTP filter.
#[derive(Debug, Clone, Copy)]
pub struct FilterMetrics {
    /// Events built (one per request/response pair).
    pub events: Option<u32>,
    /// Events lost before reaching the sender (no sender queue).
    pub dropped: Option<u32>,
    /// Request bodies not parsed (too large or not JSON-RPC).
    pub bodies_unparsed: Option<u32>,
}

impl FilterMetrics {
    pub fn define() -> Self {
        Self {
            events: define(MetricType::Counter, "gw.audit.events"),
            dropped: define(MetricType::Counter, "gw.audit.events_dropped"),
            bodies_unparsed: define(MetricType::Counter, "gw.audit.request_bodies_unparsed"),
        }
    }
}

/// Counters of the sender, exported as deltas of [`BatchStats`].
#[derive(Debug)]
pub struct SenderMetrics {
    queued: Option<u32>,
    sent: Option<u32>,
    retried: Option<u32>,
    dropped: Option<u32>,
    batches_sent: Option<u32>,
    batches_failed: Option<u32>,
    batches_split: Option<u32>,
    events_refused: Option<u32>,
    buffered: Option<u32>,
    exported: BatchStats,
}

impl SenderMetrics {
    pub fn define() -> Self {
        Self {
            queued: define(MetricType::Counter, "gw.audit.events_queued"),
            sent: define(MetricType::Counter, "gw.audit.events_sent"),
            retried: define(MetricType::Counter, "gw.audit.events_retried"),
            dropped: define(MetricType::Counter, "gw.audit.events_dropped"),
            batches_sent: define(MetricType::Counter, "gw.audit.batches_sent"),
            batches_failed: define(MetricType::Counter, "gw.audit.batches_failed"),
            batches_split: define(MetricType::Counter, "gw.audit.batches_split"),
            events_refused: define(MetricType::Counter, "gw.audit.events_refused"),
            buffered: define(MetricType::Gauge, "gw.audit.buffered_events"),
            exported: BatchStats::default(),
        }
    }

    pub fn export(&mut self, now: BatchStats, buffered: usize) {
        let before = self.exported;
        add(self.queued, now.queued.saturating_sub(before.queued));
        add(self.sent, now.sent.saturating_sub(before.sent));
        add(self.retried, now.retried.saturating_sub(before.retried));
        add(self.dropped, now.dropped.saturating_sub(before.dropped));
        add(
            self.batches_sent,
            now.batches_sent.saturating_sub(before.batches_sent),
        );
        add(
            self.batches_failed,
            now.batches_failed.saturating_sub(before.batches_failed),
        );
        add(
            self.batches_split,
            now.batches_split.saturating_sub(before.batches_split),
        );
        add(
            self.events_refused,
            now.events_refused.saturating_sub(before.events_refused),
        );
        set(self.buffered, buffered as u64);
        self.exported = now;
    }
}
