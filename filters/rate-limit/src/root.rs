//! Root context: configuration, slot creation, background reclamation.

use crate::http::RateLimitHttp;
use crate::local_store;
use crate::metrics::{Counter, Metrics};
use gw_core::rate_limit::config::{RateLimitConfig, RateLimitConfigSpec};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::rc::Rc;
use std::time::Duration;

/// How often a VM sweeps part of the table, and how long a full pass takes:
/// every slot is swept at least once per `SWEEP_PASS_TICKS` seconds by every
/// VM, so expired windows are reclaimed even for agents that never return.
const TICK: Duration = Duration::from_secs(1);
const SWEEP_PASS_TICKS: u32 = 60;

#[derive(Default)]
pub struct RateLimitRoot {
    config: Option<Rc<RateLimitConfig>>,
    metrics: Metrics,
    sweep_cursor: u32,
}

pub use gw_host::clock::now_ms;

impl Context for RateLimitRoot {}

impl RootContext for RateLimitRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = gw_host::config::load_plugin_config::<
            RateLimitConfigSpec,
            RateLimitConfig,
        >("rate_limit") else {
            return false;
        };
        self.metrics = Metrics::define();
        if !config.limits.is_empty() {
            match local_store::ensure_slots(&config.local) {
                Ok(created) if created > 0 => {
                    log::info!("rate_limit: created {created} shared-data slots")
                }
                Ok(_) => {}
                Err(status) => {
                    log::error!("rate_limit: cannot create shared-data slots: {status:?}");
                    return false;
                }
            }
            // Start each VM's sweep somewhere else so the VMs share the work.
            self.sweep_cursor = (now_ms() % u64::from(config.local.slots)) as u32;
            if let Err(status) = gw_host::flow::set_tick_period(TICK) {
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

    fn on_tick(&mut self) {
        let Some(config) = &self.config else {
            return;
        };
        let store = config.local;
        let batch = store.slots.div_ceil(SWEEP_PASS_TICKS);
        let reclaimed = local_store::sweep(&store, self.sweep_cursor, batch, now_ms());
        self.sweep_cursor = (self.sweep_cursor + batch) % store.slots.max(1);
        if reclaimed > 0 {
            self.metrics.add(Counter::Reclaimed, reclaimed);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let Some(config) = self.config.clone() else {
            // Envoy refuses a plugin whose configuration failed; should a
            // request still come, it is refused.
            return Some(Box::new(gw_host::reply::Unconfigured {
                filter: "rate_limit",
            }));
        };
        Some(gw_host::profile::wrap(
            "rate_limit",
            Box::new(RateLimitHttp::new(config, self.metrics, context_id)),
        ))
    }
}
