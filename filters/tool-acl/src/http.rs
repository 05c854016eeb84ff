//! One request through the tool ACL.
//!
//! Request: headers are checked (content type, encoding, declared size)
//! and passed on, or held too with `holdRequestHeaders`; the body is held
//! (`Pause`) until complete, so nothing of it reaches the upstream before
//! the decision. Then: parse once (or reuse
//! the facts an earlier filter published), refuse what cannot be judged,
//! decide every governed message, answer a cacheable `tools/list` locally.
//!
//! Response: a JSON answer to a `tools/list` is buffered (bounded) and
//! rewritten; every SSE stream under an MCP endpoint is rewritten event by
//! event as it passes (tool lists filtered, `list_changed` seen).

use crate::a2a::A2aStage;
use crate::cache::{self, Plan};
use crate::{Metric, Metrics};
use gw_core::filter_state::decision;
use gw_core::protocol::jsonrpc;
use gw_core::protocol::operation::Operation;
use gw_core::protocol::request_facts::{RequestFacts, VerifiedIdentity};
use gw_core::tool_acl::authorize::{self, Verdict};
use gw_core::tool_acl::config::{BatchPolicy, ToolAclConfig};
use gw_core::tool_acl::denial::jsonrpc_error_response;
use gw_core::tool_acl::legacy_sse;
use gw_core::tool_acl::request_guard::{self, Refusal, INVALID_REQUEST};
use gw_core::tool_acl::rules::{Agent, TargetKind};
use gw_core::tool_acl::sse_rewrite::{self, Overflow, RawEvent, SseRewriter};
use gw_core::tool_acl::tools_list::{self, ReplyForm};
use gw_core::tool_acl::versions::VersionRefusal;
use gw_host::{reply, response, state};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use serde_json::{json, Value};
use std::rc::Rc;

/// Shared data: denials on the 2024-11-05 transport waiting for their
/// stream (one bounded table for all sessions, `legacy_sse::MAX_PENDING`).
const LEGACY_PENDING_KEY: &str = "gw_tool_acl.legacy_sse_pending.v1";

/// JSON-RPC "internal error", for responses the gateway cannot filter.
const INTERNAL_ERROR: i64 = -32603;

enum ResponseMode {
    Pass,
    /// Buffer the whole JSON answer to a `tools/list` and rewrite it.
    Json,
    /// Rewrite SSE events as they pass.
    Sse(Box<SseRewriter>),
    /// The answer was replaced by an error: drop whatever else arrives.
    Discard,
    /// The answer cannot be filtered (compressed): its first body chunk
    /// becomes an error, the rest is dropped.
    Refuse,
}

pub(crate) struct ToolAclHttp {
    config: Option<Rc<ToolAclConfig>>,
    metrics: Rc<Metrics>,
    /// The request is under an MCP endpoint.
    governed: bool,
    /// The request has a body to inspect.
    inspect_body: bool,
    /// The recipe per-operation path's operation (`/mcp/tools/call`): picks
    /// the denial format in `auto` mode.
    path_operation: Option<Operation>,
    identity: Option<Option<VerifiedIdentity>>,
    /// Ids of the `tools/list` requests in this body (cache entries are
    /// stored only for these).
    list_ids: Vec<Value>,
    plan: Option<Plan>,
    response_status: u32,
    /// The form of the upstream's answer (a cache entry remembers it).
    response_form: ReplyForm,
    response: ResponseMode,
    /// Upstream cache key, resolved once.
    shared_key: Option<Option<String>>,
    /// The 2024-11-05 transport's session, when this is a POST to its
    /// messages URL (`legacy_sse`): answers go to the GET stream.
    legacy_session: Option<String>,
    /// The session of a 2024-11-05 GET stream, from its `endpoint` event.
    stream_session: Option<String>,
    /// Request headers the body phase needs (Envoy makes request headers
    /// readable only during `on_http_request_headers` once it continued).
    headers: RequestHeaders,
    /// An A2A request (`a2a:` configured): the A2A stage handles it whole.
    a2a: Option<A2aStage>,
}

#[derive(Default)]
struct RequestHeaders {
    mcp_method: Option<String>,
    mcp_name: Option<String>,
    protocol_version: Option<String>,
    accept: Option<String>,
}

impl ToolAclHttp {
    pub(crate) fn new(config: Option<Rc<ToolAclConfig>>, metrics: Rc<Metrics>) -> Self {
        Self {
            config,
            metrics,
            governed: false,
            inspect_body: false,
            path_operation: None,
            identity: None,
            list_ids: Vec::new(),
            plan: None,
            response_status: 0,
            response_form: ReplyForm::Json,
            response: ResponseMode::Pass,
            shared_key: None,
            headers: RequestHeaders::default(),
            legacy_session: None,
            stream_session: None,
            a2a: None,
        }
    }

    /// The verified identity from filter state (never from a header).
    fn identity(&mut self) -> Option<&VerifiedIdentity> {
        if self.identity.is_none() {
            let found = state::verified_identity().filter(|i| !i.agent_id.is_empty());
            if found.is_none() {
                self.metrics.add(Metric::NoIdentity, 1);
            }
            self.identity = Some(found);
        }
        self.identity.as_ref().and_then(Option::as_ref)
    }

    fn shared_key(&mut self) -> Option<String> {
        self.shared_key
            .get_or_insert_with(|| cache::upstream().map(|u| cache::shared_key(&u)))
            .clone()
    }

    fn refuse(&self, refusal: &Refusal, id: Option<&Value>) -> Action {
        self.metrics.add(Metric::BadRequest, 1);
        state::set_decision(decision::BAD_REQUEST);
        let body = jsonrpc_error_response(
            id,
            json!({"code": refusal.jsonrpc_code, "message": refusal.message}),
        );
        reply::send(
            u32::from(refusal.http_status),
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        Action::Pause
    }

    /// Version pinning: the protocol's error, before the upstream.
    fn refuse_version(&self, refusal: VersionRefusal, id: Option<&Value>) -> Action {
        self.metrics.add(Metric::VersionRefused, 1);
        self.metrics.add(Metric::BadRequest, 1);
        state::set_decision(decision::BAD_REQUEST);
        let body = jsonrpc_error_response(id, refusal.error);
        reply::send(
            u32::from(refusal.http_status),
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        Action::Pause
    }

    fn fail_closed(&self) -> Action {
        self.refuse(
            &Refusal::new(500, INTERNAL_ERROR, "tool ACL is not configured"),
            None,
        )
    }
}

impl Context for ToolAclHttp {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        // Only the A2A stage calls out (the task owner store, Redis).
        if let Some(a2a) = self.a2a.as_mut() {
            a2a.on_call_response(token, body_size);
        }
    }
}

impl HttpContext for ToolAclHttp {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        self.metrics.add(Metric::Requests, 1);
        let Some(config) = self.config.clone() else {
            return self.fail_closed();
        };
        // One host call for every header we need. Repeated headers are
        // joined, so a second Content-Encoding or Mcp-Name cannot hide
        // behind a first one that looks fine.
        let all = gw_host::headers::request_headers();
        let header = |name: &str| -> Option<String> {
            let values: Vec<&str> = all
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        if let Some((stage, action)) = A2aStage::start(&config, &self.metrics, &all, end_of_stream)
        {
            self.a2a = Some(stage);
            return action;
        }
        let path = header(":path").unwrap_or_default();
        let canonical = request_guard::canonical_path(&path);
        let Some(endpoint) = config
            .endpoints
            .iter()
            .find(|e| request_guard::is_under(&canonical, e))
        else {
            return Action::Continue;
        };
        self.governed = true;
        self.legacy_session = legacy_sse::session_of(&path);
        self.path_operation = request_guard::path_operation(&canonical, endpoint);
        self.metrics.add(Metric::Inspected, 1);
        // Tool lists in the answer are filtered here, so the answer must
        // be readable: ask the upstream for an uncompressed one (an answer
        // compressed anyway is refused, never passed on unfiltered).
        if header("accept-encoding").is_some() {
            gw_host::headers::remove_request_header("accept-encoding");
        }
        // Version pinning. A header is judged now, whatever the request; a
        // request without one is judged as 2025-03-26 (what servers must
        // assume), except an `initialize`, known only once the body is read.
        let protocol_version = header("mcp-protocol-version");
        if let Err(r) = config
            .protocol_versions
            .check_header(protocol_version.as_deref(), !end_of_stream)
        {
            return self.refuse_version(r, None);
        }
        if end_of_stream {
            // No body (GET of the SSE stream, DELETE of a session): nothing
            // names a tool; the response side still filters SSE streams.
            return Action::Continue;
        }
        if let Err(r) = request_guard::check_content_encoding(header("content-encoding").as_deref())
        {
            return self.refuse(&r, None);
        }
        if let Err(r) = request_guard::check_content_type(header("content-type").as_deref()) {
            return self.refuse(&r, None);
        }
        if let Some(declared) =
            header("content-length").and_then(|v| v.trim().parse::<usize>().ok())
        {
            if let Err(r) = request_guard::check_body_size(declared, config.max_body_bytes) {
                return self.refuse(&r, None);
            }
        }
        self.headers = RequestHeaders {
            mcp_method: header("mcp-method"),
            mcp_name: header("mcp-name"),
            protocol_version,
            accept: header("accept"),
        };
        self.inspect_body = true;
        if config.hold_request_headers {
            // StopIteration (with allow_on_headers_stop_iteration): the body
            // callbacks still run, and the Continue that ends them releases
            // headers and body together.
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(a2a) = self.a2a.as_mut() {
            return a2a.on_request_body(body_size, end_of_stream);
        }
        if !self.inspect_body {
            return Action::Continue;
        }
        let Some(config) = self.config.clone() else {
            return self.fail_closed();
        };
        if let Err(r) = request_guard::check_body_size(body_size, config.max_body_bytes) {
            self.inspect_body = false;
            return self.refuse(&r, None);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.inspect_body = false;
        let body = gw_host::body::request_body(body_size);
        let (facts, parsed) = match gw_host::body::inspect_request(&body) {
            Ok(found) => found,
            Err(e) => {
                return self.refuse(&Refusal::new(400, e.jsonrpc_code(), e.to_string()), None);
            }
        };
        let single_id = facts.single().and_then(|m| m.id.clone());
        if let Err(r) = self.check_shape(&config, &facts) {
            return self.refuse(&r, single_id.as_ref());
        }
        if let Err(r) = self.check_versions(&config, &facts, parsed.as_ref(), &body) {
            return self.refuse_version(r, single_id.as_ref());
        }
        if let Some(action) = self.authorize(&config, &facts, body.len()) {
            return action;
        }
        self.metrics.add(Metric::Allowed, 1);
        self.prepare_tools_list(&config, &facts, parsed, &body)
    }

    fn on_http_response_headers(&mut self, _: usize, _end_of_stream: bool) -> Action {
        if let Some(a2a) = self.a2a.as_mut() {
            return a2a.on_response_headers();
        }
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        if !self.governed || config.filtered_lists().is_empty() {
            return Action::Continue;
        }
        self.response_status = response::status();
        let media = response::header("content-type")
            .and_then(|v| v.split(';').next().map(|m| m.trim().to_ascii_lowercase()))
            .unwrap_or_default();
        let encoded =
            request_guard::check_content_encoding(response::header("content-encoding").as_deref())
                .is_err();
        if encoded && (media == "text/event-stream" || !self.list_ids.is_empty()) {
            // A compressed stream or list answer cannot be filtered: an
            // upstream that ignored our identity Accept-Encoding gets its
            // answer replaced by an error, never passed through unread.
            self.response = ResponseMode::Refuse;
            response::set_header("content-encoding", None);
            response::set_header("content-length", None);
            response::set_header("content-type", Some("application/json"));
            return Action::Continue;
        }
        if media == "text/event-stream" {
            self.response_form = ReplyForm::Sse;
            // Streams answering a tools/list fail closed on an event too big
            // to filter; other streams (tool results, the GET stream) pass
            // such an event through unexamined rather than break a large
            // tool result.
            let overflow = if self.list_ids.is_empty() {
                Overflow::PassThrough
            } else {
                Overflow::Withhold
            };
            self.response = ResponseMode::Sse(Box::new(SseRewriter::with_overflow(
                config.tools_list.max_response_bytes,
                overflow,
            )));
            response::set_header("content-length", None);
        } else if !self.list_ids.is_empty()
            && (media == "application/json" || media.ends_with("+json"))
        {
            // A JSON answer to a list request: rewrite it whole. (MCP
            // clients read lists from JSON or SSE only.)
            self.response = ResponseMode::Json;
            response::set_header("content-length", None);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(a2a) = self.a2a.as_mut() {
            return a2a.on_response_body(body_size, end_of_stream);
        }
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        match &self.response {
            ResponseMode::Pass => Action::Continue,
            ResponseMode::Discard => {
                response::replace_body(body_size, b"");
                Action::Continue
            }
            ResponseMode::Refuse => {
                self.response = ResponseMode::Discard;
                let err = self.list_error("compressed response: the gateway cannot filter it");
                response::replace_body(body_size, err.as_bytes());
                Action::Continue
            }
            ResponseMode::Json => {
                if body_size > config.tools_list.max_response_bytes {
                    self.response = if end_of_stream {
                        ResponseMode::Pass
                    } else {
                        ResponseMode::Discard
                    };
                    let err =
                        self.list_error("tools/list response too large for the gateway to filter");
                    response::replace_body(body_size, err.as_bytes());
                    return Action::Continue;
                }
                if !end_of_stream {
                    return Action::Pause;
                }
                self.response = ResponseMode::Pass;
                let body = response::body(body_size);
                let out = match self.filter_payload(&config, &body) {
                    Some(rewritten) => rewritten,
                    None if body.iter().all(u8::is_ascii_whitespace) => return Action::Continue,
                    None => {
                        self.list_error("tools/list response is not JSON the gateway can filter")
                    }
                };
                response::replace_body(body_size, out.as_bytes());
                Action::Continue
            }
            ResponseMode::Sse(_) => {
                let chunk = response::body(body_size);
                let out = self.rewrite_sse(&config, &chunk, end_of_stream);
                if out != chunk {
                    response::replace_body(body_size, &out);
                }
                Action::Continue
            }
        }
    }
}

impl ToolAclHttp {
    /// Everything but the ACL itself: batches, Mcp-* headers. (A recipe
    /// per-operation path does not have to agree with the body's method: the
    /// ACL judges the body, which is what the server executes.)
    fn check_shape(&self, config: &ToolAclConfig, facts: &RequestFacts) -> Result<(), Refusal> {
        if facts.batch && config.batches == BatchPolicy::Reject {
            return Err(Refusal::new(
                400,
                INVALID_REQUEST,
                "JSON-RPC batches are not accepted",
            ));
        }
        request_guard::check_mcp_headers(
            self.headers.mcp_method.as_deref(),
            self.headers.mcp_name.as_deref(),
            facts,
        )
    }

    /// Version pinning of a request with a body: without a header, only an
    /// `initialize` may leave it out; every `initialize` must ask for a
    /// listed revision.
    fn check_versions(
        &self,
        config: &ToolAclConfig,
        facts: &RequestFacts,
        parsed: Option<&jsonrpc::JsonRpcBody>,
        body: &[u8],
    ) -> Result<(), VersionRefusal> {
        let is_initialize = |op: Option<Operation>| op == Some(Operation::McpInitialize);
        let initializing = facts.single().is_some_and(|m| is_initialize(m.operation()));
        if self.headers.protocol_version.is_none() {
            config.protocol_versions.check_header(None, initializing)?;
        }
        if !facts.messages.iter().any(|m| is_initialize(m.operation())) {
            return Ok(());
        }
        // The facts carry no params; an earlier filter may have parsed the
        // body already, then parse it again (initialize is rare and small).
        let reparsed;
        let parsed = match parsed {
            Some(p) => p,
            None => match jsonrpc::parse(body) {
                Ok(p) => {
                    reparsed = p;
                    &reparsed
                }
                // The earlier filter parsed it strictly, so this cannot
                // happen; fail closed as an initialize naming no version.
                Err(_) => return config.protocol_versions.check_initialize(None),
            },
        };
        for m in parsed.messages() {
            if m.method() == Some("initialize") {
                config.protocol_versions.check_initialize(m.params())?;
            }
        }
        Ok(())
    }

    /// Apply the ACL's verdict; `Some` when the request was answered.
    fn authorize(
        &mut self,
        config: &ToolAclConfig,
        facts: &RequestFacts,
        body_len: usize,
    ) -> Option<Action> {
        let on_operation_path = self.path_operation.is_some();
        let verdict = authorize::authorize(
            config,
            facts,
            || self.identity().cloned(),
            on_operation_path,
        );
        match verdict {
            Verdict::Allow => None,
            Verdict::Refuse { refusal, id } => Some(self.refuse(&refusal, id.as_ref())),
            Verdict::Deny { reply, first } => {
                log::info!(
                    "tool_acl: denied {} `{}` for agent `{}` ({})",
                    first.method,
                    first.tool_name,
                    first.agent_id,
                    first.reason
                );
                self.metrics.add(Metric::Denied, 1);
                state::set_decision(decision::TOOL_DENIED);
                if let Some(action) =
                    self.deny_on_legacy_stream(config, facts, &reply.body, body_len)
                {
                    return Some(action);
                }
                reply::send_owned(
                    u32::from(reply.status),
                    &reply.headers,
                    reply.body.as_bytes(),
                );
                Some(Action::Pause)
            }
        }
    }

    /// 2024-11-05 transport: the client reads answers only from its GET
    /// stream, so a denial in this POST's response would never be read.
    /// Forward a `ping` with the same id instead (nothing runs upstream) and
    /// leave the denial for the GET stream to put in place of the ping's
    /// answer (`legacy_sse`). `None`: not that transport (or a batch, a
    /// notification), answer here as usual.
    fn deny_on_legacy_stream(
        &self,
        config: &ToolAclConfig,
        facts: &RequestFacts,
        reply_body: &str,
        body_len: usize,
    ) -> Option<Action> {
        let session = self.legacy_session.clone()?;
        let id = facts.single()?.id.clone()?;
        let answer = legacy_sse::denial_answer(reply_body, &id, config.denial.jsonrpc_code);
        let now = gw_host::clock::now_ms();
        let pending = legacy_sse::Pending {
            session,
            id: id.clone(),
            answer,
            expires_at_ms: now.saturating_add(legacy_sse::PENDING_TTL_MS),
        };
        let stored = gw_host::shared_data::update(LEGACY_PENDING_KEY, 8, |current| {
            let mut table = legacy_sse::PendingDenials::from_bytes(current);
            table.add(pending.clone(), now);
            Some(table.to_bytes())
        });
        if !stored {
            // Cannot promise the stream an answer: refuse here after all.
            return None;
        }
        let ping = legacy_sse::ping_in_place_of(&id, body_len);
        if gw_host::body::replace_request_body(body_len, &ping).is_err() {
            log::warn!("tool_acl: cannot replace a denied 2024-11-05 message; refusing in place");
            return None;
        }
        Some(Action::Continue)
    }

    /// On a 2024-11-05 GET stream: the denial waiting for this answer, if any.
    fn legacy_denial_for(&self, data: &str) -> Option<Value> {
        let session = self.stream_session.as_deref()?;
        let id = legacy_sse::answer_id(data)?;
        let now = gw_host::clock::now_ms();
        let (bytes, _) = gw_host::shared_data::get(LEGACY_PENDING_KEY);
        let mut table = legacy_sse::PendingDenials::from_bytes(bytes.as_deref());
        let found = table.take(session, &id, now)?;
        let removed = gw_host::shared_data::update(LEGACY_PENDING_KEY, 8, |current| {
            let mut table = legacy_sse::PendingDenials::from_bytes(current);
            table.take(session, &id, now)?;
            Some(table.to_bytes())
        });
        if !removed {
            log::debug!("tool_acl: pending 2024-11-05 denial already taken or not removable");
        }
        Some(found)
    }

    /// Remember the ids of the list requests whose results are filtered
    /// (`ToolAclConfig::filtered_lists`); answer a `tools/list` from the cache.
    fn prepare_tools_list(
        &mut self,
        config: &ToolAclConfig,
        facts: &RequestFacts,
        parsed: Option<jsonrpc::JsonRpcBody>,
        body: &[u8],
    ) -> Action {
        let kinds = config.filtered_lists();
        if kinds.is_empty() {
            return Action::Continue;
        }
        let list_operation = |op: Operation| match op {
            Operation::McpToolsList => Some(TargetKind::Tool),
            Operation::McpResourcesList => Some(TargetKind::Resource),
            Operation::McpPromptsList => Some(TargetKind::Prompt),
            _ => None,
        };
        self.list_ids = facts
            .messages
            .iter()
            .filter(|m| {
                m.operation()
                    .and_then(list_operation)
                    .is_some_and(|kind| kinds.contains(&kind))
            })
            .filter_map(|m| m.id.clone())
            .collect();
        // The cache is for tool lists, filtered per agent: only when tools
        // are governed.
        if !kinds.contains(&TargetKind::Tool) {
            return Action::Continue;
        }
        if self.legacy_session.is_some() {
            // A 2024-11-05 client reads answers from its GET stream only: a
            // cached answer in this POST's response would never be read.
            return Action::Continue;
        }
        let (Some(_), Some(message)) = (config.tools_list.cache, facts.single()) else {
            return Action::Continue;
        };
        let (Some(Operation::McpToolsList), Some(id)) = (message.operation(), message.id.clone())
        else {
            return Action::Continue;
        };
        // The facts do not carry params; a tools/list body is small, so parse
        // it here if an earlier filter did the first parse.
        let parsed = match parsed {
            Some(p) => p,
            None => match jsonrpc::parse(body) {
                Ok(p) => p,
                Err(_) => return Action::Continue,
            },
        };
        let Some(Some(cursor)) = parsed
            .messages()
            .first()
            .map(|m| tools_list::cacheable_params(m.params()))
        else {
            return Action::Continue;
        };
        let Some(shared_key) = self.shared_key() else {
            return Action::Continue;
        };
        let protocol_version = self.headers.protocol_version.clone().unwrap_or_default();
        let agent_id = self.identity().map(|i| i.agent_id.clone());
        let now = gw_host::clock::now_ms();
        let (entry, generation) = cache::lookup(
            &shared_key,
            &protocol_version,
            cursor.as_deref(),
            agent_id.as_deref(),
            now,
        );
        if let Some(entry) = entry {
            self.metrics.add(Metric::CacheHit, 1);
            let identity = self.identity().cloned();
            let view = config.acl.view(identity.as_ref().map(|i| Agent {
                id: &i.agent_id,
                name: &i.agent_name,
            }));
            let json = tools_list::cached_response(&entry, &id, &view, now);
            self.metrics.add(Metric::ListFiltered, 1);
            // In the form the upstream answered, so a cached answer looks
            // like a fresh one (unless the client takes only the other).
            match tools_list::reply_form(self.headers.accept.as_deref(), entry.form) {
                ReplyForm::Sse => reply::send(
                    200,
                    &[
                        ("content-type", "text/event-stream"),
                        ("cache-control", "no-cache"),
                    ],
                    tools_list::sse_message(&json).as_bytes(),
                ),
                ReplyForm::Json => reply::send(
                    200,
                    &[("content-type", "application/json")],
                    json.as_bytes(),
                ),
            }
            return Action::Pause;
        }
        self.metrics.add(Metric::CacheMiss, 1);
        self.plan = Some(Plan {
            shared_key,
            id,
            protocol_version,
            cursor,
            generation,
        });
        Action::Continue
    }

    /// Filter one JSON-RPC payload for this agent; store unfiltered pages;
    /// see list-changed notifications. `None` if it is not JSON.
    fn filter_payload(&mut self, config: &ToolAclConfig, payload: &[u8]) -> Option<String> {
        let identity = self.identity().cloned();
        let agent = identity.as_ref().map(|i| Agent {
            id: &i.agent_id,
            name: &i.agent_name,
        });
        let view = config.acl.view(agent);
        let cache_ids: Vec<Value> = self.plan.iter().map(|p| p.id.clone()).collect();
        let filtered =
            tools_list::filter_payload(payload, &view, config.filtered_lists(), &cache_ids).ok()?;
        if filtered.list_changed {
            if let Some(key) = self.shared_key() {
                if cache::invalidate(&key) {
                    self.metrics.add(Metric::CacheInvalidated, 1);
                }
            }
        }
        if filtered.rewritten.is_some() {
            self.metrics.add(Metric::ListFiltered, 1);
            self.metrics
                .add(Metric::ToolsHidden, filtered.removed as u64);
        }
        if let (Some(plan), Some(cache_config)) = (self.plan.take(), config.tools_list.cache) {
            let ok_status = self.response_status == 200;
            match filtered.unfiltered.iter().find(|(id, _)| *id == plan.id) {
                Some((_, result)) if ok_status => {
                    let now = gw_host::clock::now_ms();
                    if cache::store(
                        &plan,
                        result,
                        self.response_form,
                        identity.as_ref().map(|i| i.agent_id.as_str()),
                        &cache_config,
                        now,
                    ) {
                        self.metrics.add(Metric::CacheStore, 1);
                    }
                }
                // Not this event: keep waiting for the answer.
                _ => self.plan = Some(plan),
            }
        }
        Some(
            filtered
                .rewritten
                .unwrap_or_else(|| String::from_utf8_lossy(payload).into_owned()),
        )
    }

    fn rewrite_sse(
        &mut self,
        config: &ToolAclConfig,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Vec<u8> {
        let ResponseMode::Sse(mut rewriter) =
            std::mem::replace(&mut self.response, ResponseMode::Pass)
        else {
            return chunk.to_vec();
        };
        let out = rewriter.feed(chunk, |raw| match raw {
            RawEvent::Oversized => {
                log::warn!("tool_acl: SSE event over toolsList.maxResponseBytes withheld");
                Some(
                    tools_list::sse_message(
                        &self.list_error("event too large for the gateway to filter"),
                    )
                    .into_bytes(),
                )
            }
            RawEvent::Complete(bytes) => {
                let event = sse_rewrite::parse_event(bytes)?;
                if event.event.as_deref() == Some("endpoint") {
                    // 2024-11-05 transport: this stream's session.
                    self.stream_session = legacy_sse::session_of(&event.data);
                    return None;
                }
                if let Some(denial) = self.legacy_denial_for(&event.data) {
                    return Some(sse_rewrite::serialize_event(
                        &gw_core::protocol::sse::SseEvent {
                            data: denial.to_string(),
                            ..event
                        },
                    ));
                }
                if !tools_list::may_concern_lists(&event.data) {
                    return None;
                }
                let before = event.data.clone();
                let data = self.filter_payload(config, before.as_bytes());
                match data {
                    Some(data) if data == before => None,
                    Some(data) => Some(sse_rewrite::serialize_event(
                        &gw_core::protocol::sse::SseEvent { data, ..event },
                    )),
                    // Not JSON: no tool list can hide in it.
                    None => None,
                }
            }
        });
        if end_of_stream {
            rewriter.finish();
        } else {
            self.response = ResponseMode::Sse(rewriter);
        }
        out
    }

    /// A JSON-RPC error in place of a tool list the gateway cannot filter.
    fn list_error(&self, message: &str) -> String {
        let id = match self.list_ids.as_slice() {
            [only] => Some(only),
            _ => None,
        };
        jsonrpc_error_response(id, json!({"code": INTERNAL_ERROR, "message": message})).to_string()
    }
}
