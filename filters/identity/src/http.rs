//! Per-request context: one state machine per request, so that nothing
//! (a body chunk, trailers) can release a request while its credential is
//! being checked.

use crate::metrics::Metrics;
use gw_core::identity::budget::CalloutBudget;
use gw_core::identity::cache;
use gw_core::identity::callout::{CalloutResponse, Outcome, MAX_RESPONSE_BYTES};
use gw_core::identity::config::IdentityConfig;
use gw_core::identity::credentials::CredentialKind;
use gw_core::identity::denial::Denial;
use gw_core::identity::policy::{Begin, Pending, Verdict};
use gw_core::identity::protected_resource::RequestLine;
use gw_core::{filter_state, identity::api_key, identity::introspection};
use gw_host::clock::now;
use gw_host::filter::Filter;
use gw_host::port::Host;
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

enum State {
    /// Headers not seen yet.
    Start,
    /// A callout is in flight; the request is paused until it answers.
    Waiting {
        token: u32,
        pending: Box<Pending>,
        request: RequestLine,
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

    fn cached(&self, h: &mut dyn Host, hash: &str) -> Option<Outcome> {
        let key = self.slot(hash)?;
        let (bytes, _) = h.shared_data(&key).ok()?;
        cache::decode(&bytes?, hash, now(h).as_millis() as u64)
    }

    fn remember(&self, h: &mut dyn Host, pending: &Pending, outcome: &Outcome) {
        let hash = pending.hash.as_str();
        let Some(key) = self.slot(hash) else { return };
        let Some(bytes) = cache::encode(
            hash,
            pending.kind,
            outcome,
            now(h).as_millis() as u64,
            &self.config.cache,
        ) else {
            return;
        };
        // Last writer wins: a slot holds one credential's result, and two
        // workers checking the same credential store the same answer.
        if let Err(status) = h.set_shared_data(&key, Some(&bytes), None) {
            log::debug!("identity: cannot cache a result: {status:?}");
        }
    }

    /// Apply a verdict. Returns true when the request may continue.
    fn apply(&mut self, h: &mut dyn Host, verdict: Verdict, request: &RequestLine) -> bool {
        self.state = State::Done;
        match verdict {
            Verdict::Allow(allowed) => {
                for (name, value) in &allowed.headers {
                    gw_host::state::set_request_header(h, name, Some(value));
                }
                gw_host::state::set(
                    h,
                    filter_state::VERIFIED_IDENTITY,
                    &allowed.identity.to_json(),
                );
                self.metrics.allowed.inc(h);
                true
            }
            Verdict::Deny(denial) => {
                self.deny(h, &denial, request);
                false
            }
        }
    }

    fn deny(&mut self, h: &mut dyn Host, denial: &Denial, request: &RequestLine) {
        self.state = State::Done;
        if denial.status == 503 {
            log::warn!(
                "identity: {} {}: {}",
                request.method,
                request.path,
                denial.message
            );
            self.metrics.unavailable.inc(h);
        } else {
            log::debug!(
                "identity: {} {}: {} {}",
                request.method,
                request.path,
                denial.status,
                denial.error
            );
            self.metrics.denied.inc(h);
        }
        gw_host::state::set_decision(h, denial.decision());
        let reply = self.config.reply(denial, &request.info());
        gw_host::reply::send_local(h, &reply);
    }

    fn check(&mut self, h: &mut dyn Host, pending: Pending, request: RequestLine) -> Action {
        if let Some(outcome) = self.cached(h, &pending.hash) {
            self.metrics.cache_hits.inc(h);
            let verdict =
                self.config
                    .finish(pending.kind, outcome, &request.info(), now(h).as_secs());
            return if self.apply(h, verdict, &request) {
                Action::Continue
            } else {
                Action::Pause
            };
        }
        // The cache did not know the credential: a callout, if this worker
        // has a slot left for one.
        let Some(slot) = CalloutSlot::acquire(&self.budget) else {
            self.metrics.callouts_rejected.inc(h);
            let limit = self.config.max_callouts_in_flight;
            self.deny(h, &Denial::callouts_exhausted(limit), &request);
            return Action::Pause;
        };
        let callout = &pending.callout;
        let headers: Vec<(&str, &str)> = callout
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        match h.dispatch_http_call(
            &callout.cluster,
            &headers,
            Some(&callout.body),
            Duration::from_millis(callout.timeout_ms),
        ) {
            Ok(token) => {
                self.metrics.callouts.inc(h);
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
                self.deny(h, &denial, &request);
                Action::Pause
            }
        }
    }
}

impl Filter for IdentityHttp {
    fn call_response(
        &mut self,
        h: &mut dyn Host,
        token_id: u32,
        _: usize,
        body_size: usize,
        _: usize,
    ) {
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
        let status = gw_host::headers::call_response_status(h);
        // One byte past the limit is enough to call the answer too long.
        let read = body_size.min(MAX_RESPONSE_BYTES + 1);
        let body = h
            .buffer(BufferType::HttpCallResponseBody, 0, read)
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
        self.remember(h, &pending, &outcome);
        let verdict = self
            .config
            .finish(pending.kind, outcome, &request.info(), now(h).as_secs());
        if self.apply(h, verdict, &request) {
            if let Err(status) = h.resume_request() {
                log::warn!("identity: cannot resume the request: {status:?}");
            }
        }
    }

    fn request_headers(&mut self, h: &mut dyn Host, _: usize, _: bool) -> Action {
        self.metrics.requests.inc(h);
        if !matches!(self.state, State::Start) {
            return Action::Continue;
        }
        let headers = gw_host::headers::request_headers(h);
        // Before anything else: only this filter may set X-Verified-Agent-*,
        // and credentials are not the upstream's business.
        for name in self.config.headers_to_strip(&headers) {
            gw_host::headers::remove_request_header(h, &name);
        }
        let request = RequestLine::from_headers(&headers);
        let begin = self
            .config
            .begin(&request.info(), &headers, now(h).as_secs());
        match begin {
            Begin::Continue => {
                self.state = State::Done;
                Action::Continue
            }
            Begin::Reply(reply) => {
                self.state = State::Done;
                gw_host::reply::send_local(h, &reply);
                Action::Pause
            }
            Begin::Verdict(verdict) => {
                if self.apply(h, verdict, &request) {
                    Action::Continue
                } else {
                    Action::Pause
                }
            }
            Begin::Check(pending) => self.check(h, pending, request),
        }
    }

    fn request_body(&mut self, _: &mut dyn Host, _: usize, _: bool) -> Action {
        match self.state {
            State::Waiting { .. } => Action::Pause,
            _ => Action::Continue,
        }
    }

    fn request_trailers(&mut self, _: &mut dyn Host, _: usize) -> Action {
        match self.state {
            State::Waiting { .. } => Action::Pause,
            _ => Action::Continue,
        }
    }
}
