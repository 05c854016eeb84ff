//! Envoy stats of the audit sender (`wasmcustom.gw.audit.*` in `/stats`;
//! `gw.audit.events_dropped` is also the filter's: one stat in Envoy's
//! store).

use gw_core::audit::batch::BatchStats;
use gw_host::metrics::{Counter, Gauge};
use gw_host::port::Host;

/// Counters of the sender, exported as deltas of [`BatchStats`].
#[derive(Debug)]
pub struct SenderMetrics {
    queued: Counter,
    sent: Counter,
    retried: Counter,
    dropped: Counter,
    batches_sent: Counter,
    batches_failed: Counter,
    batches_split: Counter,
    events_refused: Counter,
    buffered: Gauge,
    exported: BatchStats,
}

impl SenderMetrics {
    pub fn define(h: &mut dyn Host) -> Self {
        Self {
            queued: Counter::define(h, "gw.audit.events_queued"),
            sent: Counter::define(h, "gw.audit.events_sent"),
            retried: Counter::define(h, "gw.audit.events_retried"),
            dropped: Counter::define(h, "gw.audit.events_dropped"),
            batches_sent: Counter::define(h, "gw.audit.batches_sent"),
            batches_failed: Counter::define(h, "gw.audit.batches_failed"),
            batches_split: Counter::define(h, "gw.audit.batches_split"),
            events_refused: Counter::define(h, "gw.audit.events_refused"),
            buffered: Gauge::define(h, "gw.audit.buffered_events"),
            exported: BatchStats::default(),
        }
    }

    pub fn export(&mut self, h: &mut dyn Host, now: BatchStats, buffered: usize) {
        let before = self.exported;
        self.queued.add(h, now.queued.saturating_sub(before.queued));
        self.sent.add(h, now.sent.saturating_sub(before.sent));
        self.retried
            .add(h, now.retried.saturating_sub(before.retried));
        self.dropped
            .add(h, now.dropped.saturating_sub(before.dropped));
        self.batches_sent
            .add(h, now.batches_sent.saturating_sub(before.batches_sent));
        self.batches_failed
            .add(h, now.batches_failed.saturating_sub(before.batches_failed));
        self.batches_split
            .add(h, now.batches_split.saturating_sub(before.batches_split));
        self.events_refused
            .add(h, now.events_refused.saturating_sub(before.events_refused));
        self.buffered.set(h, buffered as u64);
        self.exported = now;
    }
}
