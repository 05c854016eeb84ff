//! Lists in the answers: the cache in front of `tools/list`, per-agent
//! filtering of JSON and SSE answers (the choices are
//! `gw_core::tool_acl::list_plan`'s, the rewriting `tools_list`'s and
//! `sse_rewrite`'s).

use crate::cache::{self, Plan};
use crate::{Counters, IdentityMemo};
use gw_core::protocol::jsonrpc;
use gw_core::protocol::jsonrpc::codes::INTERNAL_ERROR;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::tool_acl::config::ToolAclConfig;
use gw_core::tool_acl::denial::jsonrpc_error_response;
use gw_core::tool_acl::legacy_sse;
use gw_core::tool_acl::list_plan::{self, CacheCandidate, JsonChunk, ResponsePlan};
use gw_core::tool_acl::rules::Agent;
use gw_core::tool_acl::sse_rewrite::{self, RawEvent, SseRewriter};
use gw_core::tool_acl::tools_list::{self, ReplyForm};
use gw_host::port::Host;
use gw_host::{reply, response};
use proxy_wasm::types::Action;
use serde_json::{json, Value};

/// Shared data: denials on the 2024-11-05 transport waiting for their
/// stream (one bounded table for all sessions, `legacy_sse::MAX_PENDING`).
/// The request side (tool-acl's `legacy`) leaves them, the GET stream takes
/// them.
pub const LEGACY_PENDING_KEY: &str = "gw_tool_acl.legacy_sse_pending.v1";

pub(crate) enum ResponseMode {
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

/// What the answer side needs of the request: its body, as read once
/// (`gw_host::body::inspect_request`), and the headers it kept (they are
/// readable only during the request's header callback).
pub struct ListRequest<'a> {
    pub facts: &'a RequestFacts,
    pub parsed: Option<jsonrpc::JsonRpcBody>,
    pub body: &'a [u8],
    pub protocol_version: Option<String>,
    pub accept: Option<String>,
    /// A POST to the 2024-11-05 transport's messages URL: its answers go to
    /// the GET stream, so it is never answered from the cache.
    pub legacy: bool,
}

/// The answer side of one request.
pub struct ListAnswers {
    counters: Counters,
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
    /// The session of a 2024-11-05 GET stream, from its `endpoint` event.
    stream_session: Option<String>,
    /// The path of a request without a body (a GET stream), as the client
    /// sent it: picks the `endpoint` event's prefix rewrite.
    stream_path: String,
}

impl ListAnswers {
    pub fn new(counters: Counters) -> Self {
        Self {
            counters,
            list_ids: Vec::new(),
            plan: None,
            response_status: 0,
            response_form: ReplyForm::Json,
            response: ResponseMode::Pass,
            shared_key: None,
            stream_session: None,
            stream_path: String::new(),
        }
    }

    /// A request without a body (a GET stream): its path as the client sent it.
    pub fn set_stream_path(&mut self, path: String) {
        self.stream_path = path;
    }

    fn shared_key(&mut self, h: &mut dyn Host) -> Option<String> {
        self.shared_key
            .get_or_insert_with(|| cache::upstream(h).map(|u| cache::shared_key(&u)))
            .clone()
    }

    /// The response headers of a governed request: how its body is read.
    pub fn on_response_headers(&mut self, h: &mut dyn Host, config: &ToolAclConfig) -> Action {
        let content_type = response::header(h, "content-type");
        let answers_lists = !self.list_ids.is_empty();
        // Content-Encoding only matters to a stream or a list answer (see
        // ResponsePlan::choose): a request with no list whose answer is no
        // stream (a JSON tools/call result) passes whatever its encoding,
        // so that header is read only when it can change the plan (one
        // host call less per typical request, issue 13).
        let mut plan = ResponsePlan::choose(content_type.as_deref(), None, answers_lists);
        if answers_lists || plan != ResponsePlan::Pass {
            let content_encoding = response::header(h, "content-encoding");
            plan = ResponsePlan::choose(
                content_type.as_deref(),
                content_encoding.as_deref(),
                answers_lists,
            );
        }
        // The status is for the list filtering (a cached list answer must
        // be a 200): read only when the answer is filtered.
        if matches!(plan, ResponsePlan::Json | ResponsePlan::Sse(_)) {
            self.response_status = response::status(h);
        }
        match plan {
            ResponsePlan::Pass => {}
            ResponsePlan::Refuse => {
                self.response = ResponseMode::Refuse;
                response::set_header(h, "content-encoding", None);
                response::set_header(h, "content-length", None);
                response::set_header(h, "content-type", Some("application/json"));
            }
            ResponsePlan::Sse(overflow) => {
                self.response_form = ReplyForm::Sse;
                self.response = ResponseMode::Sse(Box::new(SseRewriter::with_overflow(
                    config.tools_list.max_response_bytes,
                    overflow,
                )));
                response::set_header(h, "content-length", None);
            }
            ResponsePlan::Json => {
                self.response = ResponseMode::Json;
                response::set_header(h, "content-length", None);
            }
        }
        Action::Continue
    }

    /// A chunk of the response body: passed, rewritten or replaced.
    pub fn on_response_body(
        &mut self,
        h: &mut dyn Host,
        config: &ToolAclConfig,
        who: &mut IdentityMemo,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        match &self.response {
            ResponseMode::Pass => Action::Continue,
            ResponseMode::Discard => {
                response::replace_body(h, body_size, b"");
                Action::Continue
            }
            ResponseMode::Refuse => {
                self.response = ResponseMode::Discard;
                let err = self.list_error("compressed response: the gateway cannot filter it");
                response::replace_body(h, body_size, err.as_bytes());
                Action::Continue
            }
            ResponseMode::Json => {
                let max = config.tools_list.max_response_bytes;
                match JsonChunk::of(body_size, max, end_of_stream) {
                    JsonChunk::TooLarge { discard_rest } => {
                        self.response = if discard_rest {
                            ResponseMode::Discard
                        } else {
                            ResponseMode::Pass
                        };
                        let err = self
                            .list_error("tools/list response too large for the gateway to filter");
                        response::replace_body(h, body_size, err.as_bytes());
                        return Action::Continue;
                    }
                    JsonChunk::Wait => return Action::Pause,
                    JsonChunk::Filter => {}
                }
                self.response = ResponseMode::Pass;
                let body = response::body(h, body_size);
                let out = match self.filter_payload(h, config, who, &body) {
                    Some(rewritten) => rewritten,
                    None if list_plan::unreadable_answer_passes(&body) => return Action::Continue,
                    None => {
                        self.list_error("tools/list response is not JSON the gateway can filter")
                    }
                };
                response::replace_body(h, body_size, out.as_bytes());
                Action::Continue
            }
            ResponseMode::Sse(_) => {
                let chunk = response::body(h, body_size);
                let out = self.rewrite_sse(h, config, who, &chunk, end_of_stream);
                if out != chunk {
                    response::replace_body(h, body_size, &out);
                }
                Action::Continue
            }
        }
    }

    /// On a 2024-11-05 GET stream: the denial waiting for this answer, if any.
    fn legacy_denial_for(&self, h: &mut dyn Host, data: &str) -> Option<Value> {
        let session = self.stream_session.as_deref()?;
        gw_host::legacy_sse::take_refusal(h, LEGACY_PENDING_KEY, session, data)
    }

    /// Remember the ids of the list requests whose results are filtered
    /// (`ToolAclConfig::filtered_lists`); answer a `tools/list` from the cache.
    pub fn prepare(
        &mut self,
        h: &mut dyn Host,
        config: &ToolAclConfig,
        who: &mut IdentityMemo,
        request: ListRequest,
    ) -> Action {
        let ListRequest {
            facts,
            parsed,
            body,
            ..
        } = request;
        if config.filtered_lists().is_empty() {
            return Action::Continue;
        }
        self.list_ids = list_plan::filtered_list_ids(config, facts);
        let legacy = request.legacy;
        let Some(CacheCandidate { id, cursor }) =
            list_plan::cache_candidate(config, facts, parsed.as_ref(), body, legacy)
        else {
            return Action::Continue;
        };
        let Some(shared_key) = self.shared_key(h) else {
            return Action::Continue;
        };
        let protocol_version = request.protocol_version.unwrap_or_default();
        let agent_id = who
            .get(h, self.counters.no_identity)
            .map(|i| i.agent_id.clone());
        let now = gw_host::clock::now_ms(h);
        let (entry, generation) = cache::lookup(
            h,
            &shared_key,
            &protocol_version,
            cursor.as_deref(),
            agent_id.as_deref(),
            now,
        );
        if let Some(entry) = entry {
            self.counters.cache_hit.inc(h);
            let identity = who.get(h, self.counters.no_identity).cloned();
            let view = config.acl.view(identity.as_ref().map(|i| Agent {
                id: &i.agent_id,
                name: &i.agent_name,
            }));
            let json = tools_list::cached_response(&entry, &id, &view, now);
            self.counters.list_filtered.inc(h);
            // In the form the upstream answered, so a cached answer looks
            // like a fresh one (unless the client takes only the other).
            match tools_list::reply_form(request.accept.as_deref(), entry.form) {
                ReplyForm::Sse => reply::send(
                    h,
                    200,
                    &[
                        ("content-type", "text/event-stream"),
                        ("cache-control", "no-cache"),
                    ],
                    tools_list::sse_message(&json).as_bytes(),
                ),
                ReplyForm::Json => reply::send(
                    h,
                    200,
                    &[("content-type", "application/json")],
                    json.as_bytes(),
                ),
            }
            return Action::Pause;
        }
        self.counters.cache_miss.inc(h);
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
    fn filter_payload(
        &mut self,
        h: &mut dyn Host,
        config: &ToolAclConfig,
        who: &mut IdentityMemo,
        payload: &[u8],
    ) -> Option<String> {
        let identity = who.get(h, self.counters.no_identity).cloned();
        let agent = identity.as_ref().map(|i| Agent {
            id: &i.agent_id,
            name: &i.agent_name,
        });
        let view = config.acl.view(agent);
        let cache_ids: Vec<Value> = self.plan.iter().map(|p| p.id.clone()).collect();
        let filtered =
            tools_list::filter_payload(payload, &view, config.filtered_lists(), &cache_ids).ok()?;
        if filtered.list_changed {
            if let Some(key) = self.shared_key(h) {
                if cache::invalidate(h, &key) {
                    self.counters.cache_invalidated.inc(h);
                }
            }
        }
        if filtered.rewritten.is_some() {
            self.counters.list_filtered.inc(h);
            self.counters.tools_hidden.add(h, filtered.removed as u64);
        }
        if let (Some(plan), Some(cache_config)) = (self.plan.take(), config.tools_list.cache) {
            let status = self.response_status;
            match list_plan::stored_result(status, &plan.id, &filtered.unfiltered) {
                Some(result) => {
                    let now = gw_host::clock::now_ms(h);
                    if cache::store(
                        h,
                        &plan,
                        result,
                        self.response_form,
                        identity.as_ref().map(|i| i.agent_id.as_str()),
                        &cache_config,
                        now,
                    ) {
                        self.counters.cache_store.inc(h);
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
        h: &mut dyn Host,
        config: &ToolAclConfig,
        who: &mut IdentityMemo,
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
                    // 2024-11-05 transport: this stream's session, and the
                    // messages URL as the client must reach it.
                    self.stream_session = legacy_sse::session_of(&event.data);
                    let url = legacy_sse::rewrite_endpoint(
                        &self.stream_path,
                        &event.data,
                        &config.legacy_prefix_rewrites,
                    )?;
                    return Some(sse_rewrite::serialize_event(
                        &gw_core::protocol::sse::SseEvent { data: url, ..event },
                    ));
                }
                if let Some(denial) = self.legacy_denial_for(h, &event.data) {
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
                let data = self.filter_payload(h, config, who, before.as_bytes());
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
    pub fn list_error(&self, message: &str) -> String {
        let id = match self.list_ids.as_slice() {
            [only] => Some(only),
            _ => None,
        };
        jsonrpc_error_response(id, json!({"code": INTERNAL_ERROR, "message": message})).to_string()
    }
}
