//! Per-request context: one state machine per request, so that nothing
//! (a body chunk, trailers) can release a request while its credential is
//! being checked.

use crate::root::Metrics;
use gw_core::identity::budget::CalloutBudget;
use gw_core::identity::cache;
use gw_core::identity::callout::{CalloutResponse, Outcome, MAX_RESPONSE_BYTES};
use gw_core::identity::config::IdentityConfig;
use gw_core::identity::credentials::CredentialKind;
use gw_core::identity::denial::Denial;
use gw_core::identity::policy::{Begin, Pending, Verdict};
use gw_core::identity::protected_resource::RequestInfo;
use gw_core::{filter_state, identity::api_key, identity::introspection};
use gw_host::abi;
use gw_host::profile::span;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// One slot of the worker's callout budget, held while a callout is in
/// flight. Dropping it gives the slot back, whichever way the wait ends:
/// the answer arrives, or the request goes away first (client reset: Envoy
/// cancels the callout and deletes the context, which drops its state).
struct CalloutSlot(Rc<RefCell<CalloutBudget>>);

impl CalloutSlot {
    fn acquire(budget: &Rc<RefCell<CalloutBudget>>) -> Option<Self> {
        let taken = budget
            .try_borrow_mut()
            .map(|mut b| b.try_acquire())
            .unwrap_or(false);
        taken.then(|| Self(budget.clone()))
    }
}

impl Drop for CalloutSlot {
    fn drop(&mut self) {
        if let Ok(mut budget) = self.0.try_borrow_mut() {
            budget.release();
        }
    }
}

/// The request line as the policy needs it (owned: it outlives the headers
/// callback while a callout is pending).
struct Request {
    method: String,
    path: String,
    scheme: String,
    authority: String,
}

impl Request {
    /// From the request headers already read (one host call for all of
    /// them: each single-header read is a host round trip of its own).
    fn from_headers(headers: &[(String, String)]) -> Self {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let path = get(":path");
        let path = path
            .split_once('?')
            .map_or(path.as_str(), |(p, _)| p)
            .to_string();
        Self {
            method: get(":method"),
            path,
            scheme: get(":scheme"),
            authority: get(":authority"),
        }
    }

    fn info(&self) -> RequestInfo<'_> {
        RequestInfo {
            method: &self.method,
            path: &self.path,
            scheme: &self.scheme,
            authority: &self.authority,
        }
    }
}

enum State {
    /// Headers not seen yet.
    Start,
    /// A callout is in flight; the request is paused until it answers.
    Waiting {
        token: u32,
        pending: Box<Pending>,
        request: Request,
        /// Released when this state is left or dropped.
        _slot: CalloutSlot,
    },
    /// Decided: allowed (continuing) or answered locally.
    Done,
}

pub struct IdentityHttp {
    config: Rc<IdentityConfig>,
    metrics: Metrics,
    budget: Rc<RefCell<CalloutBudget>>,
    state: State,
}

use gw_host::clock::now;

impl IdentityHttp {
    pub fn new(
        config: Rc<IdentityConfig>,
        metrics: Metrics,
        budget: Rc<RefCell<CalloutBudget>>,
    ) -> Self {
        Self {
            config,
            metrics,
            budget,
            state: State::Start,
        }
    }

    fn slot(&self, hash: &str) -> Option<String> {
        cache::slot_key(
            &self.config.fingerprint,
            hash,
            self.config.cache.max_entries,
        )
    }

    fn cached(&self, hash: &str) -> Option<Outcome> {
        let key = self.slot(hash)?;
        let (bytes, _) = abi::get_shared_data(&key).ok()?;
        cache::decode(&bytes?, hash, now().as_millis() as u64)
    }

    fn remember(&self, pending: &Pending, outcome: &Outcome) {
        let hash = pending.hash.as_str();
        let Some(key) = self.slot(hash) else { return };
        let Some(bytes) = cache::encode(
            hash,
            pending.kind,
            outcome,
            now().as_millis() as u64,
            &self.config.cache,
        ) else {
            return;
        };
        // Last writer wins: a slot holds one credential's result, and two
        // workers checking the same credential store the same answer.
        if let Err(status) = abi::set_shared_data(&key, Some(&bytes), None) {
            log::debug!("identity: cannot cache a result: {status:?}");
        }
    }

    /// Apply a verdict. Returns true when the request may continue.
    fn apply(&mut self, verdict: Verdict, request: &Request) -> bool {
        self.state = State::Done;
        match verdict {
            Verdict::Allow(allowed) => {
                span("id.set_headers", || {
                    for (name, value) in &allowed.headers {
                        gw_host::state::set_request_header(name, Some(value));
                    }
                });
                span("id.set_state", || {
                    gw_host::state::set(
                        filter_state::VERIFIED_IDENTITY,
                        &allowed.identity.to_json(),
                    )
                });
                Metrics::bump(self.metrics.allowed);
                true
            }
            Verdict::Deny(denial) => {
                self.deny(&denial, request);
                false
            }
        }
    }

    fn deny(&mut self, denial: &Denial, request: &Request) {
        self.state = State::Done;
        if denial.status == 503 {
            log::warn!(
                "identity: {} {}: {}",
                request.method,
                request.path,
                denial.message
            );
            Metrics::bump(self.metrics.unavailable);
        } else {
            log::debug!(
                "identity: {} {}: {} {}",
                request.method,
                request.path,
                denial.status,
                denial.error
            );
            Metrics::bump(self.metrics.denied);
        }
        gw_host::state::set_decision(denial.decision());
        let reply = self.config.reply(denial, &request.info());
        gw_host::reply::send_owned(reply.status, &reply.headers, reply.body.as_bytes());
    }

    fn check(&mut self, pending: Pending, request: Request) -> Action {
        if let Some(outcome) = self.cached(&pending.hash) {
            Metrics::bump(self.metrics.cache_hits);
            let verdict =
                self.config
                    .finish(pending.kind, outcome, &request.info(), now().as_secs());
            return if self.apply(verdict, &request) {
                Action::Continue
            } else {
                Action::Pause
            };
        }
        // The cache did not know the credential: a callout, if this worker
        // has a slot left for one.
        let Some(slot) = CalloutSlot::acquire(&self.budget) else {
            Metrics::bump(self.metrics.callouts_rejected);
            let limit = self.config.max_callouts_in_flight;
            self.deny(&Denial::callouts_exhausted(limit), &request);
            return Action::Pause;
        };
        let callout = &pending.callout;
        let headers: Vec<(&str, &str)> = callout
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        match hostcalls::dispatch_http_call(
            &callout.cluster,
            headers,
            Some(&callout.body),
            Vec::new(),
            Duration::from_millis(callout.timeout_ms),
        ) {
            Ok(token) => {
                Metrics::bump(self.metrics.callouts);
                self.state = State::Waiting {
                    token,
                    pending: Box::new(pending),
                    request,
                    _slot: slot,
                };
                Action::Pause
            }
            Err(status) => {
                let denial = Denial::unavailable(format!(
                    "cannot verify the credential: cannot call cluster `{}` ({status:?})",
                    callout.cluster
                ));
                self.deny(&denial, &request);
                Action::Pause
            }
        }
    }
}

impl Context for IdentityHttp {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        let (pending, request) = match std::mem::replace(&mut self.state, State::Done) {
            // The callout has answered: its slot goes back as this arm's
            // binding is dropped.
            State::Waiting {
                token,
                pending,
                request,
                _slot,
            } if token == token_id => (*pending, request),
            other => {
                self.state = other;
                return;
            }
        };
        let status = gw_host::headers::call_response_status();
        // One byte past the limit is enough to call the answer too long.
        let read = body_size.min(MAX_RESPONSE_BYTES + 1);
        let body = abi::get_buffer(BufferType::HttpCallResponseBody, 0, read)
            .ok()
            .flatten()
            .unwrap_or_default();
        let response = CalloutResponse {
            status,
            body: &body,
        };
        let outcome = match pending.kind {
            CredentialKind::ApiKey => api_key::classify(response),
            CredentialKind::Bearer => introspection::classify(response),
        };
        self.remember(&pending, &outcome);
        let verdict = self
            .config
            .finish(pending.kind, outcome, &request.info(), now().as_secs());
        if self.apply(verdict, &request) {
            if let Err(status) = gw_host::flow::resume_request() {
                log::warn!("identity: cannot resume the request: {status:?}");
            }
        }
    }
}

impl HttpContext for IdentityHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        Metrics::bump(self.metrics.requests);
        if !matches!(self.state, State::Start) {
            return Action::Continue;
        }
        let headers = span("id.get_headers", gw_host::headers::request_headers);
        // Before anything else: only this filter may set X-Verified-Agent-*,
        // and credentials are not the upstream's business.
        span("id.strip", || {
            for name in self.config.headers_to_strip(&headers) {
                gw_host::headers::remove_request_header(&name);
            }
        });
        let request = Request::from_headers(&headers);
        let begin = span("id.begin", || {
            self.config
                .begin(&request.info(), &headers, now().as_secs())
        });
        match begin {
            Begin::Continue => {
                self.state = State::Done;
                Action::Continue
            }
            Begin::Reply(reply) => {
                self.state = State::Done;
                gw_host::reply::send_owned(reply.status, &reply.headers, reply.body.as_bytes());
                Action::Pause
            }
            Begin::Verdict(verdict) => {
                if self.apply(verdict, &request) {
                    Action::Continue
                } else {
                    Action::Pause
                }
            }
            Begin::Check(pending) => self.check(pending, request),
        }
    }

    fn on_http_request_body(&mut self, _: usize, _: bool) -> Action {
        match self.state {
            State::Waiting { .. } => Action::Pause,
            _ => Action::Continue,
        }
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        match self.state {
            State::Waiting { .. } => Action::Pause,
            _ => Action::Continue,
        }
    }
}
