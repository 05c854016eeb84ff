//! The root: each configured filter's own root, configured from its
//! section, sharing one tick.

use crate::chain::{run, Chain};
use gw_core::filter_state;
use gw_core::gateway::{self, Stage};
use gw_host::clock::now_ms;
use gw_host::filter::{Filter, FilterRoot, Unconfigured};
use gw_host::memo::RequestMemo;
use gw_host::port::Host;
use std::time::Duration;

/// One filter's root and its tick.
struct StageRoot {
    stage: Stage,
    root: Box<dyn FilterRoot>,
    /// The tick period the filter asked for, if any.
    tick: Option<Duration>,
    /// When its next tick is due (ms since the epoch).
    next_tick_ms: u64,
}

#[derive(Default)]
pub struct GatewayRoot {
    stages: Vec<StageRoot>,
}

fn new_stage_root(stage: Stage) -> Box<dyn FilterRoot> {
    match stage {
        Stage::Audit => gw_audit::new_root(),
        Stage::Identity => gw_identity::new_root(),
        Stage::ToolAcl => gw_tool_acl::new_root(),
        Stage::RateLimit => gw_rate_limit::new_root(),
    }
}

/// Call a stage's root as the chain shows the host to its stages (a tick
/// request comes back as a value, and the chain's root honours it).
fn run_root<T>(h: &mut dyn Host, f: impl FnOnce(&mut dyn Host) -> T) -> (T, Option<Duration>) {
    let mut memo = RequestMemo::default();
    let (out, effects) = run(h, &mut memo, f);
    memo.callback_ended(h);
    (out, effects.tick)
}

/// Filter state that only a chain of all four filters writes before its
/// stages read it. Not the decision: a filter after the chain that answers
/// the request may set it (docs/audit.md; tests/test_audit.py's stand-ins
/// do), and audit reads it at log time, after every filter has run.
const OWNED_BY_THE_FULL_CHAIN: &[&str] =
    &[filter_state::VERIFIED_IDENTITY, filter_state::REQUEST_FACTS];

impl GatewayRoot {
    /// The filter-state keys this chain's stages alone write, which its
    /// stages then never read from Envoy (`gw_host::memo`). With all four
    /// filters in the chain, every filter of ours that writes one of them
    /// (identity: the identity; audit, the tool ACL and the rate limit: the
    /// request facts) is a stage, so a key no stage set is absent and
    /// reading it would cost a host call to learn that (audit's first look
    /// for published facts; the identity of a request identity refused).
    /// With fewer stages a module before this one (or a test's
    /// `set_filter_state` stand-in for identity) may write them, and every
    /// key is read from Envoy as before.
    fn owned_state(&self) -> &'static [&'static str] {
        let all = Stage::CHAIN_ORDER
            .iter()
            .all(|stage| self.stages.iter().any(|s| s.stage == *stage));
        if all {
            OWNED_BY_THE_FULL_CHAIN
        } else {
            &[]
        }
    }
}

impl FilterRoot for GatewayRoot {
    fn name(&self) -> &'static str {
        "gateway"
    }

    fn configure(&mut self, h: &mut dyn Host, configuration: &[u8]) -> bool {
        let sections = match gateway::sections(configuration) {
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
            let (ok, tick) = run_root(h, |h| root.configure(h, &section));
            if !ok {
                log::error!("gateway: section `{}` refused", stage.key());
                return false;
            }
            stages.push(StageRoot {
                stage,
                root,
                // a root configured again keeps its tick unless it asks anew
                tick: tick.or(previous_tick),
                next_tick_ms: 0,
            });
        }
        self.stages = stages;
        if let Some(period) = self.stages.iter().filter_map(|s| s.tick).min() {
            if let Err(status) = h.set_tick_period(period) {
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

    fn tick(&mut self, h: &mut dyn Host) {
        let now = now_ms(h);
        for s in &mut self.stages {
            let Some(period) = s.tick else { continue };
            if now < s.next_tick_ms {
                continue;
            }
            s.next_tick_ms = now + u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
            run_root(h, |h| s.root.tick(h));
        }
    }

    fn queue_ready(&mut self, h: &mut dyn Host, queue_id: u32) {
        for s in &mut self.stages {
            run_root(h, |h| s.root.queue_ready(h, queue_id));
        }
    }

    fn call_response(&mut self, h: &mut dyn Host, token: u32, hd: usize, b: usize, t: usize) {
        // Only the audit sender calls out from its root; every root checks
        // its own tokens.
        for s in &mut self.stages {
            run_root(h, |h| s.root.call_response(h, token, hd, b, t));
        }
    }

    fn done(&mut self, h: &mut dyn Host) {
        for s in &mut self.stages {
            run_root(h, |h| s.root.done(h));
        }
    }

    fn new_filter(&self, context_id: u32) -> Box<dyn Filter> {
        // A stage without a configuration (never seen: Envoy refuses a
        // configuration that failed) refuses the request itself.
        let stages: Vec<Box<dyn Filter>> = self
            .stages
            .iter()
            .map(|s| gw_host::profile::wrap(s.root.name(), s.root.new_filter(context_id)))
            .collect();
        if stages.is_empty() {
            return Box::new(Unconfigured { filter: "gateway" });
        }
        Box::new(Chain::owning(stages, self.owned_state()))
    }
}
