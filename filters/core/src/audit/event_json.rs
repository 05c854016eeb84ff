//! The audit event as one line of JSON, written field by field.
//!
//! The event has a fixed shape (docs/audit.md): going through serde's
//! `Serialize` for it (a struct with a flattened map, so a map serializer
//! with per-field dispatch) and then scanning the text for the characters
//! serde_json leaves raw cost about twice what writing it directly does,
//! once per request on the log path. The bytes are exactly serde_json's
//! compact output of [`AuditEvent`] passed through
//! [`super::bounds::to_one_line_json`] (same field order, same escapes:
//! checked by the tests below against that reference), so the collector's
//! strict parsing and every consumer see no difference.

use super::event::{AuditEvent, Decision};
use serde_json::Value;
use std::fmt::Write;

/// `event` as one line of compact JSON (module doc).
pub fn write_event(event: &AuditEvent) -> String {
    let mut out = String::with_capacity(512);
    out.push_str("{\"eventId\":");
    string(&mut out, &event.event_id);
    if let Some(ts) = &event.timestamp {
        out.push_str(",\"timestamp\":");
        string(&mut out, ts);
    }
    if let Some(id) = &event.correlation_id {
        out.push_str(",\"correlationId\":");
        string(&mut out, id);
    }
    if let Some(ms) = event.duration_ms {
        let _ = write!(out, ",\"durationMs\":{ms}");
    }
    if let Some(path) = &event.path {
        out.push_str(",\"path\":");
        string(&mut out, path);
    }
    out.push_str(",\"httpMethod\":");
    string(&mut out, &event.http_method);
    if let Some(status) = event.status {
        let _ = write!(out, ",\"status\":{status}");
    }
    out.push_str(",\"decision\":\"");
    out.push_str(decision_name(event.decision));
    out.push('"');
    if let Some(detail) = &event.detail {
        out.push_str(",\"detail\":");
        string(&mut out, detail);
    }
    if let Some(method) = &event.jsonrpc_method {
        out.push_str(",\"jsonrpcMethod\":");
        string(&mut out, method);
    }
    if let Some(id) = &event.jsonrpc_id {
        out.push_str(",\"jsonrpcId\":");
        value(&mut out, id);
    }
    if let Some(n) = event.batch_size {
        let _ = write!(out, ",\"batchSize\":{n}");
    }
    if let Some(agent) = &event.agent {
        out.push_str(",\"agent\":{\"id\":");
        string(&mut out, &agent.id);
        for (key, field) in [
            ("name", &agent.name),
            ("owner", &agent.owner),
            ("authMethod", &agent.auth_method),
        ] {
            if !field.is_empty() {
                out.push_str(",\"");
                out.push_str(key);
                out.push_str("\":");
                string(&mut out, field);
            }
        }
        out.push('}');
    }
    if let Some(body) = &event.request_body {
        out.push_str(",\"requestBody\":");
        string(&mut out, body);
    }
    if !event.truncated.is_empty() {
        out.push_str(",\"truncated\":[");
        for (i, name) in event.truncated.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(&mut out, name);
        }
        out.push(']');
    }
    // flattened: the captures by name, in the map's (sorted) order
    for (name, v) in &event.captured {
        out.push(',');
        string(&mut out, name);
        out.push(':');
        value(&mut out, v);
    }
    out.push('}');
    out
}

/// serde's `snake_case` name of a decision.
fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Allowed => "allowed",
        Decision::Unauthenticated => "unauthenticated",
        Decision::Forbidden => "forbidden",
        Decision::ToolDenied => "tool_denied",
        Decision::RateLimited => "rate_limited",
        Decision::BadRequest => "bad_request",
        Decision::Unavailable => "unavailable",
        Decision::UpstreamError => "upstream_error",
        Decision::Rejected => "rejected",
        Decision::ClientAborted => "client_aborted",
    }
}

/// A JSON string: serde_json's escapes (`\"`, `\\`, the short forms of
/// \b \f \n \r \t, `\u00xx` for the other C0 controls) plus `\uXXXX` for
/// DEL, the C1 controls and U+2028/9 (bounds::to_one_line_json).
fn string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let short = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        if short.is_empty() {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push_str(short);
        }
        start = i + c.len_utf8();
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Any JSON value (an id, a capture): strings as [`string`], the rest as
/// serde_json writes them, one-lined the same way.
fn value(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => string(out, s),
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        other => out.push_str(&super::bounds::to_one_line_json(other.to_string())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::bounds::to_one_line_json;
    use crate::audit::event::AgentInfo;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// What the event was written as before this writer: serde, then the
    /// one-line pass.
    fn reference(event: &AuditEvent) -> String {
        to_one_line_json(serde_json::to_string(event).unwrap())
    }

    fn full(text: &str) -> AuditEvent {
        let mut captured = BTreeMap::new();
        captured.insert("toolName".to_string(), json!(text));
        captured.insert("a\"b".to_string(), json!(1.5));
        captured.insert("n".to_string(), json!(-3));
        captured.insert("big".to_string(), json!(u64::MAX));
        captured.insert("flag".to_string(), json!(false));
        captured.insert("nothing".to_string(), Value::Null);
        captured.insert("obj".to_string(), json!({"k": [text, 1]}));
        AuditEvent {
            event_id: text.to_string(),
            timestamp: Some("2026-12-06T06:00:00.123Z".into()),
            correlation_id: Some(format!("c-{text}")),
            duration_ms: Some(17),
            path: Some("/mcp".into()),
            http_method: "POST".into(),
            status: Some(200),
            decision: Decision::ToolDenied,
            detail: Some(text.to_string()),
            jsonrpc_method: Some("tools/call".into()),
            jsonrpc_id: Some(json!(text)),
            batch_size: Some(3),
            agent: Some(AgentInfo {
                id: "admin-1".into(),
                name: text.to_string(),
                owner: String::new(),
                auth_method: "api_key".into(),
            }),
            request_body: Some(format!("invalid: {text}")),
            truncated: vec!["path".into(), text.to_string()],
            captured,
        }
    }

    #[test]
    fn same_bytes_as_serde_for_every_field_and_escape() {
        let texts = [
            "plain",
            "",
            "quote\" back\\slash / slash",
            "\u{0}\u{1}\u{8}\u{9}\n\u{b}\u{c}\r\u{1f} controls",
            "del\u{7f} c1\u{80}\u{9f} after\u{a0} ls\u{2028} ps\u{2029} \u{2027}\u{202a}",
            "unicode é ✓ 🙂 …",
        ];
        for text in texts {
            let event = full(text);
            assert_eq!(write_event(&event), reference(&event), "{text:?}");
        }
    }

    #[test]
    fn same_bytes_as_serde_for_a_minimal_event_and_every_decision() {
        for decision in [
            Decision::Allowed,
            Decision::Unauthenticated,
            Decision::Forbidden,
            Decision::ToolDenied,
            Decision::RateLimited,
            Decision::BadRequest,
            Decision::Unavailable,
            Decision::UpstreamError,
            Decision::Rejected,
            Decision::ClientAborted,
        ] {
            let event = AuditEvent {
                event_id: "e".into(),
                timestamp: None,
                correlation_id: None,
                duration_ms: None,
                path: None,
                http_method: String::new(),
                status: None,
                decision,
                detail: None,
                jsonrpc_method: None,
                jsonrpc_id: Some(json!(7)),
                batch_size: None,
                agent: Some(AgentInfo {
                    id: String::new(),
                    name: String::new(),
                    owner: "o".into(),
                    auth_method: String::new(),
                }),
                request_body: None,
                truncated: Vec::new(),
                captured: BTreeMap::new(),
            };
            assert_eq!(write_event(&event), reference(&event));
        }
    }
}
