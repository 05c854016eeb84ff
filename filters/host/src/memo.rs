//! The one-module chain's view of the host for one stage: a wrapper over
//! the host that remembers, for the next stages of the same request, what
//! the stages already read from or wrote to it, and that reports what the
//! stage did (replied, resumed, rewrote the body, asked for a tick) as a
//! value the chain reads after the call ([`Composed::effects`]).
//!
//! What is remembered ([`RequestMemo`], one per request): the request
//! headers, read once for all stages and kept up to date with their
//! changes, and the filter state a stage set, read back by the next without
//! a host round trip (each data-returning host call costs a few µs:
//! docs/benchmarks.md). Writes always go to the host too: Envoy, its access
//! log and anything after the chain see exactly what they would see
//! without the memo.
//!
//! Filter state the chain owns ([`RequestMemo::owning`]: keys that only
//! its own stages write, because every filter of ours that writes them is
//! one of its stages) is never read from the host: a key no stage set is
//! absent. The chain's root decides which keys those are.
//!
//! Metric increments are held in the memo and sent when the chain's
//! callback ends ([`RequestMemo::callback_ended`]), one host call per
//! metric however many stages added to it: the values Envoy shows are the
//! same once each callback returns. The host clock is read once per chain
//! callback too: its stages run within microseconds of each other, and
//! every stage then sees the same instant. So is a body: the stages that
//! read the request (or response) body in one chain callback get one copy
//! of it (forgotten when a stage rewrites it or the callback ends), and a
//! response header value (forgotten when a stage changes the response
//! headers, replies, or the callback ends).
//!
//! What means something else when composed: a stage that resumes the
//! request only lets the chain go on to the next stage (the chain resumes
//! Envoy when every stage has), and a stage root's tick request is the
//! chain root's to honour. Standalone filters get [`crate::port::Abi`]
//! itself and none of this.

use crate::port::Host;
use proxy_wasm::types::{BufferType, Bytes, MapType, MetricType, Status};
use std::time::{Duration, SystemTime};

/// What one request's stages read from or wrote to the host.
#[derive(Debug, Default)]
pub struct RequestMemo {
    /// The request headers as the stages have left them.
    request_headers: Option<Vec<(Bytes, Bytes)>>,
    /// Filter state set by a stage of this request (`wasm.<key>`).
    state: Vec<(String, Vec<u8>)>,
    /// Filter-state keys only this chain's stages write (module doc).
    owned: &'static [&'static str],
    /// Metric increments not yet sent: (metric id, sum).
    metrics: Vec<(u32, i64)>,
    /// The host clock as read in the current chain callback.
    now: Option<SystemTime>,
    /// A request or response body read in the current chain callback:
    /// (buffer, start, max, what the host returned).
    body: Option<(BufferType, usize, usize, Option<Bytes>)>,
    /// Response header values read in the current chain callback (name as
    /// asked, what the host returned), forgotten when a stage changes the
    /// response headers or the callback ends.
    response_headers: Vec<(String, Option<Bytes>)>,
}

impl RequestMemo {
    /// A memo for a chain whose stages are the only writers of `owned`.
    pub fn owning(owned: &'static [&'static str]) -> Self {
        Self {
            owned,
            ..Self::default()
        }
    }

    /// The chain's callback is over: send the metric increments held
    /// since the last one, and read the clock afresh next time.
    pub fn callback_ended(&mut self, host: &mut dyn Host) {
        self.now = None;
        self.body = None;
        self.response_headers.clear();
        for (id, offset) in self.metrics.drain(..) {
            let _ = host.increment_metric(id, offset);
        }
    }
}

/// What one call into a stage did, as far as the chain must know.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// The stage resumed the request it had paused.
    pub resumed: bool,
    /// The stage answered the request itself.
    pub replied: bool,
    /// The tick period the stage's root asked for.
    pub tick: Option<Duration>,
    /// The stage rewrote the body it was given: its size may have changed,
    /// and the next stage must be told the new one.
    pub body_changed: bool,
}

/// The host as one stage of the chain sees it (see the module doc).
pub struct Composed<'a> {
    host: &'a mut dyn Host,
    memo: &'a mut RequestMemo,
    effects: Effects,
}

impl<'a> Composed<'a> {
    pub fn new(host: &'a mut dyn Host, memo: &'a mut RequestMemo) -> Self {
        Self {
            host,
            memo,
            effects: Effects::default(),
        }
    }

    /// What the stage did through this host so far.
    pub fn effects(&self) -> Effects {
        self.effects
    }

    fn request_headers(&mut self) -> Result<&mut Vec<(Bytes, Bytes)>, Status> {
        if self.memo.request_headers.is_none() {
            let pairs = self.host.header_pairs(MapType::HttpRequestHeaders)?;
            self.memo.request_headers = Some(pairs);
        }
        self.memo
            .request_headers
            .as_mut()
            .ok_or(Status::InternalFailure)
    }

    /// A request header was replaced (`Some`), added to or removed (`None`).
    fn request_header_changed(&mut self, name: &str, value: Option<&str>, add: bool) {
        if let Some(headers) = self.memo.request_headers.as_mut() {
            if !add {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
            }
            if let Some(value) = value {
                headers.push((
                    name.to_ascii_lowercase().into_bytes(),
                    value.as_bytes().to_vec(),
                ));
            }
        }
    }
}

impl Host for Composed<'_> {
    fn header_pairs(&mut self, map: MapType) -> Result<Vec<(Bytes, Bytes)>, Status> {
        if map == MapType::HttpRequestHeaders {
            return self.request_headers().map(|h| h.clone());
        }
        self.host.header_pairs(map)
    }
    fn header_text_pairs(&mut self, map: MapType) -> Result<Vec<(String, String)>, Status> {
        if map == MapType::HttpRequestHeaders {
            // from the kept copy, one conversion (no clone of it first)
            return self.request_headers().map(|headers| {
                headers
                    .iter()
                    .map(|(n, v)| (crate::port::lossy(n), crate::port::lossy(v)))
                    .collect()
            });
        }
        self.host.header_text_pairs(map)
    }
    fn header_value(&mut self, map: MapType, name: &str) -> Result<Option<Bytes>, Status> {
        if map == MapType::HttpRequestHeaders {
            return self.request_headers().map(|headers| {
                headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                    .map(|(_, v)| v.clone())
            });
        }
        if map == MapType::HttpResponseHeaders {
            // several stages ask for the same one (content-type: the tool
            // ACL's response plan, audit's captures) in one callback
            let memo = &self.memo.response_headers;
            if let Some((_, value)) = memo.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Ok(value.clone());
            }
            let value = self.host.header_value(map, name)?;
            self.memo
                .response_headers
                .push((name.to_string(), value.clone()));
            return Ok(value);
        }
        self.host.header_value(map, name)
    }
    fn set_header(&mut self, map: MapType, name: &str, value: Option<&str>) -> Result<(), Status> {
        match map {
            MapType::HttpRequestHeaders => self.request_header_changed(name, value, false),
            MapType::HttpResponseHeaders => self.memo.response_headers.clear(),
            _ => {}
        }
        self.host.set_header(map, name, value)
    }
    fn add_header(&mut self, map: MapType, name: &str, value: &str) -> Result<(), Status> {
        match map {
            MapType::HttpRequestHeaders => self.request_header_changed(name, Some(value), true),
            MapType::HttpResponseHeaders => self.memo.response_headers.clear(),
            _ => {}
        }
        self.host.add_header(map, name, value)
    }
    fn buffer_len(&mut self, buffer: BufferType) -> Result<usize, Status> {
        self.host.buffer_len(buffer)
    }
    fn buffer(
        &mut self,
        buffer: BufferType,
        start: usize,
        max: usize,
    ) -> Result<Option<Bytes>, Status> {
        if !matches!(
            buffer,
            BufferType::HttpRequestBody | BufferType::HttpResponseBody
        ) {
            return self.host.buffer(buffer, start, max);
        }
        if let Some((b, s, m, bytes)) = &self.memo.body {
            if (*b, *s, *m) == (buffer, start, max) {
                return Ok(bytes.clone());
            }
        }
        let bytes = self.host.buffer(buffer, start, max)?;
        self.memo.body = Some((buffer, start, max, bytes.clone()));
        Ok(bytes)
    }
    fn set_buffer(
        &mut self,
        buffer: BufferType,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), Status> {
        if matches!(&self.memo.body, Some((b, ..)) if *b == buffer) {
            self.memo.body = None;
        }
        self.host.set_buffer(buffer, start, size, value)?;
        if matches!(
            buffer,
            BufferType::HttpRequestBody | BufferType::HttpResponseBody
        ) {
            self.effects.body_changed = true;
        }
        Ok(())
    }
    fn property(&mut self, path: &[&str]) -> Result<Option<Bytes>, Status> {
        if let ["filter_state", name] = path {
            if let Some(key) = name.strip_prefix("wasm.") {
                let kept = self.memo.state.iter().rev().find(|(k, _)| k == key);
                if let Some((_, value)) = kept {
                    return Ok(Some(value.clone()));
                }
                if self.memo.owned.contains(&key) {
                    return Ok(None);
                }
            }
        }
        self.host.property(path)
    }
    fn set_property(&mut self, path: &[&str], value: Option<&[u8]>) -> Result<(), Status> {
        if let [key] = path {
            self.memo.state.retain(|(k, _)| k != key);
            self.memo
                .state
                .push((key.to_string(), value.unwrap_or(&[]).to_vec()));
        }
        self.host.set_property(path, value)
    }
    fn shared_data(&mut self, key: &str) -> Result<(Option<Bytes>, Option<u32>), Status> {
        self.host.shared_data(key)
    }
    fn set_shared_data(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        cas: Option<u32>,
    ) -> Result<(), Status> {
        self.host.set_shared_data(key, value, cas)
    }
    fn register_queue(&mut self, name: &str) -> Result<u32, Status> {
        self.host.register_queue(name)
    }
    fn resolve_queue(&mut self, vm_id: &str, name: &str) -> Result<Option<u32>, Status> {
        self.host.resolve_queue(vm_id, name)
    }
    fn enqueue(&mut self, queue: u32, value: &[u8]) -> Result<(), Status> {
        self.host.enqueue(queue, value)
    }
    fn dequeue(&mut self, queue: u32) -> Result<Option<Bytes>, Status> {
        self.host.dequeue(queue)
    }
    fn dispatch_http_call(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, Status> {
        self.host
            .dispatch_http_call(upstream, headers, body, timeout)
    }
    fn send_reply(
        &mut self,
        status: u32,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Status> {
        self.effects.replied = true;
        // the local reply's headers replace the response's
        self.memo.response_headers.clear();
        self.host.send_reply(status, headers, body)
    }
    fn resume_request(&mut self) -> Result<(), Status> {
        self.effects.resumed = true;
        Ok(())
    }
    fn set_tick_period(&mut self, period: Duration) -> Result<(), Status> {
        self.effects.tick = Some(period);
        Ok(())
    }
    fn now(&mut self) -> Result<SystemTime, Status> {
        if let Some(now) = self.memo.now {
            return Ok(now);
        }
        let now = self.host.now()?;
        self.memo.now = Some(now);
        Ok(now)
    }
    fn define_metric(&mut self, kind: MetricType, name: &str) -> Result<u32, Status> {
        self.host.define_metric(kind, name)
    }
    fn increment_metric(&mut self, id: u32, offset: i64) -> Result<(), Status> {
        match self.memo.metrics.iter_mut().find(|(held, _)| *held == id) {
            Some((_, sum)) => *sum = sum.saturating_add(offset),
            None => self.memo.metrics.push((id, offset)),
        }
        Ok(())
    }
    fn record_metric(&mut self, id: u32, value: u64) -> Result<(), Status> {
        self.host.record_metric(id, value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::memory::MemoryHost;

    #[test]
    fn headers_are_read_once_and_follow_changes() {
        let mut host = MemoryHost::new();
        host.set_headers(MapType::HttpRequestHeaders, &[(":path", "/mcp")]);
        let mut memo = RequestMemo::default();
        {
            let mut h = Composed::new(&mut host, &mut memo);
            assert_eq!(crate::headers::request_headers(&mut h).len(), 1);
            assert_eq!(
                crate::state::request_header(&mut h, ":path").as_deref(),
                Some("/mcp")
            );
            crate::state::set_request_header(&mut h, "X-Verified-Agent-Id", Some("a-1"));
            crate::headers::remove_request_header(&mut h, ":path");
        }
        {
            let mut h = Composed::new(&mut host, &mut memo);
            let headers = crate::headers::request_headers(&mut h);
            assert_eq!(headers, [("x-verified-agent-id".into(), "a-1".into())]);
        }
        assert_eq!(host.calls().get("header_pairs"), Some(&1));
        assert_eq!(host.calls().get("header_value"), None);
        // the host saw the writes
        assert_eq!(
            host.header(MapType::HttpRequestHeaders, "x-verified-agent-id"),
            Some("a-1")
        );
    }

    #[test]
    fn state_set_by_a_stage_is_read_back_without_the_host() {
        let mut host = MemoryHost::new();
        let mut memo = RequestMemo::default();
        crate::state::set(&mut Composed::new(&mut host, &mut memo), "gw_x", "{}");
        host.reset_calls();
        let mut h = Composed::new(&mut host, &mut memo);
        assert_eq!(
            crate::state::get(&mut h, "gw_x").as_deref(),
            Some(&b"{}"[..])
        );
        assert_eq!(crate::state::get(&mut h, "other"), None);

        // only the unknown key went to the host
        assert_eq!(host.total_calls(), 1);
    }

    #[test]
    fn owned_state_is_never_read_from_the_host() {
        let mut host = MemoryHost::new();
        // written before the chain: not seen for an owned key
        host.set_property(&["gw_x"], Some(b"outside")).unwrap();
        host.set_property(&["gw_y"], Some(b"outside")).unwrap();
        host.reset_calls();
        let mut memo = RequestMemo::owning(&["gw_x"]);
        let mut h = Composed::new(&mut host, &mut memo);
        assert_eq!(crate::state::get(&mut h, "gw_x"), None);
        assert_eq!(
            crate::state::get(&mut h, "gw_y").as_deref(),
            Some(&b"outside"[..])
        );
        crate::state::set(&mut h, "gw_x", "mine");
        assert_eq!(
            crate::state::get(&mut h, "gw_x").as_deref(),
            Some(&b"mine"[..])
        );
        // only gw_y's read and gw_x's write went to the host
        assert_eq!(host.calls().get("property"), Some(&1));
        assert_eq!(host.calls().get("set_property"), Some(&1));
        assert_eq!(host.filter_state("gw_x"), Some(&b"mine"[..]));
    }

    #[test]
    fn metric_increments_are_summed_until_flushed() {
        let mut host = MemoryHost::new();
        let a = host.define_metric(MetricType::Counter, "a").unwrap();
        let b = host.define_metric(MetricType::Counter, "b").unwrap();
        host.reset_calls();
        let mut memo = RequestMemo::default();
        for _ in 0..2 {
            let mut h = Composed::new(&mut host, &mut memo);
            h.increment_metric(a, 1).unwrap();
            h.increment_metric(b, 3).unwrap();
        }
        assert_eq!((host.metric("a"), host.total_calls()), (0, 0));
        memo.callback_ended(&mut host);
        assert_eq!((host.metric("a"), host.metric("b")), (2, 6));
        assert_eq!(host.calls().get("increment_metric"), Some(&2));
        // nothing held twice
        memo.callback_ended(&mut host);
        assert_eq!(host.metric("a"), 2);
    }

    #[test]
    fn the_clock_is_read_once_per_chain_callback() {
        let mut host = MemoryHost::new();
        let mut memo = RequestMemo::default();
        let first = Composed::new(&mut host, &mut memo).now().unwrap();
        host.clock += Duration::from_millis(5);
        assert_eq!(Composed::new(&mut host, &mut memo).now().unwrap(), first);
        assert_eq!(host.calls().get("now"), Some(&1));
        memo.callback_ended(&mut host);
        let later = Composed::new(&mut host, &mut memo).now().unwrap();
        assert_eq!(later.duration_since(first).unwrap().as_millis(), 5);
    }

    #[test]
    fn a_body_is_read_once_per_chain_callback_until_rewritten() {
        let mut host = MemoryHost::new();
        host.set_body(BufferType::HttpRequestBody, b"hello");
        let mut memo = RequestMemo::default();
        let read = |host: &mut MemoryHost, memo: &mut RequestMemo| {
            Composed::new(host, memo)
                .buffer(BufferType::HttpRequestBody, 0, 5)
                .unwrap()
        };
        assert_eq!(read(&mut host, &mut memo).as_deref(), Some(&b"hello"[..]));
        assert_eq!(read(&mut host, &mut memo).as_deref(), Some(&b"hello"[..]));
        assert_eq!(host.calls().get("buffer"), Some(&1));
        // a stage's rewrite is what the next one reads
        Composed::new(&mut host, &mut memo)
            .set_buffer(BufferType::HttpRequestBody, 0, 5, b"HELLO")
            .unwrap();
        assert_eq!(read(&mut host, &mut memo).as_deref(), Some(&b"HELLO"[..]));
        // and a new callback reads the body as Envoy has it then
        memo.callback_ended(&mut host);
        host.set_body(BufferType::HttpRequestBody, b"hello world");
        assert_eq!(read(&mut host, &mut memo).as_deref(), Some(&b"hello"[..]));
        assert_eq!(host.calls().get("buffer"), Some(&3));
    }

    #[test]
    fn a_response_header_is_read_once_per_chain_callback_until_changed() {
        let mut host = MemoryHost::new();
        host.set_headers(
            MapType::HttpResponseHeaders,
            &[(":status", "200"), ("content-type", "application/json")],
        );
        let mut memo = RequestMemo::default();
        let read = |host: &mut MemoryHost, memo: &mut RequestMemo, name: &str| {
            Composed::new(host, memo)
                .header_value(MapType::HttpResponseHeaders, name)
                .unwrap()
        };
        let json = Some(b"application/json".to_vec());
        assert_eq!(read(&mut host, &mut memo, "content-type"), json);
        assert_eq!(read(&mut host, &mut memo, "Content-Type"), json);
        assert_eq!(read(&mut host, &mut memo, "content-encoding"), None);
        assert_eq!(read(&mut host, &mut memo, "content-encoding"), None);
        assert_eq!(host.calls().get("header_value"), Some(&2));
        // a stage's change is what the next one reads
        Composed::new(&mut host, &mut memo)
            .set_header(
                MapType::HttpResponseHeaders,
                "content-type",
                Some("text/plain"),
            )
            .unwrap();
        let plain = Some(b"text/plain".to_vec());
        assert_eq!(read(&mut host, &mut memo, "content-type"), plain);
        Composed::new(&mut host, &mut memo)
            .add_header(MapType::HttpResponseHeaders, "content-encoding", "gzip")
            .unwrap();
        let gzip = Some(b"gzip".to_vec());
        assert_eq!(read(&mut host, &mut memo, "content-encoding"), gzip);
        // and a new callback reads the headers as Envoy has them then
        memo.callback_ended(&mut host);
        host.set_headers(MapType::HttpResponseHeaders, &[("content-type", "x/y")]);
        let xy = Some(b"x/y".to_vec());
        assert_eq!(read(&mut host, &mut memo, "content-type"), xy);
        assert_eq!(host.calls().get("header_value"), Some(&5));
    }

    #[test]
    fn resumes_and_ticks_are_reported_not_sent() {
        let mut host = MemoryHost::new();
        let mut memo = RequestMemo::default();
        let mut h = Composed::new(&mut host, &mut memo);
        h.resume_request().unwrap();
        h.set_tick_period(Duration::from_secs(1)).unwrap();
        crate::reply::send(&mut h, 403, &[], b"no");
        let fx = h.effects();
        assert!(fx.resumed && fx.replied && !fx.body_changed);
        assert_eq!(fx.tick, Some(Duration::from_secs(1)));

        assert_eq!((host.resumed, host.tick, host.replies.len()), (0, None, 1));
    }
}
