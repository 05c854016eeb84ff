//! Root context: owns the loaded configuration and the metrics.

use crate::http::IdentityHttp;
use gw_core::identity::budget::CalloutBudget;
use gw_core::identity::config::{IdentityConfig, IdentitySpec};
use gw_host::abi;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, MetricType};
use std::cell::RefCell;
use std::rc::Rc;

/// Counter ids (`wasmcustom.gw.identity.*` in Envoy's stats).
#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics {
    pub requests: Option<u32>,
    pub allowed: Option<u32>,
    pub denied: Option<u32>,
    pub unavailable: Option<u32>,
    pub callouts: Option<u32>,
    pub cache_hits: Option<u32>,
    /// Requests refused with 503 because `maxCalloutsInFlight` callouts
    /// were already in flight on this worker.
    pub callouts_rejected: Option<u32>,
}

impl Metrics {
    fn define() -> Self {
        let counter = |name: &str| abi::define_metric(MetricType::Counter, name).ok();
        Self {
            requests: counter("gw.identity.requests"),
            allowed: counter("gw.identity.allowed"),
            denied: counter("gw.identity.denied"),
            unavailable: counter("gw.identity.unavailable"),
            callouts: counter("gw.identity.callouts"),
            cache_hits: counter("gw.identity.cache_hits"),
            callouts_rejected: counter("gw.identity.callouts_rejected"),
        }
    }

    pub fn bump(metric: Option<u32>) {
        if let Some(id) = metric {
            let _ = abi::increment_metric(id, 1);
        }
    }
}

#[derive(Default)]
pub struct IdentityRoot {
    config: Option<Rc<IdentityConfig>>,
    metrics: Metrics,
    /// This worker's callouts in flight, shared with every request context.
    budget: Option<Rc<RefCell<CalloutBudget>>>,
}

impl Context for IdentityRoot {}

impl RootContext for IdentityRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        match gw_host::config::load_plugin_config::<IdentitySpec, IdentityConfig>("identity") {
            Some(config) => {
                // A new configuration starts a new count: requests still
                // waiting give their slots back to the budget they took
                // them from.
                self.budget = Some(Rc::new(RefCell::new(CalloutBudget::new(
                    config.max_callouts_in_flight,
                ))));
                self.config = Some(Rc::new(config));
                self.metrics = Metrics::define();
                true
            }
            None => false,
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Without a configuration Envoy has refused the plugin; should a
        // request still come, it is refused.
        let (Some(config), Some(budget)) = (self.config.clone(), self.budget.clone()) else {
            return Some(Box::new(gw_host::reply::Unconfigured {
                filter: "identity",
            }));
        };
        Some(gw_host::profile::wrap(
            "identity",
            Box::new(IdentityHttp::new(config, self.metrics, budget)),
        ))
    }
}
