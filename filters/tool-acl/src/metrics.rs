//! Counters of the tool-acl filter (`wasmcustom.gw.tool_acl.*` in Envoy's
//! stats), the shape every filter's metrics take (`gw_host::metrics`).

use gw_host::metrics::Counter;
use gw_host::port::Host;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) requests: Counter,
    pub(crate) inspected: Counter,
    pub(crate) allowed: Counter,
    pub(crate) denied: Counter,
    pub(crate) bad_request: Counter,
    pub(crate) no_identity: Counter,
    pub(crate) list_filtered: Counter,
    pub(crate) tools_hidden: Counter,
    pub(crate) cache_hit: Counter,
    pub(crate) cache_miss: Counter,
    pub(crate) cache_store: Counter,
    pub(crate) cache_invalidated: Counter,
    pub(crate) version_refused: Counter,
}

impl Metrics {
    pub(crate) fn define(h: &mut dyn Host) -> Self {
        let mut counter = |name: &str| Counter::define(h, &format!("gw.tool_acl.{name}"));
        Self {
            requests: counter("requests"),
            inspected: counter("mcp_requests"),
            allowed: counter("allowed"),
            denied: counter("denied"),
            bad_request: counter("bad_request"),
            no_identity: counter("no_identity"),
            list_filtered: counter("tools_list_filtered"),
            tools_hidden: counter("tools_hidden"),
            cache_hit: counter("tools_list_cache_hit"),
            cache_miss: counter("tools_list_cache_miss"),
            cache_store: counter("tools_list_cache_store"),
            cache_invalidated: counter("tools_list_cache_invalidated"),
            version_refused: counter("protocol_version_refused"),
        }
    }

    /// The counters the A2A stage counts its decisions in.
    pub(crate) fn a2a(&self) -> gw_a2a_acl::Counters {
        gw_a2a_acl::Counters {
            allowed: self.allowed,
            denied: self.denied,
        }
    }

    /// The counters the answer side (lists, their cache) counts in.
    pub(crate) fn lists(&self) -> gw_tool_lists::Counters {
        gw_tool_lists::Counters {
            no_identity: self.no_identity,
            list_filtered: self.list_filtered,
            tools_hidden: self.tools_hidden,
            cache_hit: self.cache_hit,
            cache_miss: self.cache_miss,
            cache_store: self.cache_store,
            cache_invalidated: self.cache_invalidated,
        }
    }
}
