//! proxy-wasm adapter for the tool-acl filter: per-agent tool access from
//! the request body, `tools/list` filtering and caching.
//!
//! The policy lives in `gw_core::tool_acl` (`authorize`, `config`,
//! `denial`, `request_guard`, `list_plan`, `tools_list`, `sse_rewrite`,
//! `legacy_sse`); this crate only moves bytes between Envoy and those
//! modules: `http` (the callbacks), `judge` (the request body's verdict),
//! `lists` (list answers and their cache, `cache`), `legacy` (the
//! 2024-11-05 transport's denials). Under `/a2a`, with an `a2a:` section,
//! the A2A stage: its own adapter crate, `gw_a2a_acl` (`filters/a2a-acl`).
//! See `docs/tool-acl.md` and `docs/a2a.md`.

mod cache;
mod http;
mod judge;
mod legacy;
mod lists;

use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};
use gw_host::filter::{Filter, FilterRoot};
use gw_host::metrics::Counter;
use gw_host::port::Host;
use std::rc::Rc;

/// A fresh root of the filter (the module is `filters/wasm/tool-acl`).
pub fn new_root() -> Box<dyn FilterRoot> {
    Box::new(ToolAclRoot {
        config: None,
        metrics: Rc::new(Metrics::default()),
        outbox: gw_a2a_acl::Outbox::default(),
    })
}

/// Counters, visible as `wasmcustom.gw.tool_acl.*` in Envoy's stats.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Counter,
    inspected: Counter,
    allowed: Counter,
    denied: Counter,
    bad_request: Counter,
    no_identity: Counter,
    list_filtered: Counter,
    tools_hidden: Counter,
    cache_hit: Counter,
    cache_miss: Counter,
    cache_store: Counter,
    cache_invalidated: Counter,
    version_refused: Counter,
}

#[derive(Clone, Copy)]
pub(crate) enum Metric {
    Requests,
    Inspected,
    Allowed,
    Denied,
    BadRequest,
    NoIdentity,
    ListFiltered,
    ToolsHidden,
    CacheHit,
    CacheMiss,
    CacheStore,
    CacheInvalidated,
    VersionRefused,
}

impl Metrics {
    fn define(h: &mut dyn Host) -> Self {
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

    pub(crate) fn add(&self, h: &mut dyn Host, metric: Metric, n: u64) {
        let counter = match metric {
            Metric::Requests => self.requests,
            Metric::Inspected => self.inspected,
            Metric::Allowed => self.allowed,
            Metric::Denied => self.denied,
            Metric::BadRequest => self.bad_request,
            Metric::NoIdentity => self.no_identity,
            Metric::ListFiltered => self.list_filtered,
            Metric::ToolsHidden => self.tools_hidden,
            Metric::CacheHit => self.cache_hit,
            Metric::CacheMiss => self.cache_miss,
            Metric::CacheStore => self.cache_store,
            Metric::CacheInvalidated => self.cache_invalidated,
            Metric::VersionRefused => self.version_refused,
        };
        counter.add(h, n);
    }
}

struct ToolAclRoot {
    config: Option<Rc<ToolAclConfig>>,
    metrics: Rc<Metrics>,
    /// A2A task owners the filters recorded, sent to Redis on the tick.
    outbox: gw_a2a_acl::Outbox,
}

impl FilterRoot for ToolAclRoot {
    fn name(&self) -> &'static str {
        "tool_acl"
    }

    fn configure(&mut self, h: &mut dyn Host, configuration: &[u8]) -> bool {
        let Some(config) =
            gw_host::config::load::<ToolAclSpec, ToolAclConfig>("tool_acl", configuration)
        else {
            return false;
        };
        // Task owners shared through Redis are sent on a tick (gw_a2a_acl).
        let shares_owners = config
            .a2a
            .as_ref()
            .is_some_and(|a| a.isolation.redis.is_some());
        self.config = Some(Rc::new(config));
        self.metrics = Rc::new(Metrics::define(h));
        if shares_owners {
            if let Err(status) = h.set_tick_period(gw_a2a_acl::OUTBOX_TICK) {
                log::error!("tool_acl: cannot set the tick period: {status:?}");
            }
        }
        true
    }

    fn tick(&mut self, h: &mut dyn Host) {
        if let Some(config) = &self.config {
            gw_a2a_acl::flush_outbox(h, config, &self.outbox);
        }
    }

    fn new_filter(&self, _context_id: u32) -> Box<dyn Filter> {
        // No configuration means configure failed and Envoy refused the
        // filter; a filter without one must still fail closed.
        Box::new(http::ToolAclHttp::new(
            self.config.clone(),
            self.metrics.clone(),
            self.outbox.clone(),
        ))
    }
}
