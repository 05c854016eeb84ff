//! The singleton sender (`role: sender`), running on Envoy's main thread as
//! a `bootstrap_extensions` Wasm service.
//!
//! It owns the shared queue the HTTP filters write to (frames of events,
//! see `gw_core::audit::outbox`), drains it into the
//! bounded [`BatchSender`] as soon as Envoy signals it (`on_queue_ready`)
//! and on every tick, and POSTs due batches with `dispatch_http_call`. The
//! queue itself is unbounded in Envoy; draining it at once into a bounded
//! buffer is what bounds memory (the drops are counted).
//!
//! Envoy 1.40 configures a singleton service twice (the base VM and its
//! main-thread clone both get a root context, both tick). Exactly one must
//! deliver, so the last sender to start claims leadership in shared data
//! (`gw_audit.sender`, rule: `gw_core::audit::delivery::still_leading`); a
//! sender that finds it lost the lead hands its waiting events back to the
//! queue, finishes its batch in flight and goes quiet. What a POST carries,
//! the batching policy and the tick period are `gw_core::audit::delivery`'s.

use crate::metrics::SenderMetrics;
use gw_core::audit::batch::{BatchSender, Outcome};
use gw_core::audit::config::{Destination, DestinationType};
use gw_core::audit::delivery::still_leading;
use gw_core::audit::outbox::frame_events;
use gw_core::audit::outbox::QUEUE_NAME;
use gw_host::clock::now_ms;
use gw_host::port::Host;
use proxy_wasm::types::MapType;
use std::time::Duration;

/// Shared-data key naming the sender that delivers.
const LEADER_KEY: &str = "gw_audit.sender";

pub struct Sender {
    /// This sender's claim in [`LEADER_KEY`].
    token: String,
    /// Still the leader as of the last check.
    leading: bool,
    destination: Destination,
    queue_id: u32,
    batches: BatchSender,
    /// (Envoy call token, batch token) of the POST in flight.
    pending: Option<(u32, u64)>,
    metrics: SenderMetrics,
}

fn tick_period(d: &Destination) -> Duration {
    Duration::from_millis(d.tick_period_ms())
}

impl Sender {
    pub fn start(h: &mut dyn Host, destination: Destination) -> Option<Self> {
        let queue_id = match h.register_queue(QUEUE_NAME) {
            Ok(id) => id,
            Err(status) => {
                log::error!("audit sender: cannot register shared queue {QUEUE_NAME}: {status:?}");
                return None;
            }
        };
        if let Err(status) = h.set_tick_period(tick_period(&destination)) {
            log::error!("audit sender: cannot set tick period: {status:?}");
            return None;
        }
        log::info!(
            "audit sender: {} events to cluster {} as {}{} (batch {}, flush {} ms, buffer {})",
            match destination.kind {
                DestinationType::Http => "JSON batches of",
                DestinationType::Otlp => "OTLP logs of",
            },
            destination.upstream.cluster,
            destination.upstream.authority,
            destination.upstream.path,
            destination.batch_size,
            destination.flush_interval_ms,
            destination.max_buffered_events
        );
        let nanos = h
            .now()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let token = format!("{nanos:x}-{queue_id:x}");
        if let Err(status) = h.set_shared_data(LEADER_KEY, Some(token.as_bytes()), None) {
            log::warn!("audit sender: cannot claim leadership: {status:?}");
        }
        let seed = now_ms(h) ^ u64::from(queue_id).rotate_left(32);
        Some(Self {
            token,
            leading: true,
            batches: BatchSender::new(destination.batch_policy(), seed),
            destination,
            queue_id,
            pending: None,
            metrics: SenderMetrics::define(h),
        })
    }

    pub fn reconfigure(&mut self, h: &mut dyn Host, destination: Destination) {
        self.batches.set_policy(destination.batch_policy());
        if let Err(status) = h.set_tick_period(tick_period(&destination)) {
            log::warn!("audit sender: cannot set tick period: {status:?}");
        }
        if let Ok(id) = h.register_queue(QUEUE_NAME) {
            self.queue_id = id;
        }
        self.destination = destination;
        self.export(h);
    }

    pub fn on_queue_ready(&mut self, h: &mut dyn Host, queue_id: u32) {
        if queue_id == self.queue_id && self.check_leader(h) {
            self.drain(h);
            self.send_due(h);
        }
    }

    pub fn on_tick(&mut self, h: &mut dyn Host) {
        if self.check_leader(h) {
            self.drain(h);
            self.send_due(h);
        }
    }

    /// Whether this sender still delivers; hands its waiting events over
    /// (back to the queue, for the leader) when it does not.
    fn check_leader(&mut self, h: &mut dyn Host) -> bool {
        let current = h.shared_data(LEADER_KEY).ok().and_then(|(value, _)| value);
        let leading = still_leading(current.as_deref(), &self.token);
        if self.leading && !leading {
            log::info!("audit sender: another sender took over; handing events over");
        }
        self.leading = leading;
        if !leading {
            for event in self.batches.hand_over() {
                if let Err(status) = h.enqueue(self.queue_id, event.as_bytes()) {
                    log::warn!("audit sender: cannot hand an event over: {status:?}");
                }
            }
            self.export(h);
        }
        leading
    }

    fn drain(&mut self, h: &mut dyn Host) {
        let now = now_ms(h);
        loop {
            match h.dequeue(self.queue_id) {
                Ok(Some(bytes)) => match String::from_utf8(bytes) {
                    Ok(frame) => {
                        for event in frame_events(&frame) {
                            self.batches.offer(now, event.to_string());
                        }
                    }
                    Err(_) => log::warn!("audit sender: dropped a non-UTF-8 queue item"),
                },
                Ok(None) => break,
                Err(status) => {
                    log::warn!("audit sender: dequeue failed: {status:?}");
                    break;
                }
            }
        }
        self.export(h);
    }

    fn send_due(&mut self, h: &mut dyn Host) {
        if self.pending.is_some() {
            return;
        }
        let now = now_ms(h);
        let d = &self.destination;
        let Some(batch) = self.batches.poll(now) else {
            return;
        };
        let token = batch.token;
        let body = d.encode(&batch.events, now);
        let (cluster, timeout) = (&d.upstream.cluster, d.upstream.timeout());
        match h.dispatch_http_call(cluster, &d.post_headers(), Some(&body), timeout) {
            Ok(call) => self.pending = Some((call, token)),
            Err(status) => {
                // Unknown cluster (BadArgument) or no capacity: a failed
                // attempt like any other, retried after the backoff.
                log::warn!("audit sender: cannot POST to cluster {cluster}: {status:?}");
                self.batches.complete(token, Outcome::Retry, now);
            }
        }
        self.export(h);
    }

    pub fn on_http_call_response(&mut self, h: &mut dyn Host, call: u32) {
        let Some((pending_call, token)) = self.pending else {
            return;
        };
        if pending_call != call {
            return;
        }
        self.pending = None;
        let status = gw_host::headers::get(h, MapType::HttpCallResponseHeaders, ":status")
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(0);
        let outcome = Outcome::from_status(status);
        match outcome {
            Outcome::Delivered => {}
            Outcome::Retry => log::warn!(
                "audit sender: collector answered {status} (0 = no response), will retry"
            ),
            Outcome::Refused => log::warn!(
                "audit sender: collector refused a batch with {status}; splitting it (a single event refused so is dropped)"
            ),
            Outcome::Rejected => log::error!(
                "audit sender: collector refused a batch with {status}; its events are dropped"
            ),
        }
        self.batches.complete(token, outcome, now_ms(h));
        self.export(h);
        self.send_due(h);
    }

    fn export(&mut self, h: &mut dyn Host) {
        self.metrics
            .export(h, self.batches.stats(), self.batches.buffered());
    }
}
