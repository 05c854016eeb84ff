//! Benchmark fixture, never shipped: the floor of a Wasm filter, and the
//! host calls of our chain without its policy.
//!
//! `./dev bench-chain` runs it three ways (scripts/bench_chain.py):
//!
//! - no configuration (`noop-wasm`, `4x-noop-wasm`): every callback
//!   continues at once;
//! - `mode hold` + a trace (`hold-wasm`): the callbacks of our chain with
//!   its actions (the request held until its body has ended, so Envoy
//!   buffers it) and no host call;
//! - a trace (`replay-wasm`): the same, making the host calls the trace
//!   lists, in order, with the same names and sizes, through the same
//!   bindings as our filters (`gw_host::port::Abi`).
//!
//! So `hold - noop` is body buffering and the VM entries of a filter that
//! holds, `replay - hold` the host calls themselves, and `chain - replay`
//! our own Wasm code (docs/perf-notes.md "Round 3").
//!
//! The trace (`traces/tools_call.trace`) is written by
//! `filters/gateway/tests/host_call_trace.rs` from the shipped one-module
//! chain on the in-memory host. Format, one line each:
//!
//! ```text
//! on <callback> <body size> <continue|pause>   a callback and its action
//! header_pairs <map>                        read a whole header map
//! header_value <map> <name>                 read one header
//! set_header <map> <name> <len|->           set a header (len bytes), - removes
//! add_header <map> <name> <len>
//! buffer_len <buffer>
//! buffer <buffer> <start> <max|$size>       copy a body ($size: the callback's)
//! property <a/b/c>                          read a property
//! set_property <a/b> <len|->                write filter state
//! shared_data <key> <len>                   read (a first read stores len bytes)
//! set_shared_data <key> <len> <cas|->       write, with the last read's CAS
//! enqueue <len>                             to the queue `gw_trace_replay`
//! now
//! increment_metric <name> <offset>
//! record_metric <name> <value>
//! audit_batch <n> <vm_id> <queue>           after each log callback, add
//! audit_event <the event's JSON>            the event to a frame; every n
//!                                           events, enqueue it for the audit
//!                                           sender (as the audit stage does)
//! ```
//!
//! Maps and buffers are proxy-wasm's numbers (0 request headers, 2
//! response headers; 0 request body, 1 response body). Callbacks are
//! `request_headers`, `request_body` (a chunk before the end),
//! `request_body_end`, the same three for the response, `log` and `done`.
//! A trace that does not parse refuses the configuration.

use gw_host::port::{Abi, Host};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::new(NoopRoot::default()));
}}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Callback {
    RequestHeaders,
    RequestBody,
    RequestBodyEnd,
    ResponseHeaders,
    ResponseBody,
    ResponseBodyEnd,
    Log,
    Done,
}

impl Callback {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "request_headers" => Self::RequestHeaders,
            "request_body" => Self::RequestBody,
            "request_body_end" => Self::RequestBodyEnd,
            "response_headers" => Self::ResponseHeaders,
            "response_body" => Self::ResponseBody,
            "response_body_end" => Self::ResponseBodyEnd,
            "log" => Self::Log,
            "done" => Self::Done,
            _ => return None,
        })
    }
}

/// A body read's length: fixed, or whatever the callback was given.
#[derive(Debug, Clone, Copy)]
enum Len {
    Fixed(usize),
    CallbackSize,
}

#[derive(Debug, Clone)]
enum Op {
    HeaderPairs(MapType),
    HeaderValue(MapType, String),
    SetHeader(MapType, String, Option<String>),
    AddHeader(MapType, String, String),
    BufferLen(BufferType),
    Buffer(BufferType, usize, Len),
    Property(Vec<String>),
    SetProperty(Vec<String>, Option<Vec<u8>>),
    SharedData(String, usize),
    SetSharedData(String, Vec<u8>, bool),
    Enqueue(Vec<u8>),
    Now,
    Increment(String, i64),
    Record(String, u64),
}

#[derive(Debug, Default)]
struct Trace {
    /// false: `mode hold`, the actions without the calls.
    calls: bool,
    callbacks: HashMap<Callback, (Action, Vec<Op>)>,
    /// Events per frame, the sender's vm_id and queue.
    audit_batch: Option<(usize, String, String)>,
    audit_event: Option<String>,
}

fn map(s: &str) -> Option<MapType> {
    Some(match s {
        "0" => MapType::HttpRequestHeaders,
        "1" => MapType::HttpRequestTrailers,
        "2" => MapType::HttpResponseHeaders,
        "3" => MapType::HttpResponseTrailers,
        _ => return None,
    })
}

fn buffer(s: &str) -> Option<BufferType> {
    Some(match s {
        "0" => BufferType::HttpRequestBody,
        "1" => BufferType::HttpResponseBody,
        _ => return None,
    })
}

fn filler(len: &str) -> Option<Option<String>> {
    if len == "-" {
        return Some(None);
    }
    Some(Some("x".repeat(len.parse().ok()?)))
}

fn parse_op(words: &[&str]) -> Option<Op> {
    Some(match *words {
        ["header_pairs", m] => Op::HeaderPairs(map(m)?),
        ["header_value", m, name] => Op::HeaderValue(map(m)?, name.to_string()),
        ["set_header", m, name, len] => Op::SetHeader(map(m)?, name.to_string(), filler(len)?),
        ["add_header", m, name, len] => Op::AddHeader(map(m)?, name.to_string(), filler(len)??),
        ["buffer_len", b] => Op::BufferLen(buffer(b)?),
        ["buffer", b, start, max] => Op::Buffer(
            buffer(b)?,
            start.parse().ok()?,
            if max == "$size" {
                Len::CallbackSize
            } else {
                Len::Fixed(max.parse().ok()?)
            },
        ),
        ["property", path] => Op::Property(path.split('/').map(str::to_string).collect()),
        ["set_property", path, len] => Op::SetProperty(
            path.split('/').map(str::to_string).collect(),
            filler(len)?.map(String::into_bytes),
        ),
        ["shared_data", key, len] => Op::SharedData(key.to_string(), len.parse().ok()?),
        ["set_shared_data", key, len, cas] => {
            Op::SetSharedData(key.to_string(), filler(len)??.into_bytes(), cas == "cas")
        }
        ["enqueue", len] => Op::Enqueue(filler(len)??.into_bytes()),
        ["now"] => Op::Now,
        ["increment_metric", name, offset] => Op::Increment(name.to_string(), offset.parse().ok()?),
        ["record_metric", name, value] => Op::Record(name.to_string(), value.parse().ok()?),
        _ => return None,
    })
}

fn parse(text: &str) -> Result<Trace, String> {
    let mut trace = Trace {
        calls: true,
        ..Trace::default()
    };
    let mut current: Option<Callback> = None;
    for (n, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("trace line {}: {line:?}", n + 1);
        match words.as_slice() {
            [] => {}
            [first, ..] if first.starts_with('#') => {}
            ["mode", "hold"] => trace.calls = false,
            ["mode", "replay"] => trace.calls = true,
            ["audit_batch", n, vm_id, queue] => {
                let n = n.parse().map_err(|_| bad())?;
                trace.audit_batch = Some((n, vm_id.to_string(), queue.to_string()));
            }
            ["audit_event", ..] => {
                let event = line.trim_start().trim_start_matches("audit_event").trim();
                trace.audit_event = Some(event.to_string());
            }
            ["on", name, _size, action] => {
                let cb = Callback::parse(name).ok_or_else(bad)?;
                let action = match *action {
                    "continue" => Action::Continue,
                    "pause" => Action::Pause,
                    _ => return Err(bad()),
                };
                trace.callbacks.insert(cb, (action, Vec::new()));
                current = Some(cb);
            }
            _ => {
                let op = parse_op(&words).ok_or_else(bad)?;
                let ops = current
                    .and_then(|cb| trace.callbacks.get_mut(&cb))
                    .ok_or_else(bad)?;
                ops.1.push(op);
            }
        }
    }
    if trace.audit_batch.is_some() != trace.audit_event.is_some() {
        return Err("audit_batch and audit_event go together".to_string());
    }
    Ok(trace)
}

/// What a replay needs from the root: the trace and the host's ids.
#[derive(Debug, Default)]
struct Replay {
    trace: Trace,
    metrics: HashMap<String, u32>,
    queue: Option<u32>,
    /// The audit frame being filled (this worker's), its event count and
    /// the sender's queue once resolved.
    frame: RefCell<String>,
    events: Cell<usize>,
    audit_queue: Cell<Option<u32>>,
}

impl Replay {
    /// What the audit stage does with its event at log time.
    fn audit(&self, h: &mut dyn Host) {
        let (Some((batch, vm_id, queue)), Some(event)) =
            (&self.trace.audit_batch, &self.trace.audit_event)
        else {
            return;
        };
        let mut frame = self.frame.borrow_mut();
        if !frame.is_empty() {
            frame.push('\n');
        }
        frame.push_str(event);
        self.events.set(self.events.get() + 1);
        if self.events.get() < *batch {
            return;
        }
        self.events.set(0);
        let frame = std::mem::take(&mut *frame);
        if self.audit_queue.get().is_none() {
            self.audit_queue
                .set(h.resolve_queue(vm_id, queue).ok().flatten());
        }
        if let Some(id) = self.audit_queue.get() {
            let _ = h.enqueue(id, frame.as_bytes());
        }
    }
}

#[derive(Default)]
struct NoopRoot {
    replay: Option<Rc<Replay>>,
}

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn on_configure(&mut self, _: usize) -> bool {
        let h = &mut Abi;
        let text = match h.buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
            _ => {
                self.replay = None;
                return true;
            }
        };
        let trace = match parse(&text) {
            Ok(t) => t,
            Err(e) => {
                log::error!("gw_noop: {e}");
                return false;
            }
        };
        let mut replay = Replay {
            trace,
            ..Replay::default()
        };
        for (_, ops) in replay.trace.callbacks.values() {
            for op in ops {
                match op {
                    Op::Increment(name, _) | Op::Record(name, _) => {
                        let kind = if matches!(op, Op::Increment(..)) {
                            MetricType::Counter
                        } else {
                            MetricType::Gauge
                        };
                        if let Ok(id) = h.define_metric(kind, name) {
                            replay.metrics.insert(name.clone(), id);
                        }
                    }
                    Op::Enqueue(_) if replay.queue.is_none() => {
                        replay.queue = h.register_queue("gw_trace_replay").ok();
                    }
                    _ => {}
                }
            }
        }
        self.replay = Some(Rc::new(replay));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NoopHttp {
            replay: self.replay.clone(),
            cas: None,
        }))
    }
}

struct NoopHttp {
    replay: Option<Rc<Replay>>,
    /// The last shared-data read's CAS token, for the write after it.
    cas: Option<u32>,
}

impl NoopHttp {
    fn run(&mut self, cb: Callback, size: usize) -> Action {
        let Some(replay) = self.replay.clone() else {
            return Action::Continue;
        };
        let Some((action, ops)) = replay.trace.callbacks.get(&cb) else {
            return Action::Continue;
        };
        if replay.trace.calls {
            for op in ops {
                self.call(&replay, op, size);
            }
            if cb == Callback::Log {
                replay.audit(&mut Abi);
            }
        }
        *action
    }

    /// One host call; what it returns is dropped (read, as our filters do,
    /// into a fresh vector).
    fn call(&mut self, replay: &Replay, op: &Op, size: usize) {
        let h = &mut Abi;
        match op {
            Op::HeaderPairs(m) => drop(h.header_pairs(*m)),
            Op::HeaderValue(m, name) => drop(h.header_value(*m, name)),
            Op::SetHeader(m, name, value) => drop(h.set_header(*m, name, value.as_deref())),
            Op::AddHeader(m, name, value) => drop(h.add_header(*m, name, value)),
            Op::BufferLen(b) => drop(h.buffer_len(*b)),
            Op::Buffer(b, start, len) => {
                let max = match len {
                    Len::Fixed(n) => *n,
                    Len::CallbackSize => size,
                };
                let _ = h.buffer(*b, *start, max);
            }
            Op::Property(path) => {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                let _ = h.property(&path);
            }
            Op::SetProperty(path, value) => {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                let _ = h.set_property(&path, value.as_deref());
            }
            Op::SharedData(key, len) => {
                self.cas = match h.shared_data(key) {
                    Ok((Some(_), cas)) => cas,
                    // first request: store what the chain found there
                    _ => {
                        let _ = h.set_shared_data(key, Some(&vec![b'x'; *len]), None);
                        h.shared_data(key).ok().and_then(|(_, cas)| cas)
                    }
                };
            }
            Op::SetSharedData(key, value, cas) => {
                let cas = if *cas { self.cas } else { None };
                let _ = h.set_shared_data(key, Some(value), cas);
            }
            Op::Enqueue(value) => {
                if let Some(q) = replay.queue {
                    let _ = h.enqueue(q, value);
                }
            }
            Op::Now => drop(h.now()),
            Op::Increment(name, offset) => {
                if let Some(id) = replay.metrics.get(name) {
                    let _ = h.increment_metric(*id, *offset);
                }
            }
            Op::Record(name, value) => {
                if let Some(id) = replay.metrics.get(name) {
                    let _ = h.record_metric(*id, *value);
                }
            }
        }
    }
}

impl Context for NoopHttp {
    fn on_done(&mut self) -> bool {
        self.run(Callback::Done, 0);
        true
    }
}

impl HttpContext for NoopHttp {
    fn on_http_request_headers(&mut self, n: usize, _: bool) -> Action {
        self.run(Callback::RequestHeaders, n)
    }
    fn on_http_request_body(&mut self, n: usize, eos: bool) -> Action {
        let cb = if eos {
            Callback::RequestBodyEnd
        } else {
            Callback::RequestBody
        };
        self.run(cb, n)
    }
    fn on_http_response_headers(&mut self, n: usize, _: bool) -> Action {
        self.run(Callback::ResponseHeaders, n)
    }
    fn on_http_response_body(&mut self, n: usize, eos: bool) -> Action {
        let cb = if eos {
            Callback::ResponseBodyEnd
        } else {
            Callback::ResponseBody
        };
        self.run(cb, n)
    }
    fn on_log(&mut self) {
        self.run(Callback::Log, 0);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn the_committed_trace_parses() {
        let trace = parse(include_str!("../traces/tools_call.trace")).unwrap();
        assert!(trace.calls);
        let (action, ops) = &trace.callbacks[&Callback::RequestHeaders];
        assert_eq!(*action, Action::Pause);
        assert!(ops.iter().any(|o| matches!(o, Op::HeaderPairs(_))));
        let (action, _) = &trace.callbacks[&Callback::RequestBodyEnd];
        assert_eq!(*action, Action::Continue);
    }

    #[test]
    fn hold_mode_and_bad_lines() {
        let trace = parse("mode hold\non request_headers 1 pause\nnow\n").unwrap();
        assert!(!trace.calls);
        assert!(parse("now\n").is_err(), "an op outside a callback");
        assert!(parse("on request_headers 1 pause\nfrobnicate 1\n").is_err());
        assert!(parse("on request_headers 1 maybe\n").is_err());
        assert!(
            parse("audit_batch 50 vm q\n").is_err(),
            "a batch without its event"
        );
        let t = parse("audit_batch 2 vm q\naudit_event {\"a\": 1}\n").unwrap();
        assert_eq!(t.audit_event.as_deref(), Some("{\"a\": 1}"));
    }
}
