//! The A2A side of the ACL stage: requests under `/a2a` when the
//! configuration has an `a2a:` section. The policy is `gw_core::a2a_acl`;
//! this only moves bytes: request facts and identity in, a refusal or a
//! plan out; on the way back, task ids of send/stream answers into the
//! shared ownership table, and `ListTasks` answers cut to the caller's
//! tasks. See `docs/a2a.md`.
//!
//! This file: the request side (judge, decide, wait for Redis).
//! `answers`: the answer side. `owners`: the ownership table and its Redis
//! mirror.

use crate::answers::Answer;
use crate::owners::{dispatch, exempt, owner_of, record_local, Outbox, MAX_STORE_ANSWER};
use crate::Counters;
use gw_core::a2a_acl::config::A2aAcl;
use gw_core::a2a_acl::judge::{self, Judgement};
use gw_core::a2a_acl::owner_store;
use gw_core::a2a_acl::request::{self, A2aCall, Plan, Verdict};
use gw_core::a2a_acl::rules::Caller;
use gw_core::filter_state::decision;
use gw_core::protocol::a2a::{self, A2A_PREFIX};
use gw_core::protocol::jsonrpc::JsonRpcBody;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::tool_acl::config::ToolAclConfig;
use gw_core::tool_acl::request_guard;
use gw_host::port::Host;
use gw_host::{reply, state};
use proxy_wasm::types::{Action, BufferType};
use std::rc::Rc;

pub struct A2aStage {
    pub(crate) config: Rc<ToolAclConfig>,
    pub(crate) counters: Counters,
    pub(crate) outbox: Outbox,
    pub(crate) http_method: String,
    pub(crate) path: String,
    pub(crate) version_header: Option<String>,
    pub(crate) inspect_body: bool,
    pub(crate) plan: Plan,
    pub(crate) answer: Answer,
    /// A request waiting for Redis to name a task's owner.
    waiting: Option<Waiting>,
}

/// A request waiting for the owner store to name its task's owner.
struct Waiting {
    token: u32,
    call: A2aCall,
}

impl A2aStage {
    /// The stage for this request, if it is an A2A one the config governs,
    /// with the action for its headers.
    pub fn start(
        h: &mut dyn Host,
        config: &Rc<ToolAclConfig>,
        counters: Counters,
        outbox: &Outbox,
        headers: &[(String, String)],
        end_of_stream: bool,
    ) -> Option<(Self, Action)> {
        config.a2a.as_ref()?;
        let header = |name: &str| gw_core::protocol::http::joined_header(headers, name);
        let path = header(":path").unwrap_or_default();
        if !request_guard::is_under(&request_guard::canonical_path(&path), A2A_PREFIX) {
            return None;
        }
        let mut stage = Self {
            config: config.clone(),
            counters,
            outbox: outbox.clone(),
            http_method: header(":method").unwrap_or_default(),
            path,
            version_header: header("a2a-version"),
            inspect_body: false,
            plan: Plan::default(),
            answer: Answer::Pass,
            waiting: None,
        };
        // Answers are read (task ids, lists): ask for them uncompressed.
        if header("accept-encoding").is_some() {
            gw_host::headers::remove_request_header(h, "accept-encoding");
        }
        if end_of_stream {
            let action = match gw_host::body::inspect_bodiless(h, &stage.http_method, &stage.path) {
                Some((facts, view)) => stage.judge(h, &facts, Some(&view), b""),
                // Not an operation (an agent card alias): nothing to judge.
                None => Action::Continue,
            };
            return Some((stage, action));
        }
        if let Some(declared) =
            header("content-length").and_then(|v| v.trim().parse::<usize>().ok())
        {
            if declared > config.max_body_bytes {
                return Some((stage.too_large(h), Action::Pause));
            }
        }
        stage.inspect_body = true;
        let action = if config.hold_request_headers {
            Action::Pause
        } else {
            Action::Continue
        };
        Some((stage, action))
    }

    fn too_large(self, h: &mut dyn Host) -> Self {
        state::set_decision(h, decision::BAD_REQUEST);
        reply::jsonrpc_error(h, 413, None, -32600, "request body too large", None);
        self
    }

    pub fn on_request_body(
        &mut self,
        h: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        if !self.inspect_body {
            return Action::Continue;
        }
        if body_size > self.config.max_body_bytes {
            self.inspect_body = false;
            state::set_decision(h, decision::BAD_REQUEST);
            reply::jsonrpc_error(h, 413, None, -32600, "request body too large", None);
            return Action::Pause;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.inspect_body = false;
        let body = gw_host::body::request_body(h, body_size);
        match gw_host::body::inspect_request_on(h, &self.http_method, &self.path, &body) {
            Ok((facts, parsed)) => self.judge(h, &facts, parsed.as_ref(), &body),
            // Where JSON-RPC is expected a body we cannot read strictly
            // could hide an operation; elsewhere it names none.
            Err(e) if a2a::jsonrpc_only(&self.path) => {
                state::set_decision(h, decision::BAD_REQUEST);
                reply::jsonrpc_error(h, 400, None, e.jsonrpc_code(), &e.to_string(), None);
                Action::Pause
            }
            Err(_) => Action::Continue,
        }
    }

    pub(crate) fn acl(&self) -> Option<&A2aAcl> {
        self.config.a2a.as_ref()
    }

    fn judge(
        &mut self,
        h: &mut dyn Host,
        facts: &RequestFacts,
        parsed: Option<&JsonRpcBody>,
        body: &[u8],
    ) -> Action {
        let config = self.config.clone();
        let Some(acl) = config.a2a.as_ref() else {
            return Action::Continue;
        };
        let call = match judge::judge(acl, facts, parsed, body, &self.http_method, &self.path) {
            Judgement::NotA2a => return Action::Continue,
            Judgement::Batch => {
                state::set_decision(h, decision::BAD_REQUEST);
                reply::jsonrpc_error(h, 400, None, -32600, judge::BATCH_REFUSED, None);
                return Action::Pause;
            }
            Judgement::Call(call) => call,
        };
        // A task this replica does not know may be known to Redis: ask it
        // before deciding (the request waits).
        if let Some((store, task)) = judge::owner_to_fetch(acl, &call) {
            let now = gw_host::clock::now_ms(h);
            if owner_of(h, task, now).is_none() && !exempt(h, acl) {
                if let Some(token) = dispatch(h, store, store.get_body(task)) {
                    self.waiting = Some(Waiting { token, call });
                    return Action::Pause;
                }
                log::warn!("tool_acl: a2a owner store unreachable; task `{task}` unknown here");
            }
        }
        self.decide(h, acl, &call, None)
    }

    /// Decide `call`; `fetched`: the owner Redis named, if it was asked.
    fn decide(
        &mut self,
        h: &mut dyn Host,
        acl: &A2aAcl,
        call: &A2aCall,
        fetched: Option<&str>,
    ) -> Action {
        let identity = state::verified_identity(h).filter(|i| !i.agent_id.is_empty());
        let caller = identity.as_ref().map(|i| Caller {
            id: &i.agent_id,
            name: &i.agent_name,
        });
        let now = gw_host::clock::now_ms(h);
        let verdict = request::decide(acl, call, self.version_header.as_deref(), caller, |task| {
            owner_of(h, task, now).or_else(|| fetched.map(str::to_string))
        });
        match verdict {
            Verdict::Pass(plan) => {
                self.counters.allowed.inc(h);
                self.plan = plan;
                Action::Continue
            }
            Verdict::Refuse { reply: r, log } => {
                log::info!("tool_acl: a2a {log}");
                self.counters.denied.inc(h);
                state::set_decision(h, r.kind.decision());
                reply::send(
                    h,
                    u32::from(r.status),
                    &[("content-type", "application/json")],
                    r.body.as_bytes(),
                );
                Action::Pause
            }
        }
    }

    /// Redis answered (or not) about the owner of a waiting request's task.
    pub fn on_call_response(&mut self, h: &mut dyn Host, token: u32, body_size: usize) {
        if self.waiting.as_ref().map(|w| w.token) != Some(token) {
            return;
        }
        let Some(waiting) = self.waiting.take() else {
            return;
        };
        let config = self.config.clone();
        let Some(acl) = config.a2a.as_ref() else {
            return;
        };
        let status = gw_host::headers::call_response_status(h).map(|s| s.to_string());
        let body = h
            .buffer(
                BufferType::HttpCallResponseBody,
                0,
                body_size.min(MAX_STORE_ANSWER),
            )
            .ok()
            .flatten()
            .unwrap_or_default();
        let fetched = match owner_store::parse_get(status.as_deref(), &body) {
            Ok(found) => found,
            Err(why) => {
                // Fail closed: the task stays unknown (not found).
                log::warn!("tool_acl: a2a owner store: {why}");
                None
            }
        };
        if let (Some(owner), Some(task)) = (fetched.as_deref(), waiting.call.task_id.as_deref()) {
            // Cache it here; Redis already holds it.
            record_local(h, acl, task, owner);
        }
        if self.decide(h, acl, &waiting.call, fetched.as_deref()) == Action::Continue {
            if let Err(status) = h.resume_request() {
                log::warn!("tool_acl: a2a cannot resume the request: {status:?}");
            }
        }
    }
}
