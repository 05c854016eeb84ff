//! Per-agent rate limits: the recipe's "Agent Rate Limiting Policy".
//!
//! - [`sliding_window`]: the exact sliding-window algorithm and the burst definition
//! - [`window_table`]: windows packed into bounded shared-data slots
//! - [`admission`]: all-or-nothing admission of a request's charges, over any slot store with CAS
//! - [`config`]: the recipe's `limits` / `rateLimitResponse` block
//! - [`intake`]: which requests are skipped, billed by path, refused unread
//! - [`bill`]: which windows (verified agent × operation) a request counts in
//! - [`headers`]: IETF `RateLimit-Policy` / `RateLimit` fields
//! - [`response`]: the 429 / JSON-RPC error reply of a limited request
//! - [`a2a_rest`]: that 429 in the A2A HTTP+JSON binding's error format
//! - [`redis`]: multi-replica windows in Redis (Lua script via webdis)

pub mod a2a_rest;
pub mod admission;
pub mod bill;
pub mod config;
pub mod headers;
pub mod intake;
pub mod redis;
pub mod response;
pub mod sliding_window;
pub mod window_table;
