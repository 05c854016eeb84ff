//! The root context: each configured filter's own root, configured from its
//! section, sharing one tick.

use crate::chain::Chain;
use gw_core::gateway::{self, Stage};
use gw_host::abi;
use gw_host::clock::now_ms;
use gw_host::config::{plugin_configuration, with_configuration};
use gw_host::flow::Composed;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::time::Duration;

/// One filter's root and its tick.
struct StageRoot {
    stage: Stage,
    root: Box<dyn RootContext>,
    /// The tick period the filter asked for, if any.
    tick: Option<Duration>,
    /// When its next tick is due (ms since the epoch).
    next_tick_ms: u64,
}

#[derive(Default)]
pub struct GatewayRoot {
    stages: Vec<StageRoot>,
}

fn new_stage_root(stage: Stage) -> Box<dyn RootContext> {
    match stage {
        Stage::Audit => gw_audit::new_root(),
        Stage::Identity => gw_identity::new_root(),
        Stage::ToolAcl => gw_tool_acl::new_root(),
        Stage::RateLimit => gw_rate_limit::new_root(),
    }
}

impl Context for GatewayRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        // Only the audit sender calls out from its root; every root checks
        // its own tokens.
        for s in &mut self.stages {
            Composed::run(|| s.root.on_http_call_response(token, headers, body, trailers));
        }
    }

    fn on_done(&mut self) -> bool {
        for s in &mut self.stages {
            Composed::run(|| s.root.on_done());
        }
        true
    }
}

impl RootContext for GatewayRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match plugin_configuration() {
            Ok(bytes) => bytes,
            Err(status) => {
                log::error!("gateway: cannot read plugin configuration: {status:?}");
                return false;
            }
        };
        let sections = match gateway::sections(&bytes) {
            Ok(sections) => sections,
            Err(err) => {
                log::error!("gateway: {err}");
                return false;
            }
        };
        // Envoy may configure a root again: each filter's root is configured
        // again too (the audit sender keeps the events it holds), and only
        // a filter new to the configuration gets a fresh root.
        let mut previous = std::mem::take(&mut self.stages);
        let mut stages = Vec::with_capacity(sections.len());
        for (stage, section) in sections {
            let (mut root, previous_tick) = match previous.iter().position(|s| s.stage == stage) {
                Some(i) => {
                    let old = previous.swap_remove(i);
                    (old.root, old.tick)
                }
                None => (new_stage_root(stage), None),
            };
            let size = section.len();
            let (ok, effects) =
                Composed::run(|| with_configuration(section, || root.on_configure(size)));
            if !ok {
                log::error!("gateway: section `{}` refused", stage.key());
                return false;
            }
            stages.push(StageRoot {
                stage,
                root,
                // a root configured again keeps its tick unless it asks anew
                tick: effects.tick.or(previous_tick),
                next_tick_ms: 0,
            });
        }
        self.stages = stages;
        if let Some(period) = self.stages.iter().filter_map(|s| s.tick).min() {
            if let Err(status) = abi::set_tick_period(period) {
                log::error!("gateway: cannot set tick period: {status:?}");
                return false;
            }
        }
        log::info!(
            "gateway: stages {}",
            self.stages
                .iter()
                .map(|s| s.stage.key())
                .collect::<Vec<_>>()
                .join(" -> ")
        );
        true
    }

    fn on_tick(&mut self) {
        let now = now_ms();
        for s in &mut self.stages {
            let Some(period) = s.tick else { continue };
            if now < s.next_tick_ms {
                continue;
            }
            s.next_tick_ms = now + u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
            Composed::run(|| s.root.on_tick());
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        for s in &mut self.stages {
            Composed::run(|| s.root.on_queue_ready(queue_id));
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Never None: the SDK's dispatcher panics on it. A stage without a
        // context (never seen: Envoy refuses a configuration that failed)
        // is replaced by one that refuses the request.
        let mut contexts = Vec::with_capacity(self.stages.len().max(1));
        for s in &self.stages {
            let (context, _) = Composed::run(|| s.root.create_http_context(context_id));
            contexts.push(context.unwrap_or_else(|| {
                Box::new(gw_host::reply::Unconfigured {
                    filter: s.stage.key(),
                })
            }));
        }
        if contexts.is_empty() {
            contexts.push(Box::new(gw_host::reply::Unconfigured { filter: "gateway" }));
        }
        Some(Box::new(Chain::new(contexts)))
    }
}
