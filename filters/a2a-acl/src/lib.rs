//! proxy-wasm adapter for the A2A stage of the tool-acl filter: requests
//! under `/a2a` when the tool-acl configuration has an `a2a:` section
//! (policy `gw_core::a2a_acl`; `docs/a2a.md`). The tool-acl filter, alone
//! or in the one-module chain, hands such a request to an [`A2aStage`]
//! whole; its root owns the [`Outbox`] of task owners and flushes it to
//! Redis on its tick ([`flush_outbox`], every [`OUTBOX_TICK`]).
//!
//! - `stage`: the request side (judge, decide, wait for Redis)
//! - `answers`: the answer side (task ids recorded, lists filtered)
//! - `owners`: the ownership table (shared data) and its Redis mirror

mod answers;
mod owners;
mod stage;

pub use owners::{flush_outbox, Outbox, OUTBOX_TICK};
pub use stage::A2aStage;

use gw_host::metrics::Counter;

/// The tool ACL's counters an A2A decision counts in (A2A has no metrics
/// of its own: `docs/a2a.md`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub allowed: Counter,
    pub denied: Counter,
}
