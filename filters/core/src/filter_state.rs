//! Names of the Envoy filter-state entries our filters hand to each other.
//!
//! A filter stores a value with `set_property(vec![KEY], ..)`; Envoy keeps it
//! as filter state `wasm.<KEY>`, which later filters in the same chain (other
//! Wasm modules, other VMs) read back and access logs can print with
//! `%FILTER_STATE(wasm.<KEY>:PLAIN)%`. Clients cannot write filter state, so
//! unlike request headers these values cannot be forged.

/// The verified identity, JSON of [`crate::protocol::request_facts::VerifiedIdentity`]. Set by identity.
pub const VERIFIED_IDENTITY: &str = "gw_identity";
/// What the request body says, JSON of [`crate::protocol::request_facts::RequestFacts`].
/// Set by the first filter that parses the body.
pub const REQUEST_FACTS: &str = "gw_request";
/// Why a filter answered the request itself (`unauthenticated`, `forbidden`,
/// `tool_denied`, `rate_limited`, `bad_request`, `unavailable`). Read by audit.
pub const DECISION: &str = "gw_decision";

/// Values of the [`DECISION`] entry.
pub mod decision {
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    pub const FORBIDDEN: &str = "forbidden";
    pub const TOOL_DENIED: &str = "tool_denied";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const UNAVAILABLE: &str = "unavailable";
}
