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
//! body go. Every single-filter module hands out its filters wrapped
//! (`crate::filter::StandaloneRoot::filter`), and the one-module chain
//! wraps every stage.

use crate::filter::Filter;
use crate::port::Host;
use proxy_wasm::types::{Action, BufferType};

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
    fn trailers(&mut self, h: &mut dyn Host, buffer: BufferType) -> Option<usize> {
        if std::mem::replace(&mut self.ended, true) {
            return None;
        }
        // The length of the body Envoy holds for us right now.
        Some(h.buffer_len(buffer).unwrap_or(self.last_body_size))
    }
}

/// A filter for which trailers end the body (see the module doc).
pub struct EndAtTrailers<F> {
    inner: F,
    request: End,
    response: End,
}

impl<F> EndAtTrailers<F> {
    pub fn new(inner: F) -> Self {
        Self {
            inner,
            request: End::default(),
            response: End::default(),
        }
    }
}

impl<F: Filter> Filter for EndAtTrailers<F> {
    fn request_headers(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
        self.request.headers(eos);
        self.inner.request_headers(h, n, eos)
    }
    fn request_body(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
        self.request.body(n, eos);
        self.inner.request_body(h, n, eos)
    }
    fn request_trailers(&mut self, h: &mut dyn Host, n: usize) -> Action {
        if let Some(size) = self.request.trailers(h, BufferType::HttpRequestBody) {
            if self.inner.request_body(h, size, true) != Action::Continue {
                return Action::Pause;
            }
        }
        self.inner.request_trailers(h, n)
    }
    fn response_headers(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
        self.response.headers(eos);
        self.inner.response_headers(h, n, eos)
    }
    fn response_body(&mut self, h: &mut dyn Host, n: usize, eos: bool) -> Action {
        self.response.body(n, eos);
        self.inner.response_body(h, n, eos)
    }
    fn response_trailers(&mut self, h: &mut dyn Host, n: usize) -> Action {
        if let Some(size) = self.response.trailers(h, BufferType::HttpResponseBody) {
            if self.inner.response_body(h, size, true) != Action::Continue {
                return Action::Pause;
            }
        }
        self.inner.response_trailers(h, n)
    }
    fn call_response(&mut self, h: &mut dyn Host, token: u32, hd: usize, b: usize, t: usize) {
        self.inner.call_response(h, token, hd, b, t);
    }
    fn log(&mut self, h: &mut dyn Host) {
        self.inner.log(h);
    }
    fn done(&mut self, h: &mut dyn Host) {
        self.inner.done(h);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::memory::MemoryHost;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Records calls; holds the request body until its end, like the tool
    /// ACL, and keeps the SDK's default Continue for trailers.
    struct Holder(Rc<RefCell<Vec<String>>>);

    fn until_end(eos: bool) -> Action {
        if eos {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    impl Filter for Holder {
        fn request_headers(&mut self, _: &mut dyn Host, _: usize, eos: bool) -> Action {
            self.0.borrow_mut().push(format!("headers eos={eos}"));
            until_end(eos)
        }
        fn request_body(&mut self, _: &mut dyn Host, n: usize, eos: bool) -> Action {
            self.0.borrow_mut().push(format!("body {n} eos={eos}"));
            until_end(eos)
        }
        fn request_trailers(&mut self, _: &mut dyn Host, n: usize) -> Action {
            self.0.borrow_mut().push(format!("trailers {n}"));
            Action::Continue
        }
        fn response_body(&mut self, _: &mut dyn Host, n: usize, eos: bool) -> Action {
            self.0
                .borrow_mut()
                .push(format!("response body {n} eos={eos}"));
            Action::Continue
        }
    }

    fn holder() -> (EndAtTrailers<Holder>, Rc<RefCell<Vec<String>>>) {
        let log = Rc::new(RefCell::new(Vec::new()));
        (EndAtTrailers::new(Holder(Rc::clone(&log))), log)
    }

    #[test]
    fn trailers_give_the_filter_the_whole_buffered_body_first() {
        let (mut s, log) = holder();
        let mut h = MemoryHost::new();
        h.set_body(BufferType::HttpRequestBody, &[b'x'; 64]);
        assert_eq!(s.request_headers(&mut h, 3, false), Action::Pause);
        assert_eq!(s.request_body(&mut h, 40, false), Action::Pause);
        assert_eq!(s.request_trailers(&mut h, 1), Action::Continue);
        assert_eq!(
            *log.borrow(),
            [
                "headers eos=false",
                "body 40 eos=false",
                "body 64 eos=true",
                "trailers 1"
            ]
        );
    }

    #[test]
    fn without_the_buffered_length_the_last_body_size_is_used() {
        let (mut s, log) = holder();
        let mut h = crate::port::Abi; // off wasm every host call fails
        s.request_headers(&mut h, 3, false);
        s.request_body(&mut h, 40, false);
        assert_eq!(s.request_trailers(&mut h, 1), Action::Continue);
        assert_eq!(log.borrow()[2], "body 40 eos=true");
    }

    #[test]
    fn trailers_without_any_data_end_an_empty_body() {
        let (mut s, log) = holder();
        let mut h = MemoryHost::new();
        s.request_headers(&mut h, 3, false);
        s.request_trailers(&mut h, 2);
        assert_eq!(
            *log.borrow(),
            ["headers eos=false", "body 0 eos=true", "trailers 2"]
        );
    }

    #[test]
    fn a_body_that_ended_is_not_given_twice() {
        let (mut s, log) = holder();
        let mut h = MemoryHost::new();
        s.request_headers(&mut h, 3, false);
        s.request_body(&mut h, 9, true);
        s.request_trailers(&mut h, 1);
        s.response_body(&mut h, 5, true);
        s.response_trailers(&mut h, 1);
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
        impl Filter for Refuser {
            fn request_headers(&mut self, _: &mut dyn Host, _: usize, _: bool) -> Action {
                Action::Pause
            }
            fn request_body(&mut self, _: &mut dyn Host, _: usize, _: bool) -> Action {
                Action::Pause // e.g. a local reply, or a callout pending
            }
        }
        let mut s = EndAtTrailers::new(Refuser);
        let mut h = MemoryHost::new();
        s.request_headers(&mut h, 1, false);
        assert_eq!(s.request_trailers(&mut h, 1), Action::Pause);
    }
}
