//! The audit HTTP filter: one event per request/response pair.
//!
//! It must never block or deny traffic:
//! - the request body is buffered only up to `maxRequestBodyBytes` (kept
//!   below Envoy's buffer limit so Envoy never answers 413 because of us);
//!   a larger body, or one whose `content-length` says so, flows on
//!   unparsed; the event then takes the facts a later filter that judged
//!   it published (so the body is still parsed once), else records
//!   `requestBody: too_large`;
//! - a body that is not JSON-RPC is recorded, not refused (later filters
//!   decide);
//! - response chunks are copied, never held, so SSE streams flow as they
//!   arrive;
//! - the event is built in `on_log`, which Envoy runs once per stream,
//!   whoever answered (upstream, a later filter's local reply, Envoy
//!   itself) and however it ended.

use crate::metrics::FilterMetrics;
use crate::{DEFAULT_VM_ID, QUEUE_NAME};
use gw_core::audit::config::{normalize_path, AuditConfig, Source};
use gw_core::audit::event::{
    build_event, capture_request, RequestBody, RequestRecord, ResponseRecord,
};
use gw_core::audit::outbox::Outbox;
use gw_core::audit::response_capture::{CapturePlan, ResponseCapture};
use gw_core::filter_state;
use gw_core::protocol::jsonrpc::{self, JsonRpcBody};
use gw_host::clock::now_ms;
use gw_host::filter::Filter;
use gw_host::port::Host;
use gw_host::{response, state};
use proxy_wasm::types::Action;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// What every request context of one filter configuration shares.
pub struct FilterShared {
    config: AuditConfig,
    metrics: FilterMetrics,
    vm_id: String,
    queue: Cell<Option<u32>>,
    /// This worker's events not yet on the queue (see `gw_core::audit::outbox`).
    outbox: RefCell<Outbox>,
    warned_no_sender: Cell<bool>,
    /// Tells this VM's local event ids (for requests without
    /// `x-request-id`) from other workers'.
    instance: String,
}

impl FilterShared {
    pub fn new(h: &mut dyn Host, config: AuditConfig) -> Self {
        let vm_id = state::property_string(h, &["plugin_vm_id"])
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_VM_ID.to_string());
        let outbox = Outbox::new(config.destination.batch_size);
        Self {
            metrics: FilterMetrics::define(h),
            vm_id,
            queue: Cell::new(None),
            outbox: RefCell::new(outbox),
            warned_no_sender: Cell::new(false),
            instance: h
                .now()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or_else(String::new, |d| format!("{:x}", d.subsec_nanos())),
            config,
        }
    }

    /// How often the worker's root context flushes the outbox.
    pub fn hold_ms(&self) -> u64 {
        gw_core::audit::outbox::hold_ms(self.config.destination.flush_interval_ms)
    }

    fn queue(&self, h: &mut dyn Host) -> Option<u32> {
        if let Some(id) = self.queue.get() {
            return Some(id);
        }
        let id = h.resolve_queue(&self.vm_id, QUEUE_NAME).ok().flatten();
        self.queue.set(id);
        id
    }

    /// Collect an event; the outbox goes to the sender when it holds a
    /// batch, or on the next tick of this worker's root context.
    fn record(&self, h: &mut dyn Host, event: &str) {
        self.metrics.events.inc(h);
        let full = self.outbox.borrow_mut().push(event);
        if full {
            self.flush(h);
        }
    }

    /// Hand the outbox to the sender; its events count as dropped if there
    /// is no sender.
    pub fn flush(&self, h: &mut dyn Host) {
        let Some((frame, events)) = self.outbox.borrow_mut().take() else {
            return;
        };
        for _ in 0..2 {
            let Some(id) = self.queue(h) else { break };
            match h.enqueue(id, frame.as_bytes()) {
                Ok(()) => return,
                // The sender re-registered (reconfiguration): resolve again.
                Err(_) => self.queue.set(None),
            }
        }
        self.metrics.dropped.add(h, events as u64);
        if !self.warned_no_sender.replace(true) {
            log::warn!(
                "audit: no sender queue `{QUEUE_NAME}` in vm `{}`: events are dropped (is the audit WasmService in bootstrap_extensions?)",
                self.vm_id
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// Waiting for body chunks (buffering them until the end or the limit).
    Reading,
    /// Parsed, skipped or absent: the request side is complete.
    Done,
}

pub struct AuditHttp {
    context_id: u32,
    shared: Option<Rc<FilterShared>>,
    started: bool,
    request: RequestRecord,
    /// Values of the request headers that `header:` captures name, read
    /// when they arrive (before later filters change them).
    headers: Vec<(String, Option<String>)>,
    body: BodyState,
    response: Option<ResponseCapture>,
}

impl AuditHttp {
    pub fn new(context_id: u32, shared: Option<Rc<FilterShared>>) -> Self {
        Self {
            context_id,
            shared,
            started: false,
            request: RequestRecord::default(),
            headers: Vec::new(),
            body: BodyState::Done,
            response: None,
        }
    }

    fn start(&mut self, h: &mut dyn Host, config: &AuditConfig) {
        self.started = true;
        self.request.start_unix_ms = now_ms(h);
        self.request.request_id = state::request_header(h, "x-request-id");
        let path = state::request_header(h, ":path").unwrap_or_default();
        self.request.path = normalize_path(&path).to_string();
        self.request.http_method = state::request_header(h, ":method").unwrap_or_default();
        for capture in &config.request_captures {
            if let Source::Header(name) = &capture.source {
                if !self.headers.iter().any(|(n, _)| n == name) {
                    self.headers
                        .push((name.clone(), state::request_header(h, name)));
                }
            }
        }
    }

    /// Request side complete: compute captures and the response plan.
    fn finish_request(
        &mut self,
        h: &mut dyn Host,
        config: &AuditConfig,
        body: RequestBody,
        parsed: Option<&JsonRpcBody>,
    ) {
        self.body = BodyState::Done;
        // A bodiless A2A REST request (GET /a2a/rest/tasks/{id}) still
        // names its operation and task, by its route.
        let rest_view;
        let (body, parsed) = match body {
            RequestBody::None => {
                match gw_host::body::inspect_bodiless(
                    h,
                    &self.request.http_method,
                    &self.request.path,
                ) {
                    Some((facts, view)) => {
                        rest_view = view;
                        (RequestBody::Parsed(facts), Some(&rest_view))
                    }
                    None => (RequestBody::None, parsed),
                }
            }
            other => (other, parsed),
        };
        let headers = &self.headers;
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.clone())
        };
        let facts = match &body {
            RequestBody::Parsed(facts) => Some(facts),
            _ => None,
        };
        self.request.captured = capture_request(
            config,
            &self.request.path,
            lookup,
            facts.map(|f| (f, parsed)),
        );
        let plan = CapturePlan::new(&config.response_captures, &self.request.path, facts);
        if plan.wants_body() || !plan.header_captures().is_empty() {
            self.response = Some(ResponseCapture::new(
                plan,
                config.max_response_body_bytes,
                config.max_capture_chars,
            ));
        }
        self.request.body = body;
    }

    /// A body too large for audit's own parse may still have been judged by
    /// a later filter (the tool ACL reads up to 1 MiB): take the facts it
    /// published, so the event records the method and tool it judged. Runs
    /// when the response starts (the request side is decided by then, and
    /// response captures can still follow) and again in `on_log`.
    fn adopt_published_facts(
        &mut self,
        h: &mut dyn Host,
        config: &AuditConfig,
        response_started: bool,
    ) {
        if self.request.body != RequestBody::TooLarge {
            return;
        }
        if let Some(facts) = gw_host::body::published_facts(h) {
            // Once the response started, keep what its captures saw.
            let seen = response_started.then(|| self.response.take()).flatten();
            self.finish_request(h, config, RequestBody::Parsed(facts), None);
            if seen.is_some() {
                self.response = seen;
            }
        }
    }

    fn inspect_body(
        &mut self,
        h: &mut dyn Host,
        config: &AuditConfig,
        bytes: &[u8],
        metrics: &FilterMetrics,
    ) {
        // With the method and path, an A2A REST body gets its operation
        // from the route (and a JSON-RPC view for the captures).
        let outcome = gw_host::body::inspect_request_on(
            h,
            &self.request.http_method,
            &self.request.path,
            bytes,
        );
        let (body, own_parse) = match outcome {
            Ok((facts, Some(parsed))) => (RequestBody::Parsed(facts), Some(parsed)),
            // Another filter published the facts first; the JSONPath
            // captures still need the body itself.
            Ok((facts, None)) => (RequestBody::Parsed(facts), jsonrpc::parse(bytes).ok()),
            Err(err) => {
                metrics.bodies_unparsed.inc(h);
                (RequestBody::invalid(&err), None)
            }
        };
        self.finish_request(h, config, body, own_parse.as_ref());
    }
}

impl Filter for AuditHttp {
    fn request_headers(&mut self, h: &mut dyn Host, _: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let config = &shared.config;
        self.start(h, config);
        if end_of_stream {
            self.finish_request(h, config, RequestBody::None, None);
            return Action::Continue;
        }
        let declared =
            state::request_header(h, "content-length").and_then(|v| v.parse::<usize>().ok());
        match declared {
            Some(0) => self.finish_request(h, config, RequestBody::None, None),
            Some(n) if n > config.max_request_body_bytes => {
                shared.metrics.bodies_unparsed.inc(h);
                self.finish_request(h, config, RequestBody::TooLarge, None);
            }
            _ => self.body = BodyState::Reading,
        }
        Action::Continue
    }

    fn request_body(&mut self, h: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        if self.body != BodyState::Reading {
            return Action::Continue;
        }
        let config = &shared.config;
        if body_size > config.max_request_body_bytes {
            // Release what we held and stop looking: later filters decide.
            shared.metrics.bodies_unparsed.inc(h);
            self.finish_request(h, config, RequestBody::TooLarge, None);
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause; // buffer until the whole body is here
        }
        let bytes = gw_host::body::request_body(h, body_size);
        if bytes.is_empty() {
            self.finish_request(h, config, RequestBody::None, None);
        } else {
            self.inspect_body(h, config, &bytes, &shared.metrics);
        }
        Action::Continue
    }

    fn response_headers(&mut self, h: &mut dyn Host, _: usize, _: bool) -> Action {
        if let Some(shared) = self.shared.clone() {
            self.adopt_published_facts(h, &shared.config, false);
        }
        let (Some(shared), Some(rc)) = (self.shared.as_ref(), self.response.as_mut()) else {
            return Action::Continue;
        };
        let captures = &shared.config.response_captures;
        for i in rc.plan().header_captures().to_vec() {
            if let Some(Source::Header(name)) = captures.get(i).map(|c| &c.source) {
                rc.capture_header(captures, i, response::header(h, name));
            }
        }
        rc.on_headers(response::header(h, "content-type").as_deref());
        Action::Continue
    }

    fn response_body(&mut self, h: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(shared), Some(rc)) = (self.shared.as_ref(), self.response.as_mut()) else {
            return Action::Continue;
        };
        if rc.wants_chunks() {
            let chunk = response::body(h, body_size);
            rc.feed(&shared.config.response_captures, &chunk, end_of_stream);
        }
        Action::Continue
    }

    fn log(&mut self, h: &mut dyn Host) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let config = &shared.config;
        if !self.started {
            // Envoy answered before our request callback ran.
            self.start(h, config);
        }
        if self.body == BodyState::Reading {
            // The request ended (reset) before its body did.
            self.finish_request(h, config, RequestBody::None, None);
        }
        self.adopt_published_facts(h, config, true);
        let response = ResponseRecord {
            end_unix_ms: now_ms(h),
            status: response_code(h),
            code_details: state::property_string(h, &["response", "code_details"]),
            decision_state: state::get(h, filter_state::DECISION)
                .and_then(|b| String::from_utf8(b).ok()),
            identity: state::verified_identity(h),
            captured: self
                .response
                .as_mut()
                .map(ResponseCapture::take_values)
                .unwrap_or_default(),
        };
        let request = std::mem::take(&mut self.request);
        // The event's id is Envoy's x-request-id; the fallback is only
        // formatted when there is none (build_event ignores it otherwise).
        let fallback_id = match request.request_id.as_deref() {
            Some(id) if !id.is_empty() => String::new(),
            _ => format!(
                "{:x}-{}-{:x}",
                request.start_unix_ms, shared.instance, self.context_id
            ),
        };
        let event = build_event(config, request, response, &fallback_id).to_json();
        shared.record(h, &event);
    }
}

/// `response.code` is an integer property: 8 bytes, little-endian.
fn response_code(h: &mut dyn Host) -> Option<u32> {
    let bytes = h.property(&["response", "code"]).ok().flatten()?;
    let array: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    u32::try_from(u64::from_le_bytes(array))
        .ok()
        .filter(|c| *c > 0)
}
