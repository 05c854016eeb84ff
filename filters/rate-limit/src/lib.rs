//! proxy-wasm adapter for the rate-limit filter. Placeholder until the filter's
//! policy lands: it loads (an empty) configuration and counts requests, so the
//! end-to-end harness can prove the module is in Envoy's filter chain.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel, MetricType};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RateLimitConfigSpec {}

struct RateLimitConfig;

impl TryFrom<RateLimitConfigSpec> for RateLimitConfig {
    type Error = gw_core::config::ConfigError;
    fn try_from(_: RateLimitConfigSpec) -> Result<Self, Self::Error> {
        Ok(RateLimitConfig)
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(RateLimitRoot { requests_metric: None }));
}}

struct RateLimitRoot {
    requests_metric: Option<u32>,
}

impl Context for RateLimitRoot {}

impl RootContext for RateLimitRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        if gw_host::config::load_plugin_config::<RateLimitConfigSpec, RateLimitConfig>("rate_limit")
            .is_none()
        {
            return false;
        }
        self.requests_metric =
            proxy_wasm::hostcalls::define_metric(MetricType::Counter, "gw.rate_limit.requests")
                .ok();
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RateLimitHttp {
            requests_metric: self.requests_metric,
        }))
    }
}

struct RateLimitHttp {
    requests_metric: Option<u32>,
}

impl Context for RateLimitHttp {}

impl HttpContext for RateLimitHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> proxy_wasm::types::Action {
        if let Some(metric) = self.requests_metric {
            let _ = proxy_wasm::hostcalls::increment_metric(metric, 1);
        }
        proxy_wasm::types::Action::Continue
    }
}
