//! proxy-wasm adapter of the audit filter.
//!
//! One module, two roles, told apart by the plugin configuration:
//!
//! - `role: filter` (default), the HTTP filter, first in the chain: parses
//!   the request body once for everyone (bounded, never denies), captures
//!   the configured fields, watches the response (JSON or SSE) on its way to
//!   the client, and in `on_log`, which Envoy calls once for every stream,
//!   including local replies and resets, builds one event and adds it to
//!   the worker's outbox, which goes onto a shared queue as one frame when
//!   it holds a batch or on the worker's next tick (≤ 250 ms). See [`http`].
//! - `role: sender`, a singleton `bootstrap_extensions` Wasm service with
//!   the same `vm_id`: drains the queue into a bounded buffer and POSTs
//!   batches to the collector cluster with retries. See [`sender`].
//!
//! All policy (captures, events, batching, retries, OTLP) lives in
//! `gw_core`; this crate only adapts host calls.

mod http;
mod metrics;
mod sender;

use gw_core::audit::config::{AuditConfig, AuditConfigSpec, Role};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use std::rc::Rc;

/// Name of the shared queue between the HTTP filters and the sender.
pub const QUEUE_NAME: &str = "gw_audit_events";
/// vm_id of both roles when the host does not tell us.
pub const DEFAULT_VM_ID: &str = "gw_audit";

/// A fresh root context of the filter or its sender, as configured (the
/// module is `filters/wasm/audit`).
pub fn new_root() -> Box<dyn RootContext> {
    Box::new(AuditRoot {
        role: RootRole::Unconfigured,
    })
}

enum RootRole {
    Unconfigured,
    Filter(Rc<http::FilterShared>),
    Sender(Box<sender::Sender>),
}

struct AuditRoot {
    role: RootRole,
}

impl Context for AuditRoot {
    fn on_done(&mut self) -> bool {
        // The VM is stopping: hand over what this worker still holds.
        if let RootRole::Filter(shared) = &self.role {
            shared.flush();
        }
        true
    }

    fn on_http_call_response(&mut self, token_id: u32, _: usize, _: usize, _: usize) {
        if let RootRole::Sender(sender) = &mut self.role {
            sender.on_http_call_response(token_id);
        }
    }
}

impl RootContext for AuditRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) =
            gw_host::config::load_plugin_config::<AuditConfigSpec, AuditConfig>("audit")
        else {
            return false;
        };
        match config.role {
            Role::Filter => {
                let shared = Rc::new(http::FilterShared::new(config));
                // The tick flushes this worker's outbox (events wait at most
                // this long before they reach the sender's queue).
                let hold = std::time::Duration::from_millis(shared.hold_ms());
                if let Err(status) = gw_host::flow::set_tick_period(hold) {
                    log::error!("audit: cannot set tick period: {status:?}");
                    return false;
                }
                if let RootRole::Filter(old) = &self.role {
                    old.flush();
                }
                self.role = RootRole::Filter(shared);
                true
            }
            Role::Sender => {
                // on_configure may run again on the same root: keep the
                // buffered events, take the new destination.
                match &mut self.role {
                    RootRole::Sender(sender) => sender.reconfigure(config.destination),
                    _ => match sender::Sender::start(config.destination) {
                        Some(sender) => self.role = RootRole::Sender(Box::new(sender)),
                        None => return false,
                    },
                }
                true
            }
        }
    }

    fn on_tick(&mut self) {
        match &mut self.role {
            RootRole::Sender(sender) => sender.on_tick(),
            RootRole::Filter(shared) => shared.flush(),
            RootRole::Unconfigured => {}
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if let RootRole::Sender(sender) = &mut self.role {
            sender.on_queue_ready(queue_id);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = match &self.role {
            RootRole::Filter(shared) => Some(Rc::clone(shared)),
            _ => None,
        };
        Some(gw_host::profile::wrap(
            "audit",
            Box::new(http::AuditHttp::new(context_id, shared)),
        ))
    }
}

pub(crate) use gw_host::clock::now_ms;
