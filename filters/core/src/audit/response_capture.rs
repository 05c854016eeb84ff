//! Response captures (`$.result.isError`, `$.result.status.state`, ...)
//! from JSON bodies and from SSE streams, matched to the request by
//! JSON-RPC id.
//!
//! Nothing is held back from the client: the filter hands every body chunk
//! on at once and feeds a copy here. A JSON body is copied up to a limit and
//! parsed at its end; an SSE stream goes through the incremental parser and
//! each event is looked at as it completes, so an A2A stream that lasts
//! hours costs one event's worth of memory. A later value overwrites an
//! earlier one: for A2A streams the event keeps the last task state seen.

use crate::audit::config::{Capture, Source};
use crate::audit::event::{get_in_object, scalar};
use crate::protocol::operation::Operation;
use crate::protocol::request_facts::RequestFacts;
use crate::protocol::sse::SseParser;
use serde_json::Value;
use std::collections::BTreeMap;

/// For one request: which response captures apply to the answer to which
/// JSON-RPC id.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CapturePlan {
    /// (request id, indexes into the response captures)
    targets: Vec<(Value, Vec<usize>)>,
    /// Indexes of `header:` response captures that apply to this request.
    headers: Vec<usize>,
}

impl CapturePlan {
    pub fn new(captures: &[Capture], path: &str, facts: Option<&RequestFacts>) -> Self {
        let mut plan = CapturePlan::default();
        let first_op = facts
            .and_then(|f| f.messages.first())
            .and_then(|m| m.operation());
        for (i, capture) in captures.iter().enumerate() {
            if matches!(capture.source, Source::Header(_)) && capture.applies(path, first_op) {
                plan.headers.push(i);
            }
        }
        for message in facts.map(|f| f.messages.as_slice()).unwrap_or_default() {
            let (Some(id), Some(_)) = (&message.id, &message.method) else {
                continue; // notifications and client-posted responses get no answer
            };
            let op: Option<Operation> = message.operation();
            let applicable: Vec<usize> = captures
                .iter()
                .enumerate()
                .filter(|(_, c)| matches!(c.source, Source::JsonPath { .. }) && c.applies(path, op))
                .map(|(i, _)| i)
                .collect();
            if !applicable.is_empty() {
                plan.targets.push((id.clone(), applicable));
            }
        }
        plan
    }

    /// Whether the response body needs looking at at all.
    pub fn wants_body(&self) -> bool {
        !self.targets.is_empty()
    }

    pub fn header_captures(&self) -> &[usize] {
        &self.headers
    }
}

#[derive(Debug)]
enum Body {
    /// Not inspected (no plan, or a content type we do not read).
    Ignore,
    Json {
        copy: Vec<u8>,
        overflow: bool,
    },
    Sse(Box<SseParser>),
}

/// The response side of one request.
#[derive(Debug)]
pub struct ResponseCapture {
    plan: CapturePlan,
    body: Body,
    max_bytes: usize,
    max_chars: usize,
    values: BTreeMap<String, Value>,
    /// SSE events or JSON messages that were not JSON (counted, not fatal).
    unparsable: u64,
}

impl ResponseCapture {
    pub fn new(plan: CapturePlan, max_bytes: usize, max_chars: usize) -> Self {
        Self {
            plan,
            body: Body::Ignore,
            max_bytes,
            max_chars,
            values: BTreeMap::new(),
            unparsable: 0,
        }
    }

    pub fn plan(&self) -> &CapturePlan {
        &self.plan
    }

    /// Decide from the response `content-type` how to read the body.
    pub fn on_headers(&mut self, content_type: Option<&str>) {
        if !self.plan.wants_body() {
            return;
        }
        let media = content_type
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        self.body = if media == "text/event-stream" {
            Body::Sse(Box::new(SseParser::new(self.max_bytes)))
        } else if media == "application/json" || media.ends_with("+json") {
            Body::Json {
                copy: Vec::new(),
                overflow: false,
            }
        } else {
            Body::Ignore
        };
    }

    /// Whether the filter should copy body chunks here.
    pub fn wants_chunks(&self) -> bool {
        !matches!(self.body, Body::Ignore)
    }

    /// Record a response header capture.
    pub fn capture_header(&mut self, captures: &[Capture], index: usize, value: Option<String>) {
        if let (Some(capture), Some(value)) = (captures.get(index), value) {
            if let Some(v) = scalar(Value::String(value), self.max_chars) {
                self.values.insert(capture.name.clone(), v);
            }
        }
    }

    /// One body chunk, as it passes to the client.
    pub fn feed(&mut self, captures: &[Capture], chunk: &[u8], end_of_stream: bool) {
        let mut messages = Vec::new();
        match &mut self.body {
            Body::Ignore => return,
            Body::Json { copy, overflow } => {
                if !*overflow {
                    if copy.len() + chunk.len() > self.max_bytes {
                        *overflow = true;
                        copy.clear();
                        copy.shrink_to_fit();
                    } else {
                        copy.extend_from_slice(chunk);
                    }
                }
                if end_of_stream && !*overflow {
                    messages.push(std::mem::take(copy));
                }
            }
            Body::Sse(parser) => {
                parser.feed(chunk, |event| messages.push(event.data.into_bytes()));
                if end_of_stream {
                    parser.finish();
                }
            }
        }
        for data in messages {
            self.inspect(captures, &data);
        }
    }

    fn inspect(&mut self, captures: &[Capture], data: &[u8]) {
        if data.iter().all(u8::is_ascii_whitespace) {
            return; // SSE priming events carry no data
        }
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            self.unparsable += 1;
            return;
        };
        match value {
            Value::Array(items) => {
                for item in items {
                    self.inspect_message(captures, item);
                }
            }
            other => self.inspect_message(captures, other),
        }
    }

    fn inspect_message(&mut self, captures: &[Capture], message: Value) {
        let Value::Object(object) = message else {
            return;
        };
        let Some(id) = object.get("id") else {
            return; // notifications (progress) are not answers
        };
        let Some((_, indexes)) = self.plan.targets.iter().find(|(want, _)| want == id) else {
            return;
        };
        for &i in indexes {
            let Some(capture) = captures.get(i) else {
                continue;
            };
            let Source::JsonPath { paths, .. } = &capture.source else {
                continue;
            };
            let found = paths
                .iter()
                .filter_map(|p| get_in_object(p, &object))
                .find_map(|v| scalar(v.clone(), self.max_chars));
            if let Some(value) = found {
                self.values.insert(capture.name.clone(), value);
            }
        }
    }

    pub fn unparsable(&self) -> u64 {
        self.unparsable
    }

    /// The captured values so far (a stream cut short keeps what it saw).
    pub fn take_values(&mut self) -> BTreeMap<String, Value> {
        std::mem::take(&mut self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::config::{AuditConfig, AuditConfigSpec};
    use crate::config::load;
    use serde_json::json;

    const CAPTURES: &str = r#"
captureFields:
  response:
    - jsonPath: "$.result.isError"
      as: toolError
      onPath: /mcp/tools/call
    - jsonPath: "$.result.status.state"
      as: taskState
      onPath: /a2a/tasks/send
    - jsonPath: "$.result.status.state"
      as: streamState
      onPath: /a2a/tasks/sendSubscribe
    - header: x-upstream-version
      as: upstreamVersion
"#;

    fn captures() -> Vec<Capture> {
        load::<AuditConfigSpec, AuditConfig>(CAPTURES.as_bytes())
            .unwrap()
            .response_captures
    }

    fn run(
        path: &str,
        request: Value,
        content_type: &str,
        chunks: &[&[u8]],
    ) -> BTreeMap<String, Value> {
        let caps = captures();
        let facts = RequestFacts::inspect(request.to_string().as_bytes())
            .unwrap()
            .1;
        let mut rc = ResponseCapture::new(CapturePlan::new(&caps, path, Some(&facts)), 4096, 64);
        rc.on_headers(Some(content_type));
        for (i, chunk) in chunks.iter().enumerate() {
            rc.feed(&caps, chunk, i + 1 == chunks.len());
        }
        rc.take_values()
    }

    fn tool_call(id: Value) -> Value {
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"execute_code"}})
    }

    #[test]
    fn json_tool_result_split_in_chunks() {
        let body = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"secret"}],"isError":true}}"#;
        let (a, b) = body.split_at(20);
        let got = run(
            "/mcp",
            tool_call(json!(7)),
            "application/json; charset=utf-8",
            &[a, b],
        );
        assert_eq!(got, BTreeMap::from([("toolError".into(), json!(true))]));
    }

    #[test]
    fn sse_tool_result_after_progress_with_matching_id_only() {
        let stream: &[&[u8]] = &[
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n",
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{\"isError\":true}}\n\n",
            b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"7\",\"result\":{\"isError\":true}}\r\n\r\n",
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"res",
            b"ult\":{\"isError\":false}}\n\n",
        ];
        let got = run("/mcp", tool_call(json!(7)), "text/event-stream", stream);
        assert_eq!(
            got["toolError"],
            json!(false),
            "only id 7 (a number) counts"
        );
    }

    #[test]
    fn a2a_stream_keeps_the_last_task_state_across_versions() {
        let request = json!({"jsonrpc":"2.0","id":"r1","method":"message/stream","params":{"message":{"parts":[{"kind":"text","text":"x"}]}}});
        let v03: &[&[u8]] = &[
            b"data: {\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"result\":{\"kind\":\"task\",\"status\":{\"state\":\"submitted\"}}}\n\n",
            b"data: {\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"result\":{\"kind\":\"status-update\",\"status\":{\"state\":\"working\"}}}\n\n",
            b"data: {\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"result\":{\"kind\":\"artifact-update\",\"artifact\":{}}}\n\n",
            b"data: {\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"result\":{\"kind\":\"status-update\",\"status\":{\"state\":\"completed\"},\"final\":true}}\n\n",
        ];
        let got = run("/a2a", request.clone(), "text/event-stream", v03);
        assert_eq!(got["streamState"], json!("completed"));
        assert!(!got.contains_key("taskState"));
        let v10: &[&[u8]] = &[
            b"data: {\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"result\":{\"task\":{\"status\":{\"state\":\"TASK_STATE_SUBMITTED\"}}}}\n\n",
            b"data: {\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"result\":{\"statusUpdate\":{\"status\":{\"state\":\"TASK_STATE_FAILED\"}}}}\n\n",
        ];
        let mut req10 = request;
        req10["method"] = json!("SendStreamingMessage");
        let got = run("/a2a", req10, "text/event-stream", v10);
        assert_eq!(got["streamState"], json!("TASK_STATE_FAILED"));
    }

    #[test]
    fn a2a_send_json_results_0_3_and_1_0() {
        let request = json!({"jsonrpc":"2.0","id":3,"method":"message/send","params":{"message":{"parts":[]}}});
        let got = run(
            "/a2a",
            request.clone(),
            "application/json",
            &[br#"{"jsonrpc":"2.0","id":3,"result":{"kind":"task","status":{"state":"completed"}}}"#],
        );
        assert_eq!(got["taskState"], json!("completed"));
        let mut req10 = request;
        req10["method"] = json!("SendMessage");
        let got = run(
            "/a2a/tasks/send",
            req10,
            "application/json",
            &[br#"{"jsonrpc":"2.0","id":3,"result":{"task":{"status":{"state":"TASK_STATE_COMPLETED"}}}}"#],
        );
        assert_eq!(got["taskState"], json!("TASK_STATE_COMPLETED"));
    }

    #[test]
    fn oversized_json_is_skipped_not_buffered() {
        let caps = captures();
        let facts = RequestFacts::inspect(tool_call(json!(1)).to_string().as_bytes())
            .unwrap()
            .1;
        let mut rc = ResponseCapture::new(CapturePlan::new(&caps, "/mcp", Some(&facts)), 16, 64);
        rc.on_headers(Some("application/json"));
        rc.feed(&caps, br#"{"jsonrpc":"2.0","id":1,"#, false);
        rc.feed(&caps, br#""result":{"isError":true}}"#, true);
        assert!(rc.take_values().is_empty());
    }

    #[test]
    fn no_plan_means_no_body_work() {
        let caps = captures();
        let facts = RequestFacts::inspect(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .unwrap()
            .1;
        let plan = CapturePlan::new(&caps, "/mcp", Some(&facts));
        assert!(!plan.wants_body());
        assert_eq!(plan.header_captures(), &[3]);
        let mut rc = ResponseCapture::new(plan, 4096, 64);
        rc.on_headers(Some("application/json"));
        assert!(!rc.wants_chunks());
        // notifications get no answer, so nothing to capture
        let facts = RequestFacts::inspect(
            br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
        )
        .unwrap()
        .1;
        assert!(!CapturePlan::new(&caps, "/mcp", Some(&facts)).wants_body());
    }

    #[test]
    fn batch_responses_match_each_id_and_garbage_is_counted() {
        let caps = captures();
        let facts = RequestFacts::inspect(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}]"#,
        )
        .unwrap()
        .1;
        let mut rc = ResponseCapture::new(CapturePlan::new(&caps, "/mcp", Some(&facts)), 4096, 64);
        rc.on_headers(Some("text/event-stream"));
        rc.feed(&caps, b"data: not json\n\n", false);
        rc.feed(
            &caps,
            br#"data: [{"jsonrpc":"2.0","id":1,"result":{"isError":true}},{"jsonrpc":"2.0","id":2,"result":{"isError":false}}]

"#,
            true,
        );
        assert_eq!(rc.unparsable(), 1);
        assert_eq!(rc.take_values()["toolError"], json!(false));
    }

    #[test]
    fn response_header_capture() {
        let caps = captures();
        let mut rc = ResponseCapture::new(CapturePlan::new(&caps, "/mcp", None), 4096, 64);
        let idx = rc.plan().header_captures().to_vec();
        for i in idx {
            rc.capture_header(&caps, i, Some("1.2".into()));
        }
        assert_eq!(rc.take_values()["upstreamVersion"], json!("1.2"));
    }
}
