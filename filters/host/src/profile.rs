//! Opt-in self-timing of HTTP callbacks, for finding where a filter spends
//! its time (`just bench-profile`): a wrapper around a [`Filter`] that
//! times each callback through the host port, so business logic carries no
//! timing code. Built only with the `profile` feature; without it [`wrap`]
//! returns the filter unchanged and costs nothing.
//!
//! With it, every callback of a wrapped filter adds its wall time inside
//! the VM (host calls included, the VM entry itself not) to the counter
//! `wasmcustom.gw.prof.<filter>.<callback>.ns` and one to `….calls`. In the
//! one-module chain each stage is wrapped too (`gw.prof.<stage>.*`).

#[cfg(not(feature = "profile"))]
use crate::filter::Filter;

#[cfg(not(feature = "profile"))]
pub fn wrap(_filter: &'static str, inner: Box<dyn Filter>) -> Box<dyn Filter> {
    inner
}

#[cfg(feature = "profile")]
pub use timed::wrap;

#[cfg(feature = "profile")]
mod timed {
    use crate::filter::Filter;
    use crate::port::Host;
    use proxy_wasm::types::{Action, MetricType};
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::time::UNIX_EPOCH;

    thread_local! {
        /// Metric ids by name: a VM-wide cache of host-given ids.
        static COUNTERS: RefCell<HashMap<String, (u32, u32)>> = RefCell::new(HashMap::new());
    }

    fn now_ns(h: &mut dyn Host) -> u64 {
        h.now()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
    }

    fn record(h: &mut dyn Host, filter: &str, callback: &str, ns: u64) {
        let name = format!("gw.prof.{filter}.{callback}");
        let ids = COUNTERS.with(|c| {
            let mut map = c.borrow_mut();
            if let Some(ids) = map.get(&name) {
                return Some(*ids);
            }
            let ns_id = h
                .define_metric(MetricType::Counter, &format!("{name}.ns"))
                .ok()?;
            let calls_id = h
                .define_metric(MetricType::Counter, &format!("{name}.calls"))
                .ok()?;
            map.insert(name, (ns_id, calls_id));
            Some((ns_id, calls_id))
        });
        if let Some((ns_id, calls_id)) = ids {
            let _ = h.increment_metric(ns_id, i64::try_from(ns).unwrap_or(0));
            let _ = h.increment_metric(calls_id, 1);
        }
    }

    struct Timed {
        filter: &'static str,
        inner: Box<dyn Filter>,
    }

    impl Timed {
        fn time<T>(
            &mut self,
            h: &mut dyn Host,
            callback: &str,
            f: impl FnOnce(&mut dyn Filter, &mut dyn Host) -> T,
        ) -> T {
            let start = now_ns(h);
            let out = f(self.inner.as_mut(), h);
            let ns = now_ns(h).saturating_sub(start);
            record(h, self.filter, callback, ns);
            out
        }
    }

    pub fn wrap(filter: &'static str, inner: Box<dyn Filter>) -> Box<dyn Filter> {
        Box::new(Timed { filter, inner })
    }

    impl Filter for Timed {
        fn request_headers(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
            self.time(h, "request_headers", |c, h| c.request_headers(h, n, eos))
        }
        fn request_body(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
            self.time(h, "request_body", |c, h| c.request_body(h, n, eos))
        }
        fn request_trailers(&mut self, h: &mut dyn Host, n: usize) -> Action {
            self.time(h, "request_trailers", |c, h| c.request_trailers(h, n))
        }
        fn response_headers(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
            self.time(h, "response_headers", |c, h| c.response_headers(h, n, eos))
        }
        fn response_body(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
            self.time(h, "response_body", |c, h| c.response_body(h, n, eos))
        }
        fn response_trailers(&mut self, h: &mut dyn Host, n: usize) -> Action {
            self.time(h, "response_trailers", |c, h| c.response_trailers(h, n))
        }
        fn call_response(&mut self, h: &mut dyn Host, token: u32, hd: usize, b: usize, t: usize) {
            self.time(h, "call_response", |c, h| {
                c.call_response(h, token, hd, b, t)
            });
        }
        fn log(&mut self, h: &mut dyn Host) {
            self.time(h, "log", |c, h| c.log(h));
        }
        fn done(&mut self, h: &mut dyn Host) {
            self.time(h, "done", |c, h| c.done(h));
        }
    }
}
