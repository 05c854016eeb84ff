//! Root: configuration, slot creation, background reclamation.

use crate::http::RateLimitHttp;
use crate::metrics::Metrics;
use gw_core::rate_limit::admission::{self, SweepCursor};
use gw_core::rate_limit::config::{RateLimitConfig, RateLimitConfigSpec};
use gw_host::clock::now_ms;
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
            let mut slots = SharedSlots {
                host: &mut *h,
                counters: self.metrics.slots(),
            };
            match admission::ensure_slots(&mut slots, &config.local) {
                Ok(created) if created > 0 => {
                    log::info!("rate_limit: created {created} shared-data slots")
                }
                Ok(_) => {}
                Err(message) => {
                    log::error!("rate_limit: cannot create shared-data slots: {message}");
                    return false;
                }
            }
            self.sweep = SweepCursor::start(&config.local, now_ms(h));
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
        let now = now_ms(h);
        let mut slots = SharedSlots {
            host: &mut *h,
            counters: self.metrics.slots(),
        };
        let reclaimed = self.sweep.tick(&mut slots, &config.local, now);
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
