//! Per-request state machine.
//!
//! Headers: nothing to decide until the body is known (a request with no
//! body is decided here from its recipe path). Body: buffered to the end,
//! its facts read from filter state (or parsed and published), the bill
//! made, then decided against the local slots or, in multi-replica mode,
//! with one call to Redis (the request waits paused; only the callback
//! resumes or answers it). Response headers: the RateLimit fields of an
//! admitted request.

use crate::metrics::Metrics;
use gw_core::filter_state::decision;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::rate_limit::admission::{self, Admission};
use gw_core::rate_limit::bill::{self, Bill, Charge, OperationCall};
use gw_core::rate_limit::config::RateLimitConfig;
use gw_core::rate_limit::headers;
use gw_core::rate_limit::intake::{self, Unreadable};
use gw_core::rate_limit::response;
use gw_host::clock::now_ms;
use gw_host::filter::Filter;
use gw_host::port::Host;
use gw_rate_limit_store::{RedisCall, SharedSlots};
use proxy_wasm::types::Action;
use std::rc::Rc;

/// Shared data: refusals on the 2024-11-05 transport waiting for their GET
/// stream (`gw_host::legacy_sse`; this VM's own table).
const LEGACY_PENDING_KEY: &str = "gw_rate_limit.legacy_sse_pending.v1";

/// Where the request is.
#[derive(PartialEq, Eq)]
pub(crate) enum Phase {
    Headers,
    Body,
    Waiting,
    Done,
}

pub struct RateLimitHttp {
    pub(crate) config: Rc<RateLimitConfig>,
    pub(crate) metrics: Metrics,
    pub(crate) context_id: u32,
    pub(crate) phase: Phase,
    pub(crate) path: String,
    /// `:method`: with the path, it names an A2A REST operation.
    pub(crate) http_method: String,
    /// Envoy's x-request-id, read in the headers callback (Envoy 1.40 refuses
    /// header-map access from body callbacks, and the SDK panics on that).
    pub(crate) request_id: String,
    pub(crate) facts: Option<RequestFacts>,
    /// The Redis call this request waits for.
    pub(crate) pending: Option<RedisCall>,
    /// RateLimit fields to add to the upstream's response.
    pub(crate) response_headers: Vec<(String, String)>,
    /// The 2024-11-05 transport's session, when this is a POST to its
    /// messages URL: a refusal goes to the session's GET stream.
    pub(crate) legacy_session: Option<String>,
    /// Size of the complete request body (a deferred refusal replaces it).
    pub(crate) body_len: usize,
    /// A GET stream, watched for the answers our deferred refusals replace.
    pub(crate) stream: Option<gw_host::legacy_sse::StreamWatch>,
}

impl RateLimitHttp {
    pub fn new(config: Rc<RateLimitConfig>, metrics: Metrics, context_id: u32) -> Self {
        Self {
            config,
            metrics,
            context_id,
            phase: Phase::Headers,
            path: String::new(),
            http_method: String::new(),
            request_id: String::new(),
            facts: None,
            pending: None,
            response_headers: Vec::new(),
            legacy_session: None,
            body_len: 0,
            stream: None,
        }
    }

    /// Decide a request whose operations are known. Returns the action for
    /// the callback that got us here.
    pub(crate) fn enforce(&mut self, h: &mut dyn Host, calls: Vec<OperationCall>) -> Action {
        let identity = gw_host::state::verified_identity(h);
        match bill::bill(&self.config, identity.as_ref(), &calls) {
            Bill::Unlimited => self.pass(h, Vec::new()),
            Bill::MissingIdentity => {
                gw_host::state::set_decision(h, decision::UNAUTHENTICATED);
                gw_host::reply::json_error(
                    h,
                    401,
                    "unauthenticated",
                    "a verified agent identity is required for this operation",
                    &[],
                );
                self.phase = Phase::Done;
                Action::Pause
            }
            Bill::Charges { agent_id, charges } => {
                let config = Rc::clone(&self.config);
                if let Some(store) = config.redis.as_ref() {
                    self.ask_redis(h, store, agent_id, charges)
                } else {
                    self.decide_locally(h, &agent_id, &charges)
                }
            }
        }
    }

    pub(crate) fn decide_locally(
        &mut self,
        h: &mut dyn Host,
        agent_id: &str,
        charges: &[Charge],
    ) -> Action {
        let now = now_ms(h);
        let mut slots = SharedSlots {
            host: &mut *h,
            counters: self.metrics.slots(),
        };
        match admission::decide(&mut slots, &self.config, charges, now) {
            Ok(admission) => {
                if admission.table_full {
                    self.metrics.table_full.inc(h);
                }
                self.apply(h, agent_id, charges, admission)
            }
            Err(message) => {
                log::error!("rate_limit: shared data: {message}");
                self.metrics.store_errors.inc(h);
                self.unavailable(h, "the rate-limit store failed")
            }
        }
    }

    pub(crate) fn unavailable(&mut self, h: &mut dyn Host, message: &str) -> Action {
        gw_host::state::set_decision(h, decision::UNAVAILABLE);
        gw_host::reply::json_error(h, 503, "rate_limit_unavailable", message, &[]);
        self.phase = Phase::Done;
        Action::Pause
    }

    /// Let the request through; remember the RateLimit fields for the response.
    pub(crate) fn pass(&mut self, h: &mut dyn Host, headers: Vec<(String, String)>) -> Action {
        self.response_headers = headers;
        let resume = self.phase == Phase::Waiting;
        self.phase = Phase::Done;
        if resume {
            if let Err(status) = h.resume_request() {
                log::warn!("rate_limit: cannot resume request: {status:?}");
            }
        }
        Action::Continue
    }

    pub(crate) fn apply(
        &mut self,
        h: &mut dyn Host,
        agent_id: &str,
        charges: &[Charge],
        d: Admission,
    ) -> Action {
        let headers = headers::for_charges(&self.config, charges, d.windows);
        if d.admitted {
            self.metrics.admitted.inc(h);
            return self.pass(h, headers);
        }
        self.metrics.limited.inc(h);
        let config = Rc::clone(&self.config);
        let Some(refusal) =
            response::refusal(&config, charges, d.binding, d.retry_after_ms, agent_id)
        else {
            return self.unavailable(h, "rate-limit state is inconsistent");
        };
        let reply = response::refusal_reply(&config, &refusal, self.facts.as_ref(), headers);
        gw_host::state::set_decision(h, decision::RATE_LIMITED);
        if self.defer_to_legacy_stream(h, &reply) {
            // The upstream gets a ping in place of the message; the refusal
            // replaces its answer on the session's GET stream.
            return self.pass(h, Vec::new());
        }
        gw_host::reply::send_local(h, &reply);
        self.phase = Phase::Done;
        Action::Pause
    }

    /// 2024-11-05 transport: the client reads answers only from its GET
    /// stream, so a refusal in this POST's response would never be read
    /// (the official Python client waits forever). Same delivery as the
    /// tool ACL's denials (`gw_core::tool_acl::legacy_sse`). `false`: not
    /// that transport, a batch or a notification, or the table is
    /// unavailable: refuse in the POST's response as usual.
    fn defer_to_legacy_stream(&self, h: &mut dyn Host, reply: &response::Reply) -> bool {
        let Some(session) = self.legacy_session.clone() else {
            return false;
        };
        let Some(id) = self.facts.as_ref().and_then(|f| f.single()?.id.clone()) else {
            return false;
        };
        let answer = response::stream_answer(&self.config, reply, &id);
        gw_host::legacy_sse::defer_refusal(
            h,
            LEGACY_PENDING_KEY,
            session,
            &id,
            answer,
            self.body_len,
        )
    }
}

impl Filter for RateLimitHttp {
    fn call_response(
        &mut self,
        h: &mut dyn Host,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        self.redis_answered(h, token, body_size);
    }

    fn request_headers(
        &mut self,
        h: &mut dyn Host,
        _num_headers: usize,
        end_of_stream: bool,
    ) -> Action {
        if self.config.limits.is_empty() {
            self.phase = Phase::Done;
            return Action::Continue;
        }
        self.metrics.requests.inc(h);
        self.path = gw_host::state::request_header(h, ":path").unwrap_or_default();
        self.http_method = gw_host::state::request_header(h, ":method").unwrap_or_default();
        self.request_id = gw_host::state::request_header(h, "x-request-id").unwrap_or_default();
        self.legacy_session = gw_core::tool_acl::legacy_sse::session_of(&self.path);
        if end_of_stream {
            let calls = OperationCall::from_request(&self.http_method, &self.path);
            return self.enforce(h, calls);
        }
        // The body callbacks buffer and decide. Held headers (StopIteration,
        // allowed by allow_on_headers_stop_iteration) go on with the body
        // once it is counted; otherwise they go on now.
        self.phase = Phase::Body;
        if self.config.hold_request_headers {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn request_body(&mut self, h: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        match self.phase {
            Phase::Body => {}
            Phase::Waiting => return Action::Pause,
            Phase::Headers | Phase::Done => return Action::Continue,
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.body_len = body_size;
        let legacy = self.legacy_session.is_some();
        if intake::denied_in_transit(legacy, || {
            gw_host::state::get(h, gw_core::filter_state::DECISION)
        }) {
            // The tool ACL denied this 2024-11-05 message and forwards a
            // ping in its place: a denied call does not use the tool's
            // window (on Streamable HTTP it never reaches this filter).
            self.phase = Phase::Done;
            return Action::Continue;
        }
        // Facts published by an earlier filter spare us the body copy.
        let inspected = match gw_host::body::published_facts(h) {
            Some(facts) => Ok((facts, None)),
            None => {
                let body = gw_host::body::request_body(h, body_size);
                if intake::billed_by_path(&body) {
                    let calls = OperationCall::from_request(&self.http_method, &self.path);
                    return self.enforce(h, calls);
                }
                gw_host::body::inspect_request_on(h, &self.http_method, &self.path, &body)
            }
        };
        match inspected {
            Ok((facts, _)) => {
                let calls = OperationCall::from_facts(&facts);
                self.facts = Some(facts);
                self.enforce(h, calls)
            }
            // Not JSON-RPC, and not where JSON-RPC is expected (another
            // upstream's POST): nothing here that we count; let it pass
            // untouched.
            Err(_) if Unreadable::at(&self.path) == Unreadable::Pass => self.enforce(h, Vec::new()),
            Err(err) => {
                // A body we cannot read strictly could hide a counted
                // operation from us (duplicate keys, ...): refuse it.
                gw_host::state::set_decision(h, decision::BAD_REQUEST);
                gw_host::reply::jsonrpc_error(
                    h,
                    400,
                    None,
                    err.jsonrpc_code(),
                    &err.to_string(),
                    None,
                );
                self.phase = Phase::Done;
                Action::Pause
            }
        }
    }

    fn response_headers(&mut self, h: &mut dyn Host, _: usize, end_of_stream: bool) -> Action {
        // A GET stream may be a 2024-11-05 session's, where our deferred
        // refusals are delivered (the watch stops after its first event
        // when it is not).
        if intake::may_carry_deferred_refusals(&self.http_method, end_of_stream, || {
            gw_host::response::header(h, "content-type")
        }) {
            self.stream = Some(gw_host::legacy_sse::StreamWatch::new(LEGACY_PENDING_KEY));
        }
        for (name, value) in std::mem::take(&mut self.response_headers) {
            gw_host::response::add_header(h, &name, &value);
        }
        Action::Continue
    }

    fn response_body(&mut self, h: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(stream) = self.stream.as_mut() {
            stream.on_body(h, body_size, end_of_stream);
        }
        Action::Continue
    }
}
