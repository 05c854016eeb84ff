//! The answer side of the A2A stage (`stage.rs`): task ids of send and
//! stream answers (JSON and SSE) recorded as the caller's, `ListTasks`
//! answers cut to the caller's tasks, and a list the gateway cannot read
//! replaced by an error (never passed unfiltered). See `docs/a2a.md`.

use crate::owners::{outbox_push, record_local};
use crate::stage::A2aStage;
use gw_core::a2a_acl::request::ListView;
use gw_core::a2a_acl::tasks::{self, Shard};
use gw_core::protocol::a2a;
use gw_core::protocol::sse::SseParser;
use gw_core::shared_doc::SharedDoc;
use gw_core::tool_acl::request_guard;
use gw_host::port::Host;
use gw_host::response;
use proxy_wasm::types::Action;
use serde_json::{json, Value};
use std::collections::HashMap;

/// What to do with the upstream's answer.
pub(crate) enum Answer {
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

impl A2aStage {
    pub fn on_response_headers(&mut self, h: &mut dyn Host) -> Action {
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

    pub fn on_response_body(
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
