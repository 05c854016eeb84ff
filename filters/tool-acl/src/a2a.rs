//! The A2A side of the ACL stage: requests under `/a2a` when the
//! configuration has an `a2a:` section. The policy is `gw_core::a2a_acl`;
//! this only moves bytes: request facts and identity in, a refusal or a
//! plan out; on the way back, task ids of send/stream answers into the
//! shared ownership table, and `ListTasks` answers cut to the caller's
//! tasks. See `docs/a2a.md`.

use crate::{Metric, Metrics};
use gw_core::a2a_acl::config::A2aAcl;
use gw_core::a2a_acl::errors::Kind;
use gw_core::a2a_acl::owner_store::{self, OwnerStore};
use gw_core::a2a_acl::request::{self, A2aCall, ListView, Outcome, Plan};
use gw_core::a2a_acl::rules::Caller;
use gw_core::a2a_acl::tasks::{self, Shard};
use gw_core::filter_state::decision;
use gw_core::protocol::a2a::{self, Binding, A2A_PREFIX};
use gw_core::protocol::jsonrpc::{self, JsonRpcBody};
use gw_core::protocol::operation::Operation;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::protocol::sse::SseParser;
use gw_core::shared_doc::SharedDoc;
use gw_core::tool_acl::config::ToolAclConfig;
use gw_core::tool_acl::request_guard;
use gw_host::port::Host;
use gw_host::{reply, response, state};
use proxy_wasm::types::{Action, BufferType};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// CAS attempts on one shard of the ownership table.
const CAS_ATTEMPTS: usize = 8;

enum Answer {
    Pass,
    /// Buffer a JSON answer to a send, record its task ids.
    RecordJson,
    /// Read SSE events as they pass, record their task ids.
    RecordSse(Box<SseParser>),
    /// Buffer a JSON list answer and cut it to the caller's tasks.
    ListJson,
    /// A list answer the gateway cannot read: becomes an error at its end.
    Refuse,
    /// The answer was replaced: drop what else arrives.
    Drop,
}

pub(crate) struct A2aStage {
    config: Rc<ToolAclConfig>,
    metrics: Rc<Metrics>,
    outbox: Outbox,
    http_method: String,
    path: String,
    version_header: Option<String>,
    inspect_body: bool,
    plan: Plan,
    answer: Answer,
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
    pub(crate) fn start(
        h: &mut dyn Host,
        config: &Rc<ToolAclConfig>,
        metrics: &Rc<Metrics>,
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
            metrics: metrics.clone(),
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

    pub(crate) fn on_request_body(
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

    fn acl(&self) -> Option<&A2aAcl> {
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
            Outcome::Pass(plan) => {
                self.metrics.add(h, Metric::Allowed, 1);
                self.plan = plan;
                Action::Continue
            }
            Outcome::Refuse { reply: r, log } => {
                log::info!("tool_acl: a2a {log}");
                self.metrics.add(h, Metric::Denied, 1);
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
    pub(crate) fn on_call_response(&mut self, h: &mut dyn Host, token: u32, body_size: usize) {
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

    pub(crate) fn on_response_headers(&mut self, h: &mut dyn Host) -> Action {
        if self.plan.record_owner.is_none() && self.plan.list_owner.is_none() {
            return Action::Continue;
        }
        let status = response::status(h);
        if !(200..300).contains(&status) {
            return Action::Continue;
        }
        let media = response::header(h, "content-type")
            .and_then(|v| v.split(';').next().map(|m| m.trim().to_ascii_lowercase()))
            .unwrap_or_default();
        let encoded = request_guard::check_content_encoding(
            response::header(h, "content-encoding").as_deref(),
        )
        .is_err();
        let json = media == "application/json" || media.ends_with("+json");
        if self.plan.list_owner.is_some() {
            if encoded || !json {
                // A list the gateway cannot read must not pass unfiltered.
                self.answer = Answer::Refuse;
                response::set_header(h, "content-encoding", None);
                response::set_header(h, "content-length", None);
                response::set_header(h, "content-type", Some("application/json"));
                return Action::Continue;
            }
            self.answer = Answer::ListJson;
            response::set_header(h, "content-length", None);
        } else if encoded {
            log::warn!("tool_acl: a2a answer compressed; its tasks are not recorded");
        } else if media == "text/event-stream" {
            self.answer = Answer::RecordSse(Box::new(SseParser::new(
                self.acl().map_or(1 << 20, |a| a.max_response_bytes),
            )));
        } else if json {
            self.answer = Answer::RecordJson;
        }
        Action::Continue
    }

    pub(crate) fn on_response_body(
        &mut self,
        h: &mut dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let max = self.acl().map_or(1 << 20, |a| a.max_response_bytes);
        match &mut self.answer {
            Answer::Pass => Action::Continue,
            Answer::Drop => {
                response::replace_body(h, body_size, b"");
                Action::Continue
            }
            Answer::Refuse => {
                let out = if end_of_stream {
                    self.list_error("task list the gateway cannot read")
                } else {
                    String::new()
                };
                response::replace_body(h, body_size, out.as_bytes());
                Action::Continue
            }
            Answer::RecordSse(parser) => {
                let chunk = response::body(h, body_size);
                let mut ids = Vec::new();
                parser.feed(&chunk, |event| {
                    if let Ok(v) = serde_json::from_str::<Value>(&event.data) {
                        ids.extend(tasks::task_ids_in(&v));
                    }
                });
                if end_of_stream {
                    parser.finish();
                }
                self.record(h, &ids);
                Action::Continue
            }
            Answer::RecordJson => {
                if body_size > max {
                    log::warn!("tool_acl: a2a answer over maxResponseBytes; tasks not recorded");
                    self.answer = Answer::Pass;
                    return Action::Continue;
                }
                if !end_of_stream {
                    return Action::Pause;
                }
                self.answer = Answer::Pass;
                let body = response::body(h, body_size);
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    self.record(h, &tasks::task_ids_in(&v));
                }
                Action::Continue
            }
            Answer::ListJson => {
                if body_size > max {
                    self.answer = if end_of_stream {
                        Answer::Pass
                    } else {
                        Answer::Drop
                    };
                    let err = self.list_error("task list too large for the gateway to filter");
                    response::replace_body(h, body_size, err.as_bytes());
                    return Action::Continue;
                }
                if !end_of_stream {
                    return Action::Pause;
                }
                self.answer = Answer::Pass;
                let body = response::body(h, body_size);
                let Some(ListView::Owner(owner)) = self.plan.list_owner.clone() else {
                    return Action::Continue;
                };
                let now = gw_host::clock::now_ms(h);
                let mut shards: HashMap<String, Shard> = HashMap::new();
                let filtered = tasks::filter_list(&body, |id| {
                    let Some(owner) = owner.as_deref() else {
                        return false;
                    };
                    let shard = shards.entry(tasks::shard_key(id)).or_insert_with_key(|k| {
                        Shard::from_bytes(gw_host::shared_data::get(h, k).0.as_deref())
                    });
                    shard.owner(id, now) == Some(owner)
                });
                // Not a list (an error answer): it shows no task.
                if let Some(f) = filtered {
                    response::replace_body(h, body_size, f.body.as_bytes());
                }
                Action::Continue
            }
        }
    }

    /// Record `ids` as the caller's tasks: here, and in Redis when shared.
    fn record(&self, h: &mut dyn Host, ids: &[String]) {
        let (Some(owner), Some(acl)) = (self.plan.record_owner.as_deref(), self.acl()) else {
            return;
        };
        for id in ids {
            if !record_local(h, acl, id, owner) {
                continue;
            }
            if let Some(store) = &acl.isolation.redis {
                // Sent by the root on its next tick: a call made from this
                // stream would be cancelled when the stream ends.
                outbox_push(
                    &self.outbox,
                    store.set_body(id, owner, acl.isolation.ttl_ms),
                );
            }
        }
    }

    /// An error in place of a list answer, in the request's binding.
    fn list_error(&self, message: &str) -> String {
        if a2a::rest_call(&self.http_method, &self.path).is_some() {
            json!({"error": {"code": 500, "status": "INTERNAL", "message": message}}).to_string()
        } else {
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32603, "message": message}})
                .to_string()
        }
    }
}

/// How often the root sends recorded owners to Redis (when configured).
pub(crate) const OUTBOX_TICK: Duration = Duration::from_millis(50);
/// Owners waiting for the next tick, per worker; beyond this they stay
/// local (counted in the log), so a store that is down cannot grow memory.
const OUTBOX_MAX: usize = 10_000;

/// Owners recorded by this worker's requests, sent by the root on its
/// next tick (owned by the root, shared with its filters).
pub(crate) type Outbox = Rc<RefCell<Vec<String>>>;

fn outbox_push(outbox: &Outbox, body: String) {
    let mut o = outbox.borrow_mut();
    if o.len() < OUTBOX_MAX {
        o.push(body);
    } else {
        log::warn!("tool_acl: a2a owner outbox full; an owner stays local");
    }
}

/// On the root's tick: send the recorded owners to Redis (`SET NX`; the
/// answers are not needed: NX keeps the first owner whatever happens).
pub(crate) fn flush_outbox(h: &mut dyn Host, config: &ToolAclConfig, outbox: &Outbox) {
    let Some(store) = config.a2a.as_ref().and_then(|a| a.isolation.redis.as_ref()) else {
        return;
    };
    let pending = std::mem::take(&mut *outbox.borrow_mut());
    for body in pending {
        if dispatch(h, store, body).is_none() {
            log::warn!("tool_acl: a2a owner store unreachable; an owner stays local");
        }
    }
}

/// Bytes of a store answer read (an owner is an agent id).
const MAX_STORE_ANSWER: usize = 64 * 1024;

/// The caller is exempt from isolation (admins).
fn exempt(h: &mut dyn Host, acl: &A2aAcl) -> bool {
    state::verified_identity(h)
        .filter(|i| !i.agent_id.is_empty())
        .is_some_and(|i| acl.isolation.exempt.matches(&i.agent_id))
}

/// Record `owner` of `task` in this replica's table; whether it is new.
fn record_local(h: &mut dyn Host, acl: &A2aAcl, task: &str, owner: &str) -> bool {
    let now = gw_host::clock::now_ms(h);
    let per_shard = tasks::per_shard(acl.isolation.max_tasks);
    gw_host::shared_data::update(h, &tasks::shard_key(task), CAS_ATTEMPTS, |current| {
        let mut shard = Shard::from_bytes(current);
        shard
            .record(task, owner, now, acl.isolation.ttl_ms, per_shard)
            .then(|| shard.to_bytes())
    })
}

/// One webdis call; its token, or `None` when it cannot be sent.
fn dispatch(h: &mut dyn Host, store: &OwnerStore, body: String) -> Option<u32> {
    h.dispatch_http_call(
        &store.cluster,
        &[
            (":method", "POST"),
            (":path", "/"),
            (":authority", &store.authority),
            ("content-type", "text/plain"),
        ],
        Some(body.as_bytes()),
        Duration::from_millis(u64::from(store.timeout_ms)),
    )
    .ok()
}

/// The owner of `task` in the shared table.
fn owner_of(h: &mut dyn Host, task: &str, now_ms: u64) -> Option<String> {
    let (bytes, _) = gw_host::shared_data::get(h, &tasks::shard_key(task));
    Shard::from_bytes(bytes.as_deref())
        .owner(task, now_ms)
        .map(str::to_string)
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
