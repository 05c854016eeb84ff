//! The rate limiter's two window stores, the host side of
//! `gw_core::rate_limit` (the rate-limit adapter's request state machine
//! decides which one a request goes to):
//!
//! - `local`: Envoy shared data as the slot store that
//!   `gw_core::rate_limit::admission` decides over (every worker of this
//!   replica), with the background sweep of expired windows;
//! - `redis`: the multi-replica store, one webdis callout per request
//!   (`gw_core::rate_limit::redis` builds it and reads the answer).

mod local;
mod redis;

pub use local::{SharedSlots, SlotCounters};
pub use redis::{RedisCall, RedisOutcome};
