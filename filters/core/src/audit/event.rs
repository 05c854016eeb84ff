//! One audit event per request/response pair, and the request-side
//! captures that feed it.
//!
//! An event carries protocol metadata only: where, when, who, what
//! operation, what was decided and the configured captures. Message content
//! never reaches it: captures record scalars (a path that selects an object
//! or an array records nothing), strings are cut at `maxCaptureChars`, and
//! the request body itself is never copied. Every client-controlled field
//! is bounded, and so is the event ([`crate::audit::bounds`]).

use crate::audit::bounds::{self, clip_chars};
use crate::audit::config::{AuditConfig, Capture, Source};
use crate::filter_state::decision;
use crate::json_path::{JsonPath, Step};
use crate::protocol::jsonrpc::{InspectError, JsonRpcBody, Message};
use crate::protocol::request_facts::{MessageFacts, RequestFacts, VerifiedIdentity};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// What happened to the request, as the audit trail reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Forwarded and answered by the upstream (any status below 500).
    Allowed,
    Unauthenticated,
    /// Authenticated but lacking a scope / not allowed at all.
    Forbidden,
    /// Denied by the tool ACL.
    ToolDenied,
    RateLimited,
    BadRequest,
    /// A policy dependency (identity service, introspection) was unreachable.
    Unavailable,
    /// The upstream failed: 5xx, reset, connect failure, timeout.
    UpstreamError,
    /// Envoy itself answered (no route, body too large, bad path...).
    Rejected,
    /// The client went away before a response started.
    ClientAborted,
}

impl Decision {
    /// `state`: the `gw_decision` filter state a later filter set when it
    /// answered itself; `status`: the response code (None if no response
    /// started); `details`: Envoy's `response.code_details`.
    pub fn derive(state: Option<&str>, status: Option<u32>, details: Option<&str>) -> Self {
        match state.map(str::trim) {
            Some(decision::UNAUTHENTICATED) => return Decision::Unauthenticated,
            Some(decision::FORBIDDEN) => return Decision::Forbidden,
            Some(decision::TOOL_DENIED) => return Decision::ToolDenied,
            Some(decision::RATE_LIMITED) => return Decision::RateLimited,
            Some(decision::BAD_REQUEST) => return Decision::BadRequest,
            Some(decision::UNAVAILABLE) => return Decision::Unavailable,
            _ => {}
        }
        let Some(status) = status.filter(|s| *s > 0) else {
            return match details {
                Some(d) if d.starts_with("upstream_") => Decision::UpstreamError,
                _ => Decision::ClientAborted,
            };
        };
        match details {
            Some(d) if d.starts_with("upstream_") || d.contains("upstream_reset") => {
                Decision::UpstreamError
            }
            // The client went away after the answer started (typically at
            // the end of an SSE stream): the answer itself was the upstream's.
            Some(d) if d.starts_with("downstream_") => {
                if status >= 500 {
                    Decision::UpstreamError
                } else {
                    Decision::Allowed
                }
            }
            Some("via_upstream") | None | Some("") => {
                if status >= 500 {
                    Decision::UpstreamError
                } else {
                    Decision::Allowed
                }
            }
            Some(_) => Decision::Rejected,
        }
    }
}

/// What audit could learn from the request body.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RequestBody {
    /// No body (GET, empty POST).
    #[default]
    None,
    Parsed(RequestFacts),
    /// Larger than `maxRequestBodyBytes`: passed through unparsed.
    TooLarge,
    /// Not JSON-RPC; the message says why (never the body itself).
    Invalid(String),
}

impl RequestBody {
    /// A body that is not JSON-RPC, recorded by category only: the parser's
    /// messages could quote the body.
    pub fn invalid(err: &InspectError) -> Self {
        RequestBody::Invalid(
            match err {
                InspectError::InvalidJson(_) => "invalid_json",
                InspectError::NotJsonRpc(_) => "not_jsonrpc",
                InspectError::EmptyBatch => "empty_batch",
            }
            .into(),
        )
    }
}

/// The agent as the identity filter verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInfo {
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_method: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Unique per event (Envoy's request id), for deduplication downstream.
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub http_method: String,
    /// HTTP status sent to the client; absent if none was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    pub decision: Decision,
    /// Envoy's reason when the answer did not come from the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonrpc_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonrpc_id: Option<Value>,
    /// Messages in a JSON-RPC batch (absent for a single message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// `too_large` or `invalid: <why>` when the body could not be inspected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// Fields cut to their bound (value ends in `…`) or, when absent from
    /// the event, dropped to keep it under `maxEventBytes`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
    /// The configured captures, by their `as` name.
    #[serde(flatten)]
    pub captured: BTreeMap<String, Value>,
}

impl AuditEvent {
    /// One line of compact JSON, whatever the fields hold (see
    /// [`bounds::to_one_line_json`]): serde_json's bytes for this struct,
    /// written without serde ([`crate::audit::event_json`]).
    pub fn to_json(&self) -> String {
        crate::audit::event_json::write_event(self)
    }
}

/// Everything known at request time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestRecord {
    pub start_unix_ms: u64,
    pub request_id: Option<String>,
    /// `:path` without the query string (which may carry secrets).
    pub path: String,
    pub http_method: String,
    pub body: RequestBody,
    pub captured: BTreeMap<String, Value>,
}

/// Everything known once the stream is done.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResponseRecord {
    pub end_unix_ms: u64,
    pub status: Option<u32>,
    pub code_details: Option<String>,
    pub decision_state: Option<String>,
    pub identity: Option<VerifiedIdentity>,
    /// Response captures (JSON body, SSE stream or headers).
    pub captured: BTreeMap<String, Value>,
}

/// Assemble the event. `fallback_id` names the event when Envoy did not
/// provide a request id (`generate_request_id: false`).
pub fn build_event(
    config: &AuditConfig,
    request: RequestRecord,
    response: ResponseRecord,
    fallback_id: &str,
) -> AuditEvent {
    let format = config.format;
    let status = response.status.filter(|s| *s > 0);
    let decision = Decision::derive(
        response.decision_state.as_deref(),
        status,
        response.code_details.as_deref(),
    );
    let detail = response
        .code_details
        .filter(|d| !d.is_empty() && d != "via_upstream");
    let (jsonrpc_method, jsonrpc_id, batch_size, request_body) = match &request.body {
        RequestBody::Parsed(facts) => match facts.single() {
            Some(m) => (m.method.clone(), m.id.clone(), None, None),
            None => (None, None, Some(facts.messages.len()), None),
        },
        RequestBody::None => (None, None, None, None),
        RequestBody::TooLarge => (None, None, None, Some("too_large".to_string())),
        RequestBody::Invalid(why) => (None, None, None, Some(format!("invalid: {why}"))),
    };
    let mut captured = request.captured;
    if let Some(identity) = &response.identity {
        for capture in &config.request_captures {
            if let Source::VerifiedIdentity(field) = capture.source {
                let value = field.value(identity);
                if !value.is_empty() {
                    captured.insert(
                        capture.name.clone(),
                        Value::String(clip_chars(value.to_string(), config.max_capture_chars)),
                    );
                }
            }
        }
    }
    captured.extend(response.captured);
    let agent = response
        .identity
        .filter(|i| !i.agent_id.is_empty())
        .map(|i| AgentInfo {
            id: i.agent_id,
            name: i.agent_name,
            owner: i.agent_owner,
            auth_method: i.auth_method,
        });
    let event_id = request
        .request_id
        .clone()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| fallback_id.to_string());
    let mut event = AuditEvent {
        event_id,
        timestamp: format
            .include_timestamp
            .then(|| rfc3339_millis(request.start_unix_ms)),
        correlation_id: request.request_id.filter(|_| format.include_correlation_id),
        duration_ms: format
            .include_duration
            .then(|| response.end_unix_ms.saturating_sub(request.start_unix_ms)),
        path: format.include_request_path.then_some(request.path),
        http_method: request.http_method,
        status,
        decision,
        detail,
        jsonrpc_method,
        jsonrpc_id,
        batch_size,
        agent,
        request_body,
        truncated: Vec::new(),
        captured,
    };
    bounds::bound_event(&mut event, config);
    event
}

/// Request-time captures: `header:` captures other than the verified
/// identity (those are resolved when the event is built) and `jsonPath:`
/// captures over the request body. For a batch, the first message the
/// capture applies to and that yields a value wins.
pub fn capture_request(
    config: &AuditConfig,
    path: &str,
    header: impl Fn(&str) -> Option<String>,
    body: Option<(&RequestFacts, Option<&JsonRpcBody>)>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for capture in &config.request_captures {
        let value = match &capture.source {
            Source::VerifiedIdentity(_) => None,
            Source::Header(name) => {
                if capture.applies(path, body.and_then(|(f, _)| first_operation(f))) {
                    header(name).map(Value::String)
                } else {
                    None
                }
            }
            Source::JsonPath {
                paths,
                part_kind_fallback,
            } => body.and_then(|(facts, parsed)| {
                capture_from_messages(capture, path, paths, *part_kind_fallback, facts, parsed)
            }),
        };
        if let Some(value) = value.and_then(|v| scalar(v, config.max_capture_chars)) {
            out.insert(capture.name.clone(), value);
        }
    }
    out
}

fn first_operation(facts: &RequestFacts) -> Option<crate::protocol::operation::Operation> {
    facts.messages.first().and_then(MessageFacts::operation)
}

fn capture_from_messages(
    capture: &Capture,
    path: &str,
    paths: &[JsonPath],
    part_kind_fallback: bool,
    facts: &RequestFacts,
    parsed: Option<&JsonRpcBody>,
) -> Option<Value> {
    for (i, message_facts) in facts.messages.iter().enumerate() {
        if !capture.applies(path, message_facts.operation()) {
            continue;
        }
        let message = parsed.and_then(|b| b.messages().get(i));
        let found = match message {
            Some(m) => paths
                .iter()
                .find_map(|p| get_in_message(p, m))
                .filter(|v| is_scalar(v))
                .cloned(),
            // Audit did not parse the body (larger than its limit) but a
            // later filter did and published the facts it judged.
            None => paths.iter().find_map(|p| from_facts(p, message_facts)),
        };
        let found = found.or_else(|| {
            part_kind_fallback
                .then(|| message_facts.message_kind.clone().map(Value::String))
                .flatten()
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The paths the published request facts can answer without the body:
/// `$.method`, `$.id`, `$.params.name` (`tools/call`, `prompts/get`) and
/// `$.params.uri` (`resources/read`); the A2A part kind comes through the
/// capture's part-kind fallback. Other paths need audit's own parse.
pub fn from_facts(path: &JsonPath, facts: &MessageFacts) -> Option<Value> {
    fn key(step: &Step) -> Option<&str> {
        match step {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        }
    }
    let steps: Vec<Option<&str>> = path.steps().iter().map(key).collect();
    match steps.as_slice() {
        [Some("method")] => facts.method.clone().map(Value::String),
        [Some("id")] => facts.id.clone().filter(is_scalar),
        [Some("params"), Some("name")] => facts.name.clone().map(Value::String),
        [Some("params"), Some("uri")] => facts.uri.clone().map(Value::String),
        _ => None,
    }
}

/// Resolve a path inside a message without cloning the message into a Value.
fn get_in_message<'m>(path: &JsonPath, message: &'m Message) -> Option<&'m Value> {
    let (first, rest) = path.steps().split_first()?;
    let Step::Key(key) = first else {
        return None;
    };
    let start = message.as_value().get(key)?;
    rest.iter().try_fold(start, |current, step| match step {
        Step::Key(key) => current.as_object()?.get(key),
        Step::Index(index) => current.as_array()?.get(*index),
    })
}

/// Resolve a path in a JSON object (a response message).
pub fn get_in_object<'m>(path: &JsonPath, object: &'m Map<String, Value>) -> Option<&'m Value> {
    let (first, rest) = path.steps().split_first()?;
    let Step::Key(key) = first else {
        return None;
    };
    let start = object.get(key)?;
    rest.iter().try_fold(start, |current, step| match step {
        Step::Key(key) => current.as_object()?.get(key),
        Step::Index(index) => current.as_array()?.get(*index),
    })
}

pub fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_))
}

/// Keep scalars, clip long strings (the event cuts and marks them, see
/// [`bounds::clip_chars`]); objects and arrays are never recorded.
pub fn scalar(value: Value, max_chars: usize) -> Option<Value> {
    match value {
        Value::String(s) => Some(Value::String(clip_chars(s, max_chars))),
        Value::Object(_) | Value::Array(_) => None,
        other => Some(other),
    }
}

// ------------------------------------------------------------------ time

/// `2025-06-01T12:34:56.789Z` from milliseconds since the Unix epoch.
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let millis = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Inverse of [`rfc3339_millis`] for the UTC form it writes (also accepts
/// no fraction). Used to give OTLP records their event time.
pub fn parse_rfc3339_millis(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<u64> {
        let s = text.get(from..from + len)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(10) != Some(&b'T') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, s) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let rest = text.get(19..)?;
    let (millis, tail) = match rest.strip_prefix('.') {
        Some(frac) => {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            let ms_text = frac.get(..digits.min(3))?;
            let ms = format!("{ms_text:0<3}").parse::<u64>().ok()?;
            (ms, frac.get(digits..)?)
        }
        None => (0, rest),
    };
    if tail != "Z" {
        return None;
    }
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    let days = u64::try_from(days).ok()?;
    Some(((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + millis)
}

// Howard Hinnant's civil calendar algorithms (public domain), proleptic
// Gregorian, valid for every date we can meet.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::config::AuditConfigSpec;
    use crate::config::load;
    use crate::protocol::jsonrpc;
    use serde_json::json;

    const RECIPE_CAPTURES: &str = r#"
captureFields:
  request:
    - header: x-verified-agent-id
      as: agentId
    - header: x-verified-agent-name
      as: agentName
    - header: x-verified-agent-owner
      as: agentOwner
    - jsonPath: "$.method"
      as: protocolMethod
    - jsonPath: "$.params.name"
      as: toolName
      onPath: /mcp/tools/call
    - jsonPath: "$.params.message.parts[0].kind"
      as: messageKind
      onPath: /a2a/tasks/send
    - header: user-agent
      as: client
  response:
    - jsonPath: "$.result.isError"
      as: toolError
      onPath: /mcp/tools/call
"#;

    fn config() -> AuditConfig {
        load::<AuditConfigSpec, AuditConfig>(RECIPE_CAPTURES.as_bytes()).unwrap()
    }

    fn capture(path: &str, body: &Value, headers: &[(&str, &str)]) -> BTreeMap<String, Value> {
        let text = body.to_string();
        let parsed = jsonrpc::parse(text.as_bytes()).unwrap();
        let facts = RequestFacts::from_body(&parsed);
        let lookup = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        capture_request(&config(), path, lookup, Some((&facts, Some(&parsed))))
    }

    #[test]
    fn mcp_tool_call_on_the_single_endpoint() {
        let body = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_patterns","arguments":{"query":"CANARY"}}});
        let got = capture("/mcp", &body, &[("user-agent", "sdk/1")]);
        assert_eq!(got["protocolMethod"], json!("tools/call"));
        assert_eq!(got["toolName"], json!("search_patterns"));
        assert_eq!(got["client"], json!("sdk/1"));
        assert!(!got.contains_key("messageKind"));
        assert!(!format!("{got:?}").contains("CANARY"));
    }

    #[test]
    fn a2a_send_family_matches_every_version_and_the_recipe_path() {
        for (path, body, kind) in [
            (
                "/a2a",
                json!({"jsonrpc":"2.0","id":"a","method":"message/send","params":{"message":{"parts":[{"kind":"text","text":"secret"}]}}}),
                "text",
            ),
            (
                "/a2a",
                json!({"jsonrpc":"2.0","id":"a","method":"SendMessage","params":{"message":{"parts":[{"data":{"x":1}}]}}}),
                "data",
            ),
            (
                "/a2a/tasks/send",
                json!({"jsonrpc":"2.0","id":"a","method":"tasks/send","params":{"message":{"parts":[{"type":"file"}]}}}),
                "file",
            ),
        ] {
            let got = capture(path, &body, &[]);
            assert_eq!(got["messageKind"], json!(kind), "{body}");
            assert!(!got.contains_key("toolName"));
        }
        // message/stream is another family: the recipe's onPath is tasks/send only
        let got = capture(
            "/a2a",
            &json!({"jsonrpc":"2.0","id":1,"method":"message/stream","params":{"message":{"parts":[{"kind":"text"}]}}}),
            &[],
        );
        assert!(!got.contains_key("messageKind"));
        assert_eq!(got["protocolMethod"], json!("message/stream"));
    }

    #[test]
    fn objects_are_never_captured_and_strings_are_cut() {
        let c = load::<AuditConfigSpec, AuditConfig>(
            b"maxCaptureChars: 4\ncaptureFields:\n  request:\n    - jsonPath: '$.params'\n      as: everything\n    - jsonPath: '$.params.name'\n      as: name\n",
        )
        .unwrap();
        let text =
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"abcdefgh"}})
                .to_string();
        let parsed = jsonrpc::parse(text.as_bytes()).unwrap();
        let facts = RequestFacts::from_body(&parsed);
        let got = capture_request(&c, "/mcp", |_| None, Some((&facts, Some(&parsed))));
        assert!(!got.contains_key("everything"));
        // clipped at capture time, cut and marked when the event is built
        assert_eq!(got["name"], json!("abcde"));
        let event = build_event(
            &c,
            RequestRecord {
                captured: got,
                ..Default::default()
            },
            ResponseRecord::default(),
            "fb",
        );
        assert_eq!(event.captured["name"], json!("abcd…"));
        assert_eq!(event.truncated, ["name"]);
    }

    #[test]
    fn without_the_body_captures_come_from_the_published_facts() {
        let body = json!({"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"execute_code","arguments":{"code":"CANARY"}}});
        let (_, facts) = RequestFacts::inspect(body.to_string().as_bytes()).unwrap();
        // The facts as a later filter publishes them, read back from filter state.
        let facts = RequestFacts::from_json(facts.to_json().as_bytes()).unwrap();
        let got = capture_request(&config(), "/mcp", |_| None, Some((&facts, None)));
        assert_eq!(got["protocolMethod"], json!("tools/call"));
        assert_eq!(got["toolName"], json!("execute_code"));
        let a2a = json!({"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"parts":[{"kind":"file"}]}}});
        let (_, facts) = RequestFacts::inspect(a2a.to_string().as_bytes()).unwrap();
        let got = capture_request(&config(), "/a2a", |_| None, Some((&facts, None)));
        assert_eq!(got["messageKind"], json!("file"));
        let c = load::<AuditConfigSpec, AuditConfig>(
            b"captureFields:\n  request:\n    - jsonPath: '$.id'\n      as: rid\n    - jsonPath: '$.params.uri'\n      as: uri\n    - jsonPath: '$.params.arguments.code'\n      as: code\n",
        )
        .unwrap();
        let read =
            json!({"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"file:///x"}});
        let (_, facts) = RequestFacts::inspect(read.to_string().as_bytes()).unwrap();
        let got = capture_request(&c, "/mcp", |_| None, Some((&facts, None)));
        assert_eq!(got["rid"], json!(5));
        assert_eq!(got["uri"], json!("file:///x"));
        assert!(!got.contains_key("code"), "arguments are not in the facts");
    }

    #[test]
    fn batch_takes_the_first_applicable_message() {
        let body = json!([
            {"jsonrpc":"2.0","id":1,"method":"tools/list"},
            {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"write_file"}}
        ]);
        let got = capture("/mcp", &body, &[]);
        assert_eq!(got["toolName"], json!("write_file"));
        assert_eq!(got["protocolMethod"], json!("tools/list"));
    }

    #[test]
    fn verified_identity_never_the_client_header() {
        let c = config();
        let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/list"});
        // The client forged x-verified-agent-id: request-time capture ignores it.
        let got = capture("/mcp", &body, &[("x-verified-agent-id", "admin-forged")]);
        assert!(!got.contains_key("agentId"));
        let request = RequestRecord {
            start_unix_ms: 1_700_000_000_123,
            request_id: Some("rid-1".into()),
            path: "/mcp".into(),
            http_method: "POST".into(),
            body: RequestBody::None,
            captured: got,
        };
        let no_identity = build_event(&c, request.clone(), ResponseRecord::default(), "x");
        assert!(!no_identity.to_json().contains("admin-forged"));
        let response = ResponseRecord {
            end_unix_ms: 1_700_000_000_200,
            status: Some(200),
            code_details: Some("via_upstream".into()),
            identity: Some(VerifiedIdentity {
                agent_id: "sentinel-7".into(),
                agent_name: "Sentinel".into(),
                agent_owner: "secops".into(),
                auth_method: "apiKey".into(),
            }),
            ..Default::default()
        };
        let event = build_event(&c, request, response, "x");
        assert_eq!(event.captured["agentId"], json!("sentinel-7"));
        assert_eq!(event.captured["agentOwner"], json!("secops"));
        let v: Value = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(v["agent"]["id"], json!("sentinel-7"));
        assert_eq!(v["agent"]["authMethod"], json!("apiKey"));
        assert_eq!(v["decision"], json!("allowed"));
        assert_eq!(v["durationMs"], json!(77));
        assert_eq!(v["timestamp"], json!("2023-11-14T22:13:20.123Z"));
        assert_eq!(v["correlationId"], json!("rid-1"));
        assert_eq!(v["eventId"], json!("rid-1"));
        assert!(v.get("detail").is_none());
    }

    #[test]
    fn event_shape_follows_event_format() {
        let mut c = config();
        c.format.include_timestamp = false;
        c.format.include_correlation_id = false;
        c.format.include_duration = false;
        c.format.include_request_path = false;
        let facts = RequestFacts::inspect(
            br#"{"jsonrpc":"2.0","id":"x-1","method":"tools/call","params":{"name":"t"}}"#,
        )
        .unwrap()
        .1;
        let req = RequestRecord {
            request_id: Some("rid".into()),
            http_method: "POST".into(),
            path: "/mcp".into(),
            body: RequestBody::Parsed(facts),
            ..Default::default()
        };
        let v: Value = serde_json::from_str(
            &build_event(
                &c,
                req,
                ResponseRecord {
                    status: Some(429),
                    decision_state: Some("rate_limited".into()),
                    code_details: Some("wasm_local_reply".into()),
                    ..Default::default()
                },
                "fb",
            )
            .to_json(),
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"eventId":"rid","httpMethod":"POST","status":429,"decision":"rate_limited","detail":"wasm_local_reply","jsonrpcMethod":"tools/call","jsonrpcId":"x-1"})
        );
    }

    #[test]
    fn decisions() {
        use Decision::*;
        let d = Decision::derive;
        assert_eq!(d(None, Some(200), Some("via_upstream")), Allowed);
        assert_eq!(d(None, Some(404), Some("via_upstream")), Allowed);
        assert_eq!(d(None, Some(502), Some("via_upstream")), UpstreamError);
        assert_eq!(
            d(
                None,
                Some(503),
                Some("upstream_reset_before_response_started{connection_failure}")
            ),
            UpstreamError
        );
        assert_eq!(
            d(None, Some(504), Some("upstream_response_timeout")),
            UpstreamError
        );
        assert_eq!(d(None, Some(404), Some("route_not_found")), Rejected);
        assert_eq!(
            d(None, Some(200), Some("downstream_remote_disconnect")),
            Allowed
        );
        assert_eq!(d(None, None, None), ClientAborted);
        assert_eq!(d(Some("unauthenticated"), Some(401), None), Unauthenticated);
        assert_eq!(d(Some("tool_denied"), Some(200), None), ToolDenied);
        assert_eq!(d(Some("rate_limited"), Some(429), None), RateLimited);
        assert_eq!(d(Some("forbidden"), Some(403), None), Forbidden);
        assert_eq!(d(Some("unavailable"), Some(503), None), Unavailable);
        assert_eq!(d(Some("bad_request"), Some(400), None), BadRequest);
        assert_eq!(d(Some("-"), Some(200), Some("via_upstream")), Allowed);
    }

    #[test]
    fn body_outcomes_are_reported_without_content() {
        let c = config();
        let e = |body| {
            build_event(
                &c,
                RequestRecord {
                    body,
                    ..Default::default()
                },
                ResponseRecord::default(),
                "fb",
            )
        };
        assert_eq!(
            e(RequestBody::TooLarge).request_body.as_deref(),
            Some("too_large")
        );
        let batch = RequestFacts::inspect(
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":2,"method":"b"}]"#,
        )
        .unwrap()
        .1;
        let ev = e(RequestBody::Parsed(batch));
        assert_eq!(ev.batch_size, Some(2));
        assert_eq!(ev.jsonrpc_method, None);
        assert_eq!(ev.event_id, "fb");
    }

    #[test]
    fn timestamps_round_trip() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_700_000_000_123, "2023-11-14T22:13:20.123Z"),
            (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(rfc3339_millis(ms), text);
            assert_eq!(parse_rfc3339_millis(text), Some(ms));
        }
        assert_eq!(
            parse_rfc3339_millis("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_millis("2023-11-14T22:13:20.1Z"),
            Some(1_700_000_000_100)
        );
        for bad in [
            "",
            "2023-11-14 22:13:20Z",
            "2023-13-14T22:13:20Z",
            "2023-11-14T22:13:20+01:00",
            "2023-11-14T22:13:2xZ",
        ] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad}");
        }
        // every day for 130 years survives the round trip
        let mut ms = 0u64;
        while ms < 4_102_444_800_000 {
            assert_eq!(parse_rfc3339_millis(&rfc3339_millis(ms)), Some(ms));
            ms += 86_400_000 + 1;
        }
    }
}
