//! What an adapter is, to whoever drives it: Envoy (through
//! [`StandaloneRoot`], a module of its own) or the one-module chain
//! (`filters/gateway`, which drives the same filters as stages).
//!
//! A [`Filter`] is a proxy-wasm HTTP context whose every callback is handed
//! the host it must use; a [`FilterRoot`] is a root context that makes
//! them. Neither knows who drives it: what a call did (continue or hold as
//! the returned `Action`; replied, resumed, rewrote the body as the host
//! saw it) goes back as values, never through global flags.

use crate::port::{Abi, Host};
use crate::stage::EndAtTrailers;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

/// One request's HTTP filter. The defaults are the SDK's.
pub trait Filter {
    fn request_headers(&mut self, _h: &mut dyn Host, _num_headers: usize, _eos: bool) -> Action {
        Action::Continue
    }
    fn request_body(&mut self, _h: &mut dyn Host, _body_size: usize, _eos: bool) -> Action {
        Action::Continue
    }
    fn request_trailers(&mut self, _h: &mut dyn Host, _num_trailers: usize) -> Action {
        Action::Continue
    }
    fn response_headers(&mut self, _h: &mut dyn Host, _num_headers: usize, _eos: bool) -> Action {
        Action::Continue
    }
    fn response_body(&mut self, _h: &mut dyn Host, _body_size: usize, _eos: bool) -> Action {
        Action::Continue
    }
    fn response_trailers(&mut self, _h: &mut dyn Host, _num_trailers: usize) -> Action {
        Action::Continue
    }
    /// The answer to a callout this filter dispatched (every filter of the
    /// request hears every answer: each checks its own token).
    fn call_response(
        &mut self,
        _h: &mut dyn Host,
        _token: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
    }
    /// The stream is over (Envoy's access-log time).
    fn log(&mut self, _h: &mut dyn Host) {}
    fn done(&mut self, _h: &mut dyn Host) {}
}

impl<F: Filter + ?Sized> Filter for Box<F> {
    fn request_headers(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
        (**self).request_headers(h, n, eos)
    }
    fn request_body(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
        (**self).request_body(h, n, eos)
    }
    fn request_trailers(&mut self, h: &mut dyn Host, n: usize) -> Action {
        (**self).request_trailers(h, n)
    }
    fn response_headers(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
        (**self).response_headers(h, n, eos)
    }
    fn response_body(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
        (**self).response_body(h, n, eos)
    }
    fn response_trailers(&mut self, h: &mut dyn Host, n: usize) -> Action {
        (**self).response_trailers(h, n)
    }
    fn call_response(&mut self, h: &mut dyn Host, token: u32, hd: usize, b: usize, t: usize) {
        (**self).call_response(h, token, hd, b, t);
    }
    fn log(&mut self, h: &mut dyn Host) {
        (**self).log(h);
    }
    fn done(&mut self, h: &mut dyn Host) {
        (**self).done(h);
    }
}

/// A filter's root: its configuration and what outlives one request.
pub trait FilterRoot {
    /// The filter's name in logs, metrics and profiles (`tool_acl`).
    fn name(&self) -> &'static str;
    /// Load `configuration` (the plugin's, or the chain's section for this
    /// filter); false refuses it. May run again on the same root.
    fn configure(&mut self, h: &mut dyn Host, configuration: &[u8]) -> bool;
    /// A request's filter. Never fails: without a configuration it must
    /// refuse requests ([`Unconfigured`]).
    fn new_filter(&self, context_id: u32) -> Box<dyn Filter>;
    fn tick(&mut self, _h: &mut dyn Host) {}
    fn queue_ready(&mut self, _h: &mut dyn Host, _queue_id: u32) {}
    fn call_response(
        &mut self,
        _h: &mut dyn Host,
        _token: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
    }
    /// The VM is stopping.
    fn done(&mut self, _h: &mut dyn Host) {}
}

/// The filter of a root without a configuration. Envoy refuses a plugin
/// whose configuration failed, so this should never see a request; if it
/// does, it fails closed with a 503 rather than returning no context at all
/// (the SDK's dispatcher panics on `None`, which kills the worker's VM).
pub struct Unconfigured {
    pub filter: &'static str,
}

impl Filter for Unconfigured {
    fn request_headers(&mut self, h: &mut dyn Host, _: usize, _: bool) -> Action {
        log::error!("{}: no configuration; refusing the request", self.filter);
        crate::reply::json_error(
            h,
            503,
            "gateway_misconfigured",
            &format!("the {} filter has no valid configuration", self.filter),
            &[],
        );
        Action::Pause
    }
}

/// A [`Filter`] as Envoy's HTTP context, on the real host.
pub struct Standalone<F: Filter>(pub F);

impl<F: Filter> Context for Standalone<F> {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        self.0
            .call_response(&mut Abi, token, headers, body, trailers);
    }

    fn on_done(&mut self) -> bool {
        self.0.done(&mut Abi);
        true
    }
}

impl<F: Filter> HttpContext for Standalone<F> {
    fn on_http_request_headers(&mut self, n: usize, eos: bool) -> Action {
        self.0.request_headers(&mut Abi, n, eos)
    }
    fn on_http_request_body(&mut self, n: usize, eos: bool) -> Action {
        self.0.request_body(&mut Abi, n, eos)
    }
    fn on_http_request_trailers(&mut self, n: usize) -> Action {
        self.0.request_trailers(&mut Abi, n)
    }
    fn on_http_response_headers(&mut self, n: usize, eos: bool) -> Action {
        self.0.response_headers(&mut Abi, n, eos)
    }
    fn on_http_response_body(&mut self, n: usize, eos: bool) -> Action {
        self.0.response_body(&mut Abi, n, eos)
    }
    fn on_http_response_trailers(&mut self, n: usize) -> Action {
        self.0.response_trailers(&mut Abi, n)
    }
    fn on_log(&mut self) {
        self.0.log(&mut Abi);
    }
}

/// A [`FilterRoot`] as Envoy's root context, on the real host: what each
/// module (`filters/wasm/*`) installs.
pub struct StandaloneRoot {
    root: Box<dyn FilterRoot>,
    /// Wrap every request's filter in [`EndAtTrailers`] (every single
    /// filter; the chain, which wraps each of its stages, does not need it).
    end_at_trailers: bool,
}

impl StandaloneRoot {
    /// A single filter's module: trailers end its body
    /// ([`crate::stage`]).
    pub fn filter(root: Box<dyn FilterRoot>) -> Self {
        Self {
            root,
            end_at_trailers: true,
        }
    }

    /// A root whose filter handles trailers itself (the chain).
    pub fn composite(root: Box<dyn FilterRoot>) -> Self {
        Self {
            root,
            end_at_trailers: false,
        }
    }
}

impl Context for StandaloneRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        self.root
            .call_response(&mut Abi, token, headers, body, trailers);
    }

    fn on_done(&mut self) -> bool {
        self.root.done(&mut Abi);
        true
    }
}

impl RootContext for StandaloneRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let name = self.root.name();
        match crate::config::plugin_configuration(&mut Abi) {
            Ok(bytes) => self.root.configure(&mut Abi, &bytes),
            Err(status) => {
                log::error!("{name}: cannot read plugin configuration: {status:?}");
                false
            }
        }
    }
    fn on_tick(&mut self) {
        self.root.tick(&mut Abi);
    }
    fn on_queue_ready(&mut self, queue_id: u32) {
        self.root.queue_ready(&mut Abi, queue_id);
    }
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let filter = crate::profile::wrap(self.root.name(), self.root.new_filter(context_id));
        Some(if self.end_at_trailers {
            Box::new(Standalone(EndAtTrailers::new(filter)))
        } else {
            Box::new(Standalone(filter))
        })
    }
}
