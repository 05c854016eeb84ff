//! proxy-wasm adapter for the tool-acl filter: per-agent tool access from
//! the request body, `tools/list` filtering and caching.
//!
//! The policy lives in `gw_core` (`tool_acl`, `tool_acl_config`, `denial`,
//! `request_guard`, `tools_list`, `sse_rewrite`); this crate only moves
//! bytes between Envoy and those modules. See `docs/tool-acl.md`.

mod a2a;
mod cache;
mod http;

use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, MetricType};
use std::rc::Rc;

/// A fresh root context of the filter (the module is `filters/wasm/tool-acl`).
pub fn new_root() -> Box<dyn RootContext> {
    Box::new(ToolAclRoot {
        config: None,
        metrics: Rc::new(Metrics::default()),
    })
}

/// Counters, visible as `wasmcustom.gw.tool_acl.*` in Envoy's stats.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Option<u32>,
    inspected: Option<u32>,
    allowed: Option<u32>,
    denied: Option<u32>,
    bad_request: Option<u32>,
    no_identity: Option<u32>,
    list_filtered: Option<u32>,
    tools_hidden: Option<u32>,
    cache_hit: Option<u32>,
    cache_miss: Option<u32>,
    cache_store: Option<u32>,
    cache_invalidated: Option<u32>,
    version_refused: Option<u32>,
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
    fn define() -> Self {
        let counter = |name: &str| {
            gw_host::abi::define_metric(MetricType::Counter, &format!("gw.tool_acl.{name}")).ok()
        };
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

    pub(crate) fn add(&self, metric: Metric, n: u64) {
        let id = match metric {
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
        if let Some(id) = id {
            let _ = gw_host::abi::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

struct ToolAclRoot {
    config: Option<Rc<ToolAclConfig>>,
    metrics: Rc<Metrics>,
}

impl Context for ToolAclRoot {}

impl RootContext for ToolAclRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) =
            gw_host::config::load_plugin_config::<ToolAclSpec, ToolAclConfig>("tool_acl")
        else {
            return false;
        };
        // Task owners shared through Redis are sent on a tick (a2a.rs).
        let shares_owners = config
            .a2a
            .as_ref()
            .is_some_and(|a| a.isolation.redis.is_some());
        self.config = Some(Rc::new(config));
        self.metrics = Rc::new(Metrics::define());
        if shares_owners {
            if let Err(status) = gw_host::flow::set_tick_period(a2a::OUTBOX_TICK) {
                log::error!("tool_acl: cannot set the tick period: {status:?}");
            }
        }
        true
    }

    fn on_tick(&mut self) {
        if let Some(config) = &self.config {
            a2a::flush_outbox(config);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // No configuration means on_configure failed and Envoy refused the
        // filter; a context without one must still fail closed.
        Some(gw_host::profile::wrap(
            "tool_acl",
            Box::new(http::ToolAclHttp::new(
                self.config.clone(),
                self.metrics.clone(),
            )),
        ))
    }
}
