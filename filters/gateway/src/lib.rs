//! The whole chain in one module: audit, identity, tool ACL and rate limit
//! as stages of a single Envoy HTTP filter.
//!
//! Why: every proxy-wasm filter costs a VM entry per callback and its own
//! host round trips (headers, filter state, body copies), whatever it does;
//! four filters pay that four times (docs/benchmarks.md). Composed, Envoy
//! calls one context, which runs the same four filters in order.
//!
//! - [`root`]: one root context holding each filter's root, configured from
//!   its section (`gw_core::gateway`), with their ticks and callouts.
//! - [`chain`]: the per-request filter that drives the stages the way
//!   Envoy drives a filter chain.
//!
//! The filters themselves are unchanged: they are the crates `gw-audit`,
//! `gw-identity`, `gw-tool-acl`, `gw-rate-limit` (each a
//! `gw_host::filter::FilterRoot`), also built as their own modules
//! (`filters/wasm/*`). Each stage gets the host through
//! `gw_host::memo::Composed`, which tells the chain what the stage did.

mod chain;
mod root;

/// A fresh root context (the module is `filters/wasm/gateway`). The chain
/// ends every stage at trailers itself, so it is not wrapped again.
pub fn new_root() -> Box<dyn proxy_wasm::traits::RootContext> {
    Box::new(gw_host::filter::StandaloneRoot::composite(Box::new(
        root::GatewayRoot::default(),
    )))
}

/// The chain's root as a `FilterRoot`, for driving it on another host
/// (tests on `gw_host::memory::MemoryHost`).
pub fn new_filter_root() -> Box<dyn gw_host::filter::FilterRoot> {
    Box::new(root::GatewayRoot::default())
}
