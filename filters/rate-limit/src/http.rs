//! Per-request state machine.
//!
//! Headers: nothing to decide until the body is known (a request with no
//! body is decided here from its recipe path). Body: buffered to the end,
//! its facts read from filter state (or parsed and published), the plan
//! made, then decided against the local slots or, in multi-replica mode,
//! with one call to Redis (the request waits paused; only the callback
//! resumes or answers it). Response headers: the RateLimit fields of an
//! admitted request.

use crate::local_store;
use crate::metrics::{Counter, Metrics};
use crate::root::now_ms;
use gw_core::filter_state::decision;
use gw_core::protocol::a2a;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::rate_limit::config::{OnUnavailable, RateLimitConfig};
use gw_core::rate_limit::headers::{self, LimitStatus};
use gw_core::rate_limit::plan::{self, Charge, OperationCall, Plan};
use gw_core::rate_limit::redis::{self, RedisReply, RedisWindow};
use gw_core::rate_limit::response::{self, Refusal};
use gw_core::rate_limit::sliding_window::{ceil_secs, WindowState};
use gw_host::abi;
use gw_host::profile::span;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;
use std::time::Duration;

/// A request waiting for Redis.
struct Pending {
    token: u32,
    agent_id: String,
    charges: Vec<Charge>,
    nonce: String,
    sent_script: bool,
}

/// Where the request is.
#[derive(PartialEq, Eq)]
enum Stage {
    Headers,
    Body,
    Waiting,
    Done,
}

pub struct RateLimitHttp {
    config: Rc<RateLimitConfig>,
    metrics: Metrics,
    context_id: u32,
    stage: Stage,
    path: String,
    /// `:method`: with the path, it names an A2A REST operation.
    http_method: String,
    /// Envoy's x-request-id, read in the headers callback (Envoy 1.40 refuses
    /// header-map access from body callbacks, and the SDK panics on that).
    request_id: String,
    facts: Option<RequestFacts>,
    pending: Option<Pending>,
    /// RateLimit fields to add to the upstream's response.
    response_headers: Vec<(String, String)>,
}

/// Common decision shape of both stores.
struct Decision {
    admitted: bool,
    retry_after_ms: u64,
    binding: usize,
    windows: Vec<Vec<WindowState>>,
}

impl RateLimitHttp {
    pub fn new(config: Rc<RateLimitConfig>, metrics: Metrics, context_id: u32) -> Self {
        Self {
            config,
            metrics,
            context_id,
            stage: Stage::Headers,
            path: String::new(),
            http_method: String::new(),
            request_id: String::new(),
            facts: None,
            pending: None,
            response_headers: Vec::new(),
        }
    }

    /// Decide a request whose operations are known. Returns the action for
    /// the callback that got us here.
    fn enforce(&mut self, calls: Vec<OperationCall>) -> Action {
        let identity = span("rl.identity", gw_host::state::verified_identity);
        match span("rl.plan", || {
            plan::plan(&self.config, identity.as_ref(), &calls)
        }) {
            Plan::Unlimited => self.pass(Vec::new()),
            Plan::MissingIdentity => {
                gw_host::state::set_decision(decision::UNAUTHENTICATED);
                gw_host::reply::json_error(
                    401,
                    "unauthenticated",
                    "a verified agent identity is required for this operation",
                    &[],
                );
                self.stage = Stage::Done;
                Action::Pause
            }
            Plan::Charges { agent_id, charges } => {
                if self.config.redis.is_some() {
                    self.ask_redis(agent_id, charges, false)
                } else {
                    self.decide_locally(&agent_id, &charges)
                }
            }
        }
    }

    fn decide_locally(&mut self, agent_id: &str, charges: &[Charge]) -> Action {
        match span("rl.decide", || {
            local_store::decide(&self.config, charges, now_ms(), &self.metrics)
        }) {
            Ok(outcome) => {
                if outcome.table_full {
                    self.metrics.inc(Counter::TableFull);
                }
                self.apply(
                    agent_id,
                    charges,
                    Decision {
                        admitted: outcome.admitted,
                        retry_after_ms: outcome.retry_after_ms,
                        binding: outcome.binding,
                        windows: outcome.windows,
                    },
                )
            }
            Err(message) => {
                log::error!("rate_limit: shared data: {message}");
                self.metrics.inc(Counter::StoreErrors);
                self.unavailable("the rate-limit store failed")
            }
        }
    }

    fn ask_redis(&mut self, agent_id: String, charges: Vec<Charge>, with_script: bool) -> Action {
        let Some(redis) = self.config.redis.clone() else {
            return self.decide_locally(&agent_id, &charges);
        };
        let nonce = self
            .pending
            .as_ref()
            .map(|p| p.nonce.clone())
            .unwrap_or_else(|| format!("{}.{}.{}", self.request_id, self.context_id, now_ms()));
        let windows: Vec<RedisWindow<'_>> = charges
            .iter()
            .filter_map(|c| {
                Some(RedisWindow {
                    key: format!("{}{}", redis.key_prefix, c.id.hex()),
                    slots: c.slots,
                    policy: &self.config.limits.get(c.limit)?.policy,
                })
            })
            .collect();
        let body = redis::command_body(&windows, &nonce, with_script);
        let call = hostcalls::dispatch_http_call(
            &redis.cluster,
            vec![
                (":method", "POST"),
                (":path", "/"),
                (":authority", &redis.authority),
                ("content-type", "text/plain"),
            ],
            Some(body.as_bytes()),
            vec![],
            Duration::from_millis(u64::from(redis.timeout_ms)),
        );
        match call {
            Ok(token) => {
                self.pending = Some(Pending {
                    token,
                    agent_id,
                    charges,
                    nonce,
                    sent_script: with_script,
                });
                self.stage = Stage::Waiting;
                Action::Pause
            }
            Err(status) => {
                log::error!(
                    "rate_limit: cannot call cluster {}: {status:?}",
                    redis.cluster
                );
                self.redis_failed(&agent_id, &charges, redis.on_unavailable)
            }
        }
    }

    fn redis_failed(&mut self, agent_id: &str, charges: &[Charge], mode: OnUnavailable) -> Action {
        self.metrics.inc(Counter::RedisUnavailable);
        match mode {
            OnUnavailable::Local => self.decide_locally(agent_id, charges),
            OnUnavailable::Deny => self.unavailable("the shared rate-limit store is unavailable"),
        }
    }

    fn unavailable(&mut self, message: &str) -> Action {
        gw_host::state::set_decision(decision::UNAVAILABLE);
        gw_host::reply::json_error(503, "rate_limit_unavailable", message, &[]);
        self.stage = Stage::Done;
        Action::Pause
    }

    /// Let the request through; remember the RateLimit fields for the response.
    fn pass(&mut self, headers: Vec<(String, String)>) -> Action {
        self.response_headers = headers;
        let resume = self.stage == Stage::Waiting;
        self.stage = Stage::Done;
        if resume {
            if let Err(status) = gw_host::flow::resume_request() {
                log::warn!("rate_limit: cannot resume request: {status:?}");
            }
        }
        Action::Continue
    }

    fn apply(&mut self, agent_id: &str, charges: &[Charge], d: Decision) -> Action {
        let statuses: Vec<LimitStatus> = charges
            .iter()
            .zip(d.windows)
            .filter_map(|(c, windows)| {
                Some(LimitStatus {
                    name: self.config.limits.get(c.limit)?.name.clone(),
                    windows,
                })
            })
            .collect();
        let headers = if self.config.headers_enabled {
            span("rl.headers", || headers::headers(&statuses))
        } else {
            Vec::new()
        };
        if d.admitted {
            self.metrics.inc(Counter::Admitted);
            return self.pass(headers);
        }
        self.metrics.inc(Counter::Limited);
        let binding = charges.get(d.binding).or_else(|| charges.first());
        let Some(limit) = binding.and_then(|c| self.config.limits.get(c.limit)) else {
            return self.unavailable("rate-limit state is inconsistent");
        };
        // A batch larger than a window's quota never fits: tell the client
        // to wait a full retention rather than an impossible moment.
        let retry_ms = if d.retry_after_ms == u64::MAX {
            limit.policy.retention_ms()
        } else {
            d.retry_after_ms
        };
        let refusal = Refusal {
            limit,
            agent_id,
            tool_name: binding.and_then(|c| c.tool_name.as_deref()),
            retry_after_secs: ceil_secs(retry_ms).max(1),
        };
        let reply = response::refusal_reply(&self.config, &refusal, self.facts.as_ref(), headers);
        gw_host::state::set_decision(decision::RATE_LIMITED);
        gw_host::reply::send_owned(reply.status, &reply.headers, reply.body.as_bytes());
        self.stage = Stage::Done;
        Action::Pause
    }
}

impl Context for RateLimitHttp {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        if pending.token != token || self.stage != Stage::Waiting {
            self.pending = Some(pending);
            return;
        }
        let Some(redis) = self.config.redis.clone() else {
            return;
        };
        let status = gw_host::headers::get(MapType::HttpCallResponseHeaders, ":status");
        let body = abi::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let policies: Vec<_> = pending
            .charges
            .iter()
            .filter_map(|c| self.config.limits.get(c.limit).map(|l| &l.policy))
            .collect();
        match redis::parse_reply(status.as_deref(), &body, &policies) {
            RedisReply::Decided(d) => {
                let decision = Decision {
                    admitted: d.admitted,
                    retry_after_ms: d.retry_after_ms,
                    // Redis decides all windows at once; name the limit whose
                    // window is fullest.
                    binding: d
                        .windows
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, w)| w.iter().map(|s| s.remaining).min().unwrap_or(0))
                        .map_or(0, |(i, _)| i),
                    windows: d.windows,
                };
                self.apply(&pending.agent_id, &pending.charges, decision);
            }
            RedisReply::NoScript if !pending.sent_script => {
                let Pending {
                    agent_id,
                    charges,
                    nonce,
                    ..
                } = pending;
                self.pending = Some(Pending {
                    token: 0,
                    agent_id: agent_id.clone(),
                    charges: Vec::new(),
                    nonce,
                    sent_script: true,
                });
                self.ask_redis(agent_id, charges, true);
            }
            other => {
                log::error!("rate_limit: redis store: {other:?}");
                self.redis_failed(&pending.agent_id, &pending.charges, redis.on_unavailable);
            }
        }
    }
}

impl HttpContext for RateLimitHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.config.limits.is_empty() {
            self.stage = Stage::Done;
            return Action::Continue;
        }
        self.metrics.inc(Counter::Requests);
        self.path = gw_host::state::request_header(":path").unwrap_or_default();
        self.http_method = gw_host::state::request_header(":method").unwrap_or_default();
        self.request_id = gw_host::state::request_header("x-request-id").unwrap_or_default();
        if end_of_stream {
            let calls = OperationCall::from_request(&self.http_method, &self.path);
            return self.enforce(calls);
        }
        // The body callbacks buffer and decide. Held headers (StopIteration,
        // allowed by allow_on_headers_stop_iteration) go on with the body
        // once it is counted; otherwise they go on now.
        self.stage = Stage::Body;
        if self.config.hold_request_headers {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.stage {
            Stage::Body => {}
            Stage::Waiting => return Action::Pause,
            Stage::Headers | Stage::Done => return Action::Continue,
        }
        if !end_of_stream {
            return Action::Pause;
        }
        // Facts published by an earlier filter spare us the body copy.
        let inspected = match gw_host::body::published_facts() {
            Some(facts) => Ok((facts, None)),
            None => {
                let body = gw_host::body::request_body(body_size);
                if body.iter().all(u8::is_ascii_whitespace) {
                    let calls = OperationCall::from_request(&self.http_method, &self.path);
                    return self.enforce(calls);
                }
                gw_host::body::inspect_request_on(&self.http_method, &self.path, &body)
            }
        };
        match inspected {
            Ok((facts, _)) => {
                let calls = OperationCall::from_facts(&facts);
                self.facts = Some(facts);
                self.enforce(calls)
            }
            // Not JSON-RPC, and not where JSON-RPC is expected (another
            // upstream's POST): nothing here that we count; let it pass
            // untouched.
            Err(_) if !a2a::jsonrpc_only(&self.path) => self.enforce(Vec::new()),
            Err(err) => {
                // A body we cannot read strictly could hide a counted
                // operation from us (duplicate keys, ...): refuse it.
                gw_host::state::set_decision(decision::BAD_REQUEST);
                gw_host::reply::jsonrpc_error(
                    400,
                    None,
                    err.jsonrpc_code(),
                    &err.to_string(),
                    None,
                );
                self.stage = Stage::Done;
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in std::mem::take(&mut self.response_headers) {
            if let Err(status) = abi::add_map_value(MapType::HttpResponseHeaders, &name, &value) {
                log::warn!("rate_limit: cannot add {name}: {status:?}");
            }
        }
        Action::Continue
    }
}
