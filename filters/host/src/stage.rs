//! How a request (or response) ends, made one rule for every filter.
//!
//! A stream ends either with a body callback that has `end_of_stream`, or
//! with trailers (HTTP/2 trailers, HTTP/1.1 chunked trailers). In the second
//! case a body callback never says `end_of_stream`: Envoy calls
//! `on_http_*_trailers` next, and the SDK's default `Continue` there lets the
//! held headers and buffered body go on, unjudged. A filter that decides at
//! the end of the body would be skipped by anyone who adds one trailer.
//!
//! [`EndAtTrailers`] closes that path for every filter at once instead of
//! trusting each one to remember: when trailers arrive and its filter has
//! not yet seen the end of the body, it first gives the filter the whole
//! buffered body with `end_of_stream = true`, exactly as if the stream had
//! ended with data, and passes the trailers on only if the filter let that
//! body go. Every module's root hands out its contexts wrapped
//! ([`EndAtTrailersRoot`]), and the one-module chain wraps every stage.

use crate::abi;
use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::{Action, BufferType, ContextType};

/// What a driver (Envoy, or the one-module chain) needs of an HTTP filter:
/// every proxy-wasm HTTP context has it. A trait of our own so that the
/// chain's tests can script stages without the SDK's host calls.
pub trait Stage {
    fn request_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action;
    fn request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action;
    fn request_trailers(&mut self, num_trailers: usize) -> Action;
    fn response_headers(&mut self, num_headers: usize, end_of_stream: bool) -> Action;
    fn response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action;
    fn response_trailers(&mut self, num_trailers: usize) -> Action;
    fn call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize);
    fn log(&mut self);
    fn done(&mut self);
}

impl Stage for Box<dyn HttpContext> {
    fn request_headers(&mut self, n: usize, eos: bool) -> Action {
        self.on_http_request_headers(n, eos)
    }
    fn request_body(&mut self, n: usize, eos: bool) -> Action {
        self.on_http_request_body(n, eos)
    }
    fn request_trailers(&mut self, n: usize) -> Action {
        self.on_http_request_trailers(n)
    }
    fn response_headers(&mut self, n: usize, eos: bool) -> Action {
        self.on_http_response_headers(n, eos)
    }
    fn response_body(&mut self, n: usize, eos: bool) -> Action {
        self.on_http_response_body(n, eos)
    }
    fn response_trailers(&mut self, n: usize) -> Action {
        self.on_http_response_trailers(n)
    }
    fn call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        self.on_http_call_response(token, headers, body, trailers);
    }
    fn log(&mut self) {
        self.on_log();
    }
    fn done(&mut self) {
        self.on_done();
    }
}

/// Where one direction of the stream is, as far as its end goes.
#[derive(Debug, Default, Clone, Copy)]
struct End {
    /// The filter has been told the stream ended (headers or body with
    /// `end_of_stream`, or the body we gave it when trailers came).
    ended: bool,
    /// Size of the last body callback: the buffered body when the filter
    /// holds it (the fallback when the host cannot say).
    last_body_size: usize,
}

impl End {
    fn headers(&mut self, end_of_stream: bool) {
        self.ended |= end_of_stream;
    }

    fn body(&mut self, size: usize, end_of_stream: bool) {
        self.last_body_size = size;
        self.ended |= end_of_stream;
    }

    /// Trailers arrived: the size of the body to give the filter first
    /// with `end_of_stream`, or `None` when it has seen the end already.
    fn trailers(&mut self, buffer: BufferType) -> Option<usize> {
        if std::mem::replace(&mut self.ended, true) {
            return None;
        }
        Some(buffered_len(buffer).unwrap_or(self.last_body_size))
    }
}

/// Length of the body Envoy holds for us right now.
fn buffered_len(buffer: BufferType) -> Option<usize> {
    abi::get_buffer_status(buffer).ok()
}

/// A filter for which trailers end the body (see the module doc).
pub struct EndAtTrailers<S> {
    inner: S,
    request: End,
    response: End,
}

impl<S> EndAtTrailers<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            request: End::default(),
            response: End::default(),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Stage> Stage for EndAtTrailers<S> {
    fn request_headers(&mut self, n: usize, eos: bool) -> Action {
        self.request.headers(eos);
        self.inner.request_headers(n, eos)
    }
    fn request_body(&mut self, n: usize, eos: bool) -> Action {
        self.request.body(n, eos);
        self.inner.request_body(n, eos)
    }
    fn request_trailers(&mut self, n: usize) -> Action {
        if let Some(size) = self.request.trailers(BufferType::HttpRequestBody) {
            if self.inner.request_body(size, true) != Action::Continue {
                return Action::Pause;
            }
        }
        self.inner.request_trailers(n)
    }
    fn response_headers(&mut self, n: usize, eos: bool) -> Action {
        self.response.headers(eos);
        self.inner.response_headers(n, eos)
    }
    fn response_body(&mut self, n: usize, eos: bool) -> Action {
        self.response.body(n, eos);
        self.inner.response_body(n, eos)
    }
    fn response_trailers(&mut self, n: usize) -> Action {
        if let Some(size) = self.response.trailers(BufferType::HttpResponseBody) {
            if self.inner.response_body(size, true) != Action::Continue {
                return Action::Pause;
            }
        }
        self.inner.response_trailers(n)
    }
    fn call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        self.inner.call_response(token, headers, body, trailers);
    }
    fn log(&mut self) {
        self.inner.log();
    }
    fn done(&mut self) {
        self.inner.done();
    }
}

impl<S: Stage> Context for EndAtTrailers<S> {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        self.call_response(token, headers, body, trailers);
    }

    fn on_done(&mut self) -> bool {
        self.done();
        true
    }
}

impl<S: Stage> HttpContext for EndAtTrailers<S> {
    fn on_http_request_headers(&mut self, n: usize, eos: bool) -> Action {
        self.request_headers(n, eos)
    }
    fn on_http_request_body(&mut self, n: usize, eos: bool) -> Action {
        self.request_body(n, eos)
    }
    fn on_http_request_trailers(&mut self, n: usize) -> Action {
        self.request_trailers(n)
    }
    fn on_http_response_headers(&mut self, n: usize, eos: bool) -> Action {
        self.response_headers(n, eos)
    }
    fn on_http_response_body(&mut self, n: usize, eos: bool) -> Action {
        self.response_body(n, eos)
    }
    fn on_http_response_trailers(&mut self, n: usize) -> Action {
        self.response_trailers(n)
    }
    fn on_log(&mut self) {
        self.log();
    }
}

/// A module's root whose HTTP contexts all end at trailers: what each
/// single-filter module (`filters/wasm/*`) installs around its filter's root.
pub struct EndAtTrailersRoot(pub Box<dyn RootContext>);

impl Context for EndAtTrailersRoot {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        self.0.on_http_call_response(token, headers, body, trailers);
    }

    fn on_done(&mut self) -> bool {
        self.0.on_done()
    }
}

impl RootContext for EndAtTrailersRoot {
    fn on_vm_start(&mut self, size: usize) -> bool {
        self.0.on_vm_start(size)
    }
    fn on_configure(&mut self, size: usize) -> bool {
        self.0.on_configure(size)
    }
    fn on_tick(&mut self) {
        self.0.on_tick();
    }
    fn on_queue_ready(&mut self, queue_id: u32) {
        self.0.on_queue_ready(queue_id);
    }
    fn on_log(&mut self) {
        self.0.on_log();
    }
    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let inner = self.0.create_http_context(context_id)?;
        Some(Box::new(EndAtTrailers::new(inner)))
    }
    fn create_stream_context(&self, context_id: u32) -> Option<Box<dyn StreamContext>> {
        self.0.create_stream_context(context_id)
    }
    fn get_type(&self) -> Option<ContextType> {
        self.0.get_type()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Records calls; holds the request body until its end, like the tool
    /// ACL, and keeps the SDK's default Continue for trailers.
    struct Holder(Rc<RefCell<Vec<String>>>);

    impl Stage for Holder {
        fn request_headers(&mut self, _: usize, eos: bool) -> Action {
            self.0.borrow_mut().push(format!("headers eos={eos}"));
            if eos {
                Action::Continue
            } else {
                Action::Pause
            }
        }
        fn request_body(&mut self, n: usize, eos: bool) -> Action {
            self.0.borrow_mut().push(format!("body {n} eos={eos}"));
            if eos {
                Action::Continue
            } else {
                Action::Pause
            }
        }
        fn request_trailers(&mut self, n: usize) -> Action {
            self.0.borrow_mut().push(format!("trailers {n}"));
            Action::Continue
        }
        fn response_headers(&mut self, _: usize, _: bool) -> Action {
            Action::Continue
        }
        fn response_body(&mut self, n: usize, eos: bool) -> Action {
            self.0
                .borrow_mut()
                .push(format!("response body {n} eos={eos}"));
            Action::Continue
        }
        fn response_trailers(&mut self, _: usize) -> Action {
            Action::Continue
        }
        fn call_response(&mut self, _: u32, _: usize, _: usize, _: usize) {}
        fn log(&mut self) {}
        fn done(&mut self) {}
    }

    fn holder() -> (EndAtTrailers<Holder>, Rc<RefCell<Vec<String>>>) {
        let log = Rc::new(RefCell::new(Vec::new()));
        (EndAtTrailers::new(Holder(Rc::clone(&log))), log)
    }

    #[test]
    fn trailers_give_the_filter_the_end_of_the_body_first() {
        let (mut s, log) = holder();
        assert_eq!(s.request_headers(3, false), Action::Pause);
        assert_eq!(s.request_body(40, false), Action::Pause);
        assert_eq!(s.request_trailers(1), Action::Continue);
        // off wasm the host cannot say how much it buffered: the last size
        assert_eq!(
            *log.borrow(),
            [
                "headers eos=false",
                "body 40 eos=false",
                "body 40 eos=true",
                "trailers 1"
            ]
        );
    }

    #[test]
    fn trailers_without_any_data_end_an_empty_body() {
        let (mut s, log) = holder();
        s.request_headers(3, false);
        s.request_trailers(2);
        assert_eq!(
            *log.borrow(),
            ["headers eos=false", "body 0 eos=true", "trailers 2"]
        );
    }

    #[test]
    fn a_body_that_ended_is_not_given_twice() {
        let (mut s, log) = holder();
        s.request_headers(3, false);
        s.request_body(9, true);
        s.request_trailers(1);
        s.response_body(5, true);
        s.response_trailers(1);
        assert_eq!(
            *log.borrow(),
            [
                "headers eos=false",
                "body 9 eos=true",
                "trailers 1",
                "response body 5 eos=true"
            ]
        );
    }

    #[test]
    fn a_filter_that_holds_the_ended_body_holds_the_trailers() {
        struct Refuser;
        impl Stage for Refuser {
            fn request_headers(&mut self, _: usize, _: bool) -> Action {
                Action::Pause
            }
            fn request_body(&mut self, _: usize, _: bool) -> Action {
                Action::Pause // e.g. a local reply, or a callout pending
            }
            fn request_trailers(&mut self, _: usize) -> Action {
                Action::Continue
            }
            fn response_headers(&mut self, _: usize, _: bool) -> Action {
                Action::Continue
            }
            fn response_body(&mut self, _: usize, _: bool) -> Action {
                Action::Continue
            }
            fn response_trailers(&mut self, _: usize) -> Action {
                Action::Continue
            }
            fn call_response(&mut self, _: u32, _: usize, _: usize, _: usize) {}
            fn log(&mut self) {}
            fn done(&mut self) {}
        }
        let mut s = EndAtTrailers::new(Refuser);
        s.request_headers(1, false);
        assert_eq!(s.request_trailers(1), Action::Pause);
    }
}
