//! The host calls of one typical proxied `tools/call` through the shipped
//! one-module chain, in order, as the trace the benchmark fixture replays
//! (`filters/noop`, scenario `replay-wasm` of scripts/bench_chain.py).
//!
//! Why: to tell what Envoy spends running our filter (VM entries, body
//! buffering, the host calls themselves) from what our own Wasm code costs,
//! a module with no policy makes exactly these calls in Envoy (issue 13).
//! The trace is committed (`filters/noop/traces/tools_call.trace`); this
//! test fails when the chain's host calls change, and rewrites the file
//! with `GW_WRITE_TRACE=1`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use gw_host::memory::MemoryHost;
use gw_host::port::Host;
use proxy_wasm::types::{Action, BufferType, Bytes, MapType, MetricType, Status};
use std::time::{Duration, SystemTime};

mod shipped;
use shipped::{load_request, shipped_configuration, BODY, RESULT};
const TRACE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../noop/traces/tools_call.trace"
);

/// The host, writing one trace line per call (format: filters/noop/src/lib.rs).
struct Recorder<'a> {
    host: &'a mut MemoryHost,
    lines: Vec<String>,
    /// The body size of the callback being recorded: a read of exactly
    /// that many bytes is written `$size` so that the replay reads what
    /// Envoy buffered, whatever the request.
    body_size: usize,
}

impl Recorder<'_> {
    fn line(&mut self, line: String) {
        self.lines.push(line);
    }
    fn metric_name(&self, id: u32) -> String {
        self.host.metrics[id as usize - 1].name.clone()
    }
    fn size(&self, n: usize) -> String {
        if n == self.body_size {
            "$size".to_string()
        } else {
            n.to_string()
        }
    }
}

fn word(s: &str) -> &str {
    assert!(
        !s.is_empty() && !s.contains(char::is_whitespace),
        "trace words have no spaces: {s:?}"
    );
    s
}

impl Host for Recorder<'_> {
    fn header_pairs(&mut self, map: MapType) -> Result<Vec<(Bytes, Bytes)>, Status> {
        self.line(format!("header_pairs {}", map as u32));
        self.host.header_pairs(map)
    }
    fn header_value(&mut self, map: MapType, name: &str) -> Result<Option<Bytes>, Status> {
        self.line(format!("header_value {} {}", map as u32, word(name)));
        self.host.header_value(map, name)
    }
    fn set_header(&mut self, map: MapType, name: &str, value: Option<&str>) -> Result<(), Status> {
        let len = value.map_or("-".to_string(), |v| v.len().to_string());
        self.line(format!("set_header {} {} {len}", map as u32, word(name)));
        self.host.set_header(map, name, value)
    }
    fn add_header(&mut self, map: MapType, name: &str, value: &str) -> Result<(), Status> {
        self.line(format!(
            "add_header {} {} {}",
            map as u32,
            word(name),
            value.len()
        ));
        self.host.add_header(map, name, value)
    }
    fn buffer_len(&mut self, buffer: BufferType) -> Result<usize, Status> {
        self.line(format!("buffer_len {}", buffer as u32));
        self.host.buffer_len(buffer)
    }
    fn buffer(
        &mut self,
        buffer: BufferType,
        start: usize,
        max: usize,
    ) -> Result<Option<Bytes>, Status> {
        let max_s = self.size(max);
        self.line(format!("buffer {} {start} {max_s}", buffer as u32));
        self.host.buffer(buffer, start, max)
    }
    fn set_buffer(
        &mut self,
        buffer: BufferType,
        start: usize,
        size: usize,
        value: &[u8],
    ) -> Result<(), Status> {
        panic!(
            "a typical tools/call rewrites no body ({buffer:?} {start} {size} {})",
            value.len()
        )
    }
    fn property(&mut self, path: &[&str]) -> Result<Option<Bytes>, Status> {
        let p: Vec<&str> = path.iter().map(|s| word(s)).collect();
        self.line(format!("property {}", p.join("/")));
        self.host.property(path)
    }
    fn set_property(&mut self, path: &[&str], value: Option<&[u8]>) -> Result<(), Status> {
        let p: Vec<&str> = path.iter().map(|s| word(s)).collect();
        let len = value.map_or("-".to_string(), |v| v.len().to_string());
        self.line(format!("set_property {} {len}", p.join("/")));
        self.host.set_property(path, value)
    }
    fn shared_data(&mut self, key: &str) -> Result<(Option<Bytes>, Option<u32>), Status> {
        let got = self.host.shared_data(key)?;
        // the size read back is what the replay stores first (setup)
        let len = got.0.as_ref().map_or(0, Vec::len);
        self.line(format!("shared_data {} {len}", word(key)));
        Ok(got)
    }
    fn set_shared_data(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        cas: Option<u32>,
    ) -> Result<(), Status> {
        let len = value.map_or(0, <[u8]>::len);
        let cas_s = if cas.is_some() { "cas" } else { "-" };
        self.line(format!("set_shared_data {} {len} {cas_s}", word(key)));
        self.host.set_shared_data(key, value, cas)
    }
    fn register_queue(&mut self, name: &str) -> Result<u32, Status> {
        panic!("not per request: register_queue {name}")
    }
    fn resolve_queue(&mut self, vm_id: &str, name: &str) -> Result<Option<u32>, Status> {
        panic!("not per request: resolve_queue {vm_id} {name}")
    }
    fn enqueue(&mut self, queue: u32, value: &[u8]) -> Result<(), Status> {
        self.line(format!("enqueue {}", value.len()));
        self.host.enqueue(queue, value)
    }
    fn dequeue(&mut self, queue: u32) -> Result<Option<Bytes>, Status> {
        panic!("not per request: dequeue {queue}")
    }
    fn dispatch_http_call(
        &mut self,
        upstream: &str,
        _: &[(&str, &str)],
        _: Option<&[u8]>,
        _: Duration,
    ) -> Result<u32, Status> {
        panic!("a typical tools/call makes no callout ({upstream})")
    }
    fn send_reply(&mut self, status: u32, _: &[(&str, &str)], _: &[u8]) -> Result<(), Status> {
        panic!("a typical tools/call is proxied, not answered ({status})")
    }
    fn resume_request(&mut self) -> Result<(), Status> {
        panic!("a typical tools/call is never resumed")
    }
    fn set_tick_period(&mut self, period: Duration) -> Result<(), Status> {
        panic!("not per request: set_tick_period {period:?}")
    }
    fn now(&mut self) -> Result<SystemTime, Status> {
        self.line("now".to_string());
        self.host.now()
    }
    fn define_metric(&mut self, kind: MetricType, name: &str) -> Result<u32, Status> {
        // once per VM: the replay defines every metric it uses at start
        self.host.define_metric(kind, name)
    }
    fn increment_metric(&mut self, id: u32, offset: i64) -> Result<(), Status> {
        let name = self.metric_name(id);
        self.line(format!("increment_metric {} {offset}", word(&name)));
        self.host.increment_metric(id, offset)
    }
    fn record_metric(&mut self, id: u32, value: u64) -> Result<(), Status> {
        let name = self.metric_name(id);
        self.line(format!("record_metric {} {value}", word(&name)));
        self.host.record_metric(id, value)
    }
}

fn action(a: Action) -> &'static str {
    match a {
        Action::Continue => "continue",
        Action::Pause => "pause",
        _ => panic!("unexpected action {a:?}"),
    }
}

/// One request as Envoy delivers it for the benchmark (HTTP/1.1,
/// content-length): headers, the body, then the end of stream (the
/// body buffered so far: all of it for the request, which the chain
/// holds; nothing for the response, which it lets through chunk by
/// chunk); then log and done.
fn record(host: &mut MemoryHost, root: &dyn gw_host::filter::FilterRoot, id: u32) -> Vec<String> {
    load_request(host);
    let mut f = root.new_filter(id);
    let mut r = Recorder {
        host,
        lines: Vec::new(),
        body_size: 0,
    };
    macro_rules! on {
        ($name:literal, $size:expr, $call:expr) => {{
            r.body_size = $size;
            let at = r.lines.len();
            let a = $call;
            r.lines
                .insert(at, format!("on {} {} {}", $name, $size, action(a)));
        }};
    }
    on!("request_headers", 10, f.request_headers(&mut r, 10, false));
    on!(
        "request_body",
        BODY.len(),
        f.request_body(&mut r, BODY.len(), false)
    );
    on!(
        "request_body_end",
        BODY.len(),
        f.request_body(&mut r, BODY.len(), true)
    );
    r.host.set_headers(
        MapType::HttpResponseHeaders,
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("content-length", &RESULT.len().to_string()),
        ],
    );
    // what Envoy answers at log time (int64 little-endian, a string)
    r.host.properties.insert(
        vec!["response".into(), "code".into()],
        200u64.to_le_bytes().to_vec(),
    );
    r.host.properties.insert(
        vec!["response".into(), "code_details".into()],
        b"via_upstream".to_vec(),
    );
    on!("response_headers", 3, f.response_headers(&mut r, 3, false));
    r.host
        .set_body(BufferType::HttpResponseBody, RESULT.as_bytes());
    on!(
        "response_body",
        RESULT.len(),
        f.response_body(&mut r, RESULT.len(), false)
    );
    // the chain let the chunk go (Continue), so Envoy did not buffer it:
    // the end of stream comes with an empty body
    r.host.set_body(BufferType::HttpResponseBody, b"");
    on!("response_body_end", 0, f.response_body(&mut r, 0, true));
    on!("log", 0, {
        f.log(&mut r);
        Action::Continue
    });
    on!("done", 0, {
        f.done(&mut r);
        Action::Continue
    });
    r.lines
}

#[test]
fn the_replay_fixture_trace_is_the_chains_host_calls() {
    let mut host = MemoryHost::new();
    host.register_queue("gw_audit_events").unwrap();
    let mut root = gw_gateway::new_filter_root();
    assert!(root.configure(&mut host, shipped_configuration().as_bytes()));
    // the first request defines metric ids and creates the rate-limit slot
    record(&mut host, root.as_ref(), 2);
    let lines = record(&mut host, root.as_ref(), 3);
    // The audit event of that request, as the worker's outbox hands it to
    // the sender (one frame per batch): the replay with the sender
    // (replay-wasm+sender) sends the same bytes.
    root.done(&mut host);
    let mut event = String::new();
    while let Some(frame) = host.dequeue(1).unwrap() {
        let frame = String::from_utf8(frame).unwrap();
        event = frame.lines().last().unwrap().to_string();
    }
    assert!(
        event.starts_with('{') && event.contains("read_config"),
        "{event}"
    );
    let config = shipped_configuration();
    let batch: usize = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("batchSize:"))
        .expect("audit batchSize in the shipped configuration")
        .trim()
        .parse()
        .unwrap();
    let header =
        "# The host calls of one proxied tools/call through the shipped one-module chain\n\
                  # (envoy/gateway.yaml), recorded on the in-memory host by\n\
                  # filters/gateway/tests/host_call_trace.rs (GW_WRITE_TRACE=1 rewrites it).\n\
                  # Replayed by filters/noop (scripts/bench_chain.py replay-wasm).\n";
    let text = format!(
        "{header}{}\naudit_batch {batch} gw_gateway gw_audit_events\naudit_event {event}\n",
        lines.join("\n")
    );
    if std::env::var_os("GW_WRITE_TRACE").is_some() {
        std::fs::write(TRACE, &text).unwrap();
    }
    let committed = std::fs::read_to_string(TRACE).unwrap_or_default();
    assert_eq!(
        committed, text,
        "the chain's host calls changed: GW_WRITE_TRACE=1 cargo test -p gw-gateway --test host_call_trace"
    );
    let calls = lines.iter().filter(|l| !l.starts_with("on ")).count();
    // the count tests/on_memory_host.rs pins for the same request
    assert_eq!(calls, 30, "{lines:#?}");
}
