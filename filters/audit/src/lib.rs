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
//!   batches to the collector cluster with retries: its own adapter crate,
//!   `gw_audit_sender` (`filters/audit-sender`), run by this root.
//!
//! All policy (captures, events, batching, retries, OTLP) lives in
//! `gw_core`; this crate only adapts host calls.

mod http;
mod metrics;

use gw_core::audit::config::{AuditConfig, AuditConfigSpec, Role};
use gw_host::filter::{Filter, FilterRoot};
use gw_host::port::Host;
use std::rc::Rc;

pub use gw_core::audit::outbox::QUEUE_NAME;
/// vm_id of both roles when the host does not tell us.
pub const DEFAULT_VM_ID: &str = "gw_audit";

/// A fresh root of the filter or its sender, as configured (the module is
/// `filters/wasm/audit`).
pub fn new_root() -> Box<dyn FilterRoot> {
    Box::new(AuditRoot {
        role: RootRole::Unconfigured,
    })
}

enum RootRole {
    Unconfigured,
    Filter(Rc<http::FilterShared>),
    Sender(Box<gw_audit_sender::Sender>),
}

struct AuditRoot {
    role: RootRole,
}

impl FilterRoot for AuditRoot {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn configure(&mut self, h: &mut dyn Host, configuration: &[u8]) -> bool {
        let Some(config) =
            gw_host::config::load::<AuditConfigSpec, AuditConfig>("audit", configuration)
        else {
            return false;
        };
        match config.role {
            Role::Filter => {
                let shared = Rc::new(http::FilterShared::new(h, config));
                // The tick flushes this worker's outbox (events wait at most
                // this long before they reach the sender's queue).
                let hold = std::time::Duration::from_millis(shared.hold_ms());
                if let Err(status) = h.set_tick_period(hold) {
                    log::error!("audit: cannot set tick period: {status:?}");
                    return false;
                }
                if let RootRole::Filter(old) = &self.role {
                    old.flush(h);
                }
                self.role = RootRole::Filter(shared);
                true
            }
            Role::Sender => {
                // configure may run again on the same root: keep the
                // buffered events, take the new destination.
                match &mut self.role {
                    RootRole::Sender(sender) => sender.reconfigure(h, config.destination),
                    _ => match gw_audit_sender::Sender::start(h, config.destination) {
                        Some(sender) => self.role = RootRole::Sender(Box::new(sender)),
                        None => return false,
                    },
                }
                true
            }
        }
    }

    fn tick(&mut self, h: &mut dyn Host) {
        match &mut self.role {
            RootRole::Sender(sender) => sender.on_tick(h),
            RootRole::Filter(shared) => shared.flush(h),
            RootRole::Unconfigured => {}
        }
    }

    fn queue_ready(&mut self, h: &mut dyn Host, queue_id: u32) {
        if let RootRole::Sender(sender) = &mut self.role {
            sender.on_queue_ready(h, queue_id);
        }
    }

    fn call_response(&mut self, h: &mut dyn Host, token: u32, _: usize, _: usize, _: usize) {
        if let RootRole::Sender(sender) = &mut self.role {
            sender.on_http_call_response(h, token);
        }
    }

    fn done(&mut self, h: &mut dyn Host) {
        // The VM is stopping: hand over what this worker still holds.
        if let RootRole::Filter(shared) = &self.role {
            shared.flush(h);
        }
    }

    fn new_filter(&self, context_id: u32) -> Box<dyn Filter> {
        let shared = match &self.role {
            RootRole::Filter(shared) => Some(Rc::clone(shared)),
            _ => None,
        };
        Box::new(http::AuditHttp::new(context_id, shared))
    }
}
