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
use gw_core::a2a_acl::errors::Kind;
use gw_core::a2a_acl::owner_store;
use gw_core::a2a_acl::request::{self, A2aCall, Plan, Verdict};
use gw_core::a2a_acl::rules::Caller;
use gw_core::filter_state::decision;
use gw_core::protocol::a2a::{self, Binding, A2A_PREFIX};
use gw_core::protocol::jsonrpc::{self, JsonRpcBody};
use gw_core::protocol::operation::Operation;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::tool_acl::config::ToolAclConfig;
use gw_core::tool_acl::request_guard;
use gw_host::port::Host;
use gw_host::{reply, state};
use proxy_wasm::types::{Action, BufferType};
use serde_json::Value;
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

/// What a judged request needs to be decided (owned: it may wait for a
/// callout).
struct Judged {
    operation: Operation,
    binding: Binding,
    method: Option<String>,
    rest_version: Option<a2a::A2aVersion>,
    id: Option<Value>,
    task_id: Option<String>,
    skills: Vec<String>,
    unreadable_body: bool,
}

struct Waiting {
    token: u32,
    judged: Judged,
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
        let is_a2a = |m: &gw_core::protocol::request_facts::MessageFacts| {
            m.operation().is_some_and(Operation::is_a2a)
        };
        if facts.batch {
            if facts.messages.iter().any(is_a2a) {
                state::set_decision(h, decision::BAD_REQUEST);
                reply::jsonrpc_error(
                    h,
                    400,
                    None,
                    -32600,
                    "A2A does not use JSON-RPC batches",
                    None,
                );
                return Action::Pause;
            }
            return Action::Continue;
        }
        let Some(message) = facts.single().filter(|m| is_a2a(m)) else {
            return Action::Continue;
        };
        let Some(operation) = message.operation() else {
            return Action::Continue;
        };
        let binding = if facts.binding.as_deref() == Some(Binding::HttpJson.as_str()) {
            Binding::HttpJson
        } else {
            Binding::JsonRpc
        };
        let rest_version = match binding {
            Binding::HttpJson => a2a::rest_call(&self.http_method, &self.path).map(|c| c.version),
            Binding::JsonRpc => None,
        };
        let skills = if acl.judges_skills
            && matches!(operation, Operation::A2aSend | Operation::A2aStream)
        {
            send_params(parsed, body, binding)
                .map(|p| request::skill_hints(&p))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let judged = Judged {
            operation,
            binding,
            method: match binding {
                Binding::JsonRpc => message.method.clone(),
                Binding::HttpJson => None,
            },
            rest_version,
            id: message.id.clone(),
            task_id: message.task_id.clone(),
            skills,
            unreadable_body: request::unreadable_send(operation, binding, body),
        };
        // A task this replica does not know may be known to Redis: ask it
        // before deciding (the request waits).
        if let (Some(store), Some(task)) = (acl.isolation.redis.as_ref(), judged.task_id.as_deref())
        {
            let now = gw_host::clock::now_ms(h);
            if acl.isolation.enabled && owner_of(h, task, now).is_none() && !exempt(h, acl) {
                if let Some(token) = dispatch(h, store, store.get_body(task)) {
                    self.waiting = Some(Waiting { token, judged });
                    return Action::Pause;
                }
                log::warn!("tool_acl: a2a owner store unreachable; task `{task}` unknown here");
            }
        }
        self.decide(h, acl, &judged, None)
    }

    /// Decide `judged`; `fetched`: the owner Redis named, if it was asked.
    fn decide(
        &mut self,
        h: &mut dyn Host,
        acl: &A2aAcl,
        judged: &Judged,
        fetched: Option<&str>,
    ) -> Action {
        let call = A2aCall {
            operation: judged.operation,
            binding: judged.binding,
            method: judged.method.as_deref(),
            rest_version: judged.rest_version,
            id: judged.id.as_ref(),
            task_id: judged.task_id.as_deref(),
            skills: judged.skills.clone(),
            unreadable_body: judged.unreadable_body,
        };
        let identity = state::verified_identity(h).filter(|i| !i.agent_id.is_empty());
        let caller = identity.as_ref().map(|i| Caller {
            id: &i.agent_id,
            name: &i.agent_name,
        });
        let now = gw_host::clock::now_ms(h);
        let outcome = request::decide(acl, &call, self.version_header.as_deref(), caller, |task| {
            owner_of(h, task, now).or_else(|| fetched.map(str::to_string))
        });
        match outcome {
            Verdict::Pass(plan) => {
                self.counters.allowed.inc(h);
                self.plan = plan;
                Action::Continue
            }
            Verdict::Refuse { reply: r, log } => {
                log::info!("tool_acl: a2a {log}");
                self.counters.denied.inc(h);
                state::set_decision(
                    h,
                    match r.kind {
                        Kind::VersionNotSupported | Kind::InvalidRequest => decision::BAD_REQUEST,
                        Kind::TaskNotFound | Kind::AccessDenied => decision::FORBIDDEN,
                    },
                );
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
        if let (Some(owner), Some(task)) = (fetched.as_deref(), waiting.judged.task_id.as_deref()) {
            // Cache it here; Redis already holds it.
            record_local(h, acl, task, owner);
        }
        if self.decide(h, acl, &waiting.judged, fetched.as_deref()) == Action::Continue {
            if let Err(status) = h.resume_request() {
                log::warn!("tool_acl: a2a cannot resume the request: {status:?}");
            }
        }
    }
}

/// The params of a send (for skill hints): the JSON-RPC `params`, or the
/// REST body (its JSON-RPC view carries the body as params).
fn send_params(parsed: Option<&JsonRpcBody>, body: &[u8], binding: Binding) -> Option<Value> {
    if let Some(p) = parsed.and_then(|p| p.messages().first()?.params().cloned()) {
        return Some(p);
    }
    let v = jsonrpc::parse_strict_json(body).ok()?;
    match binding {
        Binding::JsonRpc => v.get("params").cloned(),
        Binding::HttpJson => Some(v),
    }
}
