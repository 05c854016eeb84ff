//! Root context: owns the loaded configuration and the metrics.

use crate::http::IdentityHttp;
use crate::metrics::Metrics;
use gw_core::identity::budget::CalloutBudget;
use gw_core::identity::config::{IdentityConfig, IdentitySpec};
use gw_host::filter::{Filter, FilterRoot, Unconfigured};
use gw_host::port::Host;
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Default)]
pub struct IdentityRoot {
    config: Option<Rc<IdentityConfig>>,
    metrics: Metrics,
    /// This worker's callouts in flight, shared with every request context.
    budget: Option<Rc<RefCell<CalloutBudget>>>,
}

impl FilterRoot for IdentityRoot {
    fn name(&self) -> &'static str {
        "identity"
    }

    fn configure(&mut self, h: &mut dyn Host, configuration: &[u8]) -> bool {
        let Some(config) =
            gw_host::config::load::<IdentitySpec, IdentityConfig>("identity", configuration)
        else {
            return false;
        };
        // A new configuration starts a new count: requests still waiting
        // give their slots back to the budget they took them from.
        self.budget = Some(Rc::new(RefCell::new(CalloutBudget::new(
            config.max_callouts_in_flight,
        ))));
        self.config = Some(Rc::new(config));
        self.metrics = Metrics::define(h);
        true
    }

    fn new_filter(&self, _context_id: u32) -> Box<dyn Filter> {
        // Without a configuration Envoy has refused the plugin; should a
        // request still come, it is refused.
        match (self.config.clone(), self.budget.clone()) {
            (Some(config), Some(budget)) => {
                Box::new(IdentityHttp::new(config, self.metrics, budget))
            }
            _ => Box::new(Unconfigured { filter: "identity" }),
        }
    }
}
