//! proxy-wasm adapter of the audit sender: the `role: sender` half of the
//! audit module, a singleton `bootstrap_extensions` Wasm service that
//! drains the queue the audit HTTP filters fill
//! (`gw_core::audit::outbox::QUEUE_NAME`) into a bounded buffer and POSTs
//! batches to the collector with retries. The audit crate's root runs a
//! [`Sender`] when its configuration says `role: sender`.
//!
//! The rules (batching, backoff, what a POST carries, which sender leads)
//! are `gw_core::audit::{batch, delivery, otlp}`'s.

mod metrics;
mod sender;

pub use sender::Sender;
