//! Lists in the answers: the cache in front of `tools/list`, per-agent
//! filtering of JSON and SSE answers (the choices are
//! `gw_core::tool_acl::list_plan`'s, the rewriting `tools_list`'s and
//! `sse_rewrite`'s).

use crate::cache::{self, Plan};
use crate::http::{ResponseMode, ToolAclHttp, INTERNAL_ERROR};
use gw_core::protocol::jsonrpc;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::tool_acl::config::ToolAclConfig;
use gw_core::tool_acl::denial::jsonrpc_error_response;
use gw_core::tool_acl::legacy_sse;
use gw_core::tool_acl::list_plan::{self, CacheCandidate};
use gw_core::tool_acl::rules::Agent;
use gw_core::tool_acl::sse_rewrite::{self, RawEvent};
use gw_core::tool_acl::tools_list::{self, ReplyForm};
use gw_host::port::Host;
use gw_host::reply;
use proxy_wasm::types::Action;
use serde_json::{json, Value};

impl ToolAclHttp {
    /// Remember the ids of the list requests whose results are filtered
    /// (`ToolAclConfig::filtered_lists`); answer a `tools/list` from the cache.
    pub(crate) fn prepare_tools_list(
        &mut self,
        h: &mut dyn Host,
        config: &ToolAclConfig,
        facts: &RequestFacts,
        parsed: Option<jsonrpc::JsonRpcBody>,
        body: &[u8],
    ) -> Action {
        if config.filtered_lists().is_empty() {
            return Action::Continue;
        }
        self.list_ids = list_plan::filtered_list_ids(config, facts);
        let legacy = self.legacy_session.is_some();
        let Some(CacheCandidate { id, cursor }) =
            list_plan::cache_candidate(config, facts, parsed.as_ref(), body, legacy)
        else {
            return Action::Continue;
        };
        let Some(shared_key) = self.shared_key(h) else {
            return Action::Continue;
        };
        let protocol_version = self.headers.protocol_version.clone().unwrap_or_default();
        let agent_id = self.identity(h).map(|i| i.agent_id.clone());
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
            self.metrics.cache_hit.inc(h);
            let identity = self.identity(h).cloned();
            let view = config.acl.view(identity.as_ref().map(|i| Agent {
                id: &i.agent_id,
                name: &i.agent_name,
            }));
            let json = tools_list::cached_response(&entry, &id, &view, now);
            self.metrics.list_filtered.inc(h);
            // In the form the upstream answered, so a cached answer looks
            // like a fresh one (unless the client takes only the other).
            match tools_list::reply_form(self.headers.accept.as_deref(), entry.form) {
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
        self.metrics.cache_miss.inc(h);
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
    pub(crate) fn filter_payload(
        &mut self,
        h: &mut dyn Host,
        config: &ToolAclConfig,
        payload: &[u8],
    ) -> Option<String> {
        let identity = self.identity(h).cloned();
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
                    self.metrics.cache_invalidated.inc(h);
                }
            }
        }
        if filtered.rewritten.is_some() {
            self.metrics.list_filtered.inc(h);
            self.metrics.tools_hidden.add(h, filtered.removed as u64);
        }
        if let (Some(plan), Some(cache_config)) = (self.plan.take(), config.tools_list.cache) {
            let ok_status = self.response_status == 200;
            match filtered.unfiltered.iter().find(|(id, _)| *id == plan.id) {
                Some((_, result)) if ok_status => {
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
                        self.metrics.cache_store.inc(h);
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

    pub(crate) fn rewrite_sse(
        &mut self,
        h: &mut dyn Host,
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
                let data = self.filter_payload(h, config, before.as_bytes());
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
    pub(crate) fn list_error(&self, message: &str) -> String {
        let id = match self.list_ids.as_slice() {
            [only] => Some(only),
            _ => None,
        };
        jsonrpc_error_response(id, json!({"code": INTERNAL_ERROR, "message": message})).to_string()
    }
}
