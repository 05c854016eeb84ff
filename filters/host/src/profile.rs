//! Opt-in self-timing of HTTP callbacks, for finding where a filter spends
//! its time (`just bench-profile`). Built only with the `profile` feature;
//! without it [`wrap`] returns the context unchanged and costs nothing.
//!
//! With it, every callback of a wrapped context adds its wall time inside
//! the VM (host calls included, the VM entry itself not) to the counter
//! `wasmcustom.gw.prof.<filter>.<callback>.ns` and one to `….calls`.

#[cfg(not(feature = "profile"))]
pub fn wrap(
    _filter: &'static str,
    inner: Box<dyn proxy_wasm::traits::HttpContext>,
) -> Box<dyn proxy_wasm::traits::HttpContext> {
    inner
}

/// Time `f` as `gw.prof.<name>` (a step inside a callback).
#[cfg(not(feature = "profile"))]
#[inline(always)]
pub fn span<T>(_name: &'static str, f: impl FnOnce() -> T) -> T {
    f()
}

#[cfg(feature = "profile")]
pub use timed::{span, wrap};

#[cfg(feature = "profile")]
mod timed {
    use crate::abi;
    use proxy_wasm::traits::{Context, HttpContext};
    use proxy_wasm::types::{Action, MetricType};
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::UNIX_EPOCH;

    thread_local! {
        static COUNTERS: RefCell<HashMap<String, (u32, u32)>> = RefCell::new(HashMap::new());
    }

    fn now_ns() -> u64 {
        abi::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
    }

    fn record(filter: &str, callback: &str, ns: u64) {
        let name = format!("gw.prof.{filter}.{callback}");
        let ids = COUNTERS.with(|c| {
            let mut map = c.borrow_mut();
            if let Some(ids) = map.get(&name) {
                return Some(*ids);
            }
            let ns_id = abi::define_metric(MetricType::Counter, &format!("{name}.ns")).ok()?;
            let calls_id =
                abi::define_metric(MetricType::Counter, &format!("{name}.calls")).ok()?;
            map.insert(name, (ns_id, calls_id));
            Some((ns_id, calls_id))
        });
        if let Some((ns_id, calls_id)) = ids {
            let _ = abi::increment_metric(ns_id, i64::try_from(ns).unwrap_or(0));
            let _ = abi::increment_metric(calls_id, 1);
        }
    }

    pub fn span<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
        let start = now_ns();
        let out = f();
        record("span", name, now_ns().saturating_sub(start));
        out
    }

    struct Timed {
        filter: &'static str,
        inner: Box<dyn HttpContext>,
    }

    impl Timed {
        fn time<T>(&mut self, callback: &str, f: impl FnOnce(&mut dyn HttpContext) -> T) -> T {
            let start = now_ns();
            let out = f(self.inner.as_mut());
            record(self.filter, callback, now_ns().saturating_sub(start));
            out
        }
    }

    pub fn wrap(filter: &'static str, inner: Box<dyn HttpContext>) -> Box<dyn HttpContext> {
        Box::new(Timed { filter, inner })
    }

    impl Context for Timed {
        fn on_http_call_response(&mut self, token: u32, h: usize, b: usize, t: usize) {
            self.time("call_response", |c| c.on_http_call_response(token, h, b, t));
        }
        fn on_done(&mut self) -> bool {
            self.time("done", |c| c.on_done())
        }
    }

    impl HttpContext for Timed {
        fn on_http_request_headers(&mut self, n: usize, eos: bool) -> Action {
            self.time("request_headers", |c| c.on_http_request_headers(n, eos))
        }
        fn on_http_request_body(&mut self, n: usize, eos: bool) -> Action {
            self.time("request_body", |c| c.on_http_request_body(n, eos))
        }
        fn on_http_request_trailers(&mut self, n: usize) -> Action {
            self.time("request_trailers", |c| c.on_http_request_trailers(n))
        }
        fn on_http_response_headers(&mut self, n: usize, eos: bool) -> Action {
            self.time("response_headers", |c| c.on_http_response_headers(n, eos))
        }
        fn on_http_response_body(&mut self, n: usize, eos: bool) -> Action {
            self.time("response_body", |c| c.on_http_response_body(n, eos))
        }
        fn on_http_response_trailers(&mut self, n: usize) -> Action {
            self.time("response_trailers", |c| c.on_http_response_trailers(n))
        }
        fn on_log(&mut self) {
            self.time("log", |c| c.on_log());
        }
    }
}
