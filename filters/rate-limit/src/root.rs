//! Root: configuration, slot creation, background reclamation.

use crate::http::RateLimitHttp;
use crate::metrics::Metrics;
use gw_core::rate_limit::admission::SweepCursor;
use gw_core::rate_limit::config::{RateLimitConfig, RateLimitConfigSpec};
use gw_host::filter::{Filter, FilterRoot, Unconfigured};
use gw_host::port::Host;
use gw_rate_limit_store::SharedSlots;
use std::rc::Rc;
use std::time::Duration;

/// How often a VM sweeps its share of the table (`admission::SweepCursor`:
/// a full pass every minute).
const TICK: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct RateLimitRoot {
    config: Option<Rc<RateLimitConfig>>,
    metrics: Metrics,
    sweep: SweepCursor,
}

impl FilterRoot for RateLimitRoot {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    fn configure(&mut self, h: &mut dyn Host, configuration: &[u8]) -> bool {
        let Some(config) = gw_host::config::load::<RateLimitConfigSpec, RateLimitConfig>(
            "rate_limit",
            configuration,
        ) else {
            return false;
        };
        self.metrics = Metrics::define(h);
        if !config.limits.is_empty() {
            match SharedSlots::open(h, &config.local, self.metrics.slots()) {
                Ok(sweep) => self.sweep = sweep,
                Err(message) => {
                    log::error!("rate_limit: cannot create shared-data slots: {message}");
                    return false;
                }
            }
            if let Err(status) = h.set_tick_period(TICK) {
                log::warn!(
                    "rate_limit: no tick, expired windows are reclaimed only on writes: {status:?}"
                );
            }
        }
        log::info!(
            "rate_limit: {} limit(s), {} store",
            config.limits.len(),
            if config.redis.is_some() {
                "redis"
            } else {
                "local"
            }
        );
        self.config = Some(Rc::new(config));
        true
    }

    fn tick(&mut self, h: &mut dyn Host) {
        let Some(config) = &self.config else {
            return;
        };
        let reclaimed = SharedSlots::sweep(h, &mut self.sweep, &config.local, self.metrics.slots());
        self.metrics.reclaimed.add(h, reclaimed);
    }

    fn new_filter(&self, context_id: u32) -> Box<dyn Filter> {
        let Some(config) = self.config.clone() else {
            // Envoy refuses a plugin whose configuration failed; should a
            // request still come, it is refused.
            return Box::new(Unconfigured {
                filter: "rate_limit",
            });
        };
        Box::new(RateLimitHttp::new(config, self.metrics, context_id))
    }
}
