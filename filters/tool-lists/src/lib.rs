//! proxy-wasm adapter for the answer side of the tool-acl filter: the
//! cache in front of `tools/list`, per-agent filtering of the lists in JSON
//! and SSE answers, and the 2024-11-05 GET stream's `endpoint` event and
//! pending denials. The tool-acl filter, alone or in the one-module chain,
//! keeps one [`ListAnswers`] per request and hands it the request's facts
//! ([`ListAnswers::prepare`]) and every response callback.
//!
//! The policy is `gw_core::tool_acl` (`list_plan`: which lists, when to
//! cache, how to read an answer; `tools_list`, `sse_rewrite`,
//! `legacy_sse`); this crate only moves bytes.
//!
//! - `answers`: the per-request state and the response callbacks
//! - `cache`: the cache document in Envoy shared data
//! - `identity`: the verified identity, read once per request

mod answers;
mod cache;
mod identity;

pub use answers::{ListAnswers, ListRequest, LEGACY_PENDING_KEY};
pub use identity::IdentityMemo;

use gw_host::metrics::Counter;

/// The tool ACL's counters the answer side counts in (`docs/tool-acl.md`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub no_identity: Counter,
    pub list_filtered: Counter,
    pub tools_hidden: Counter,
    pub cache_hit: Counter,
    pub cache_miss: Counter,
    pub cache_store: Counter,
    pub cache_invalidated: Counter,
}
