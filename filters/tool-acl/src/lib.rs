//! proxy-wasm adapter for the tool-acl filter: per-agent tool access from
//! the request body, `tools/list` filtering and caching.
//!
//! The policy lives in `gw_core::tool_acl` (`authorize`, `config`,
//! `denial`, `request_guard`, `list_plan`, `tools_list`, `sse_rewrite`,
//! `legacy_sse`); this crate only moves bytes between Envoy and those
//! modules: `http` (the callbacks), `judge` (the request body's verdict),
//! `legacy` (the 2024-11-05 transport's denials). The answer side (list
//! answers filtered, their cache) is its own adapter crate, `gw_tool_lists`
//! (`filters/tool-lists`). Under `/a2a`, with an `a2a:` section, the A2A
//! stage: its own adapter crate, `gw_a2a_acl` (`filters/a2a-acl`).
//! See `docs/tool-acl.md` and `docs/a2a.md`.

mod http;
mod judge;
mod legacy;
mod metrics;

use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};
use gw_host::filter::{Filter, FilterRoot};
use gw_host::port::Host;
use metrics::Metrics;
use std::rc::Rc;

/// A fresh root of the filter (the module is `filters/wasm/tool-acl`).
pub fn new_root() -> Box<dyn FilterRoot> {
    Box::new(ToolAclRoot {
        config: None,
        metrics: Rc::new(Metrics::default()),
        outbox: gw_a2a_acl::Outbox::default(),
    })
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
