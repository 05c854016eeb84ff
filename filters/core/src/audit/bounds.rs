//! Bounds on what a client can make an audit event carry.
//!
//! Every field of an event that a client can influence (the JSON-RPC id and
//! method, the path, the HTTP method, the request id, captured values, and
//! the agent fields an identity or token service returns) is cut to a fixed
//! size, so that a 500 KB JSON-RPC id cannot become a 500 KB event: that
//! would copy client content into the audit store, inflate it, and make a
//! collector refuse the whole batch the event travels in.
//!
//! - Sizes are bytes of the field's JSON encoding (escapes included), so
//!   the sum of the limits bounds the event itself.
//! - A cut value ends in `…` and its field is named in the event's
//!   `truncated` list. The list is the authoritative marker: a client can
//!   send a value that ends in `…` itself, it cannot write `truncated`.
//! - An event has a maximum size (`maxEventBytes`). Beyond it the optional
//!   parts are dropped, least trustworthy first: captured request headers,
//!   response captures, captures of the verified identity (the `agent`
//!   object keeps it), then the JSONPath request captures, then `detail`
//!   and `correlationId`. Who (`agent`), what (`path`, `httpMethod`,
//!   `jsonrpcMethod`, `jsonrpcId`) and the decision are never dropped; the
//!   dropped fields are named in `truncated` too (named there but absent:
//!   dropped).
//! - Characters that some log readers take as line breaks although JSON
//!   allows them raw in strings (DEL, C1 controls such as NEL, U+2028,
//!   U+2029) are written as `\uXXXX` escapes: an event is one line for any
//!   reader, not only for one that splits on `\n` (log injection).

use crate::audit::config::{AuditConfig, Source};
use crate::audit::event::AuditEvent;
use serde_json::Value;

/// `eventId` and `correlationId` (Envoy's `x-request-id`, which a client
/// can set when the listener preserves it).
pub const REQUEST_ID_BYTES: usize = 128;
/// `path` (Envoy accepts paths up to its header limit, 60 KiB by default).
pub const PATH_BYTES: usize = 1024;
pub const HTTP_METHOD_BYTES: usize = 32;
/// `detail` (Envoy's own text; bounded all the same).
pub const DETAIL_BYTES: usize = 256;
pub const JSONRPC_METHOD_BYTES: usize = 128;
/// `jsonrpcId`: a string id is cut; any other id longer than this (a
/// number cannot be) is replaced by its cut text.
pub const JSONRPC_ID_BYTES: usize = 128;
/// Each of `agent.id`, `agent.name`, `agent.owner`, `agent.authMethod`.
pub const AGENT_FIELD_BYTES: usize = 256;
/// The most the fields above, the fixed fields and a `truncated` list of
/// them can take together (checked by a test). Captures come on top.
pub const CORE_EVENT_BYTES: usize = 3584;
/// Smallest `maxEventBytes`: the fixed part always fits.
pub const MIN_EVENT_BYTES: usize = 4096;
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Bytes `c` takes inside a JSON string as [`to_one_line_json`] writes it.
fn char_json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if needs_unicode_escape(c) => 6,
        c => c.len_utf8(),
    }
}

/// Characters written as `\uXXXX`: what serde_json escapes (other C0
/// controls) and what we escape on top (see the module doc).
fn needs_unicode_escape(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}')
}

/// Bytes of `s` as a JSON string, without the quotes.
pub fn json_len(s: &str) -> usize {
    s.chars().map(char_json_len).sum()
}

const ELLIPSIS: char = '…';

/// `s` cut so that its JSON encoding (with the trailing `…`) takes at most
/// `max_bytes`; None when it already fits.
pub fn cut_to_bytes(s: &str, max_bytes: usize) -> Option<String> {
    if json_len(s) <= max_bytes {
        return None;
    }
    let budget = max_bytes.saturating_sub(ELLIPSIS.len_utf8());
    let mut used = 0;
    let mut out = String::new();
    for c in s.chars() {
        used += char_json_len(c);
        if used > budget {
            break;
        }
        out.push(c);
    }
    out.push(ELLIPSIS);
    Some(out)
}

/// `s` cut to `max_chars` characters plus `…`; None when it fits.
pub fn cut_to_chars(s: &str, max_chars: usize) -> Option<String> {
    let (cut, _) = s.char_indices().nth(max_chars)?;
    Some(format!("{}{ELLIPSIS}", s.get(..cut).unwrap_or("")))
}

/// At capture time: keep at most `max_chars + 1` characters, so memory per
/// request stays bounded and [`bound_event`] still sees that the value was
/// longer than allowed (and marks it).
pub fn clip_chars(mut s: String, max_chars: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max_chars.saturating_add(1)) {
        s.truncate(cut);
    }
    s
}

fn cut_field(value: &mut String, max_bytes: usize, name: &str, truncated: &mut Vec<String>) {
    if let Some(cut) = cut_to_bytes(value, max_bytes) {
        *value = cut;
        mark(truncated, name);
    }
}

fn cut_opt(value: &mut Option<String>, max_bytes: usize, name: &str, truncated: &mut Vec<String>) {
    if let Some(v) = value {
        cut_field(v, max_bytes, name, truncated);
    }
}

fn mark(truncated: &mut Vec<String>, name: &str) {
    if !truncated.iter().any(|t| t == name) {
        truncated.push(name.to_string());
    }
}

/// Apply every bound of the module doc to `event`.
pub fn bound_event(event: &mut AuditEvent, config: &AuditConfig) {
    let mut truncated = std::mem::take(&mut event.truncated);
    cut_field(
        &mut event.event_id,
        REQUEST_ID_BYTES,
        "eventId",
        &mut truncated,
    );
    cut_opt(
        &mut event.correlation_id,
        REQUEST_ID_BYTES,
        "correlationId",
        &mut truncated,
    );
    cut_opt(&mut event.path, PATH_BYTES, "path", &mut truncated);
    cut_field(
        &mut event.http_method,
        HTTP_METHOD_BYTES,
        "httpMethod",
        &mut truncated,
    );
    cut_opt(&mut event.detail, DETAIL_BYTES, "detail", &mut truncated);
    cut_opt(
        &mut event.jsonrpc_method,
        JSONRPC_METHOD_BYTES,
        "jsonrpcMethod",
        &mut truncated,
    );
    match &mut event.jsonrpc_id {
        Some(Value::String(id)) => cut_field(id, JSONRPC_ID_BYTES, "jsonrpcId", &mut truncated),
        Some(other) => {
            let text = other.to_string();
            if let Some(cut) = cut_to_bytes(&text, JSONRPC_ID_BYTES) {
                *other = Value::String(cut);
                mark(&mut truncated, "jsonrpcId");
            }
        }
        None => {}
    }
    if let Some(agent) = &mut event.agent {
        cut_field(&mut agent.id, AGENT_FIELD_BYTES, "agent.id", &mut truncated);
        cut_field(
            &mut agent.name,
            AGENT_FIELD_BYTES,
            "agent.name",
            &mut truncated,
        );
        cut_field(
            &mut agent.owner,
            AGENT_FIELD_BYTES,
            "agent.owner",
            &mut truncated,
        );
        cut_field(
            &mut agent.auth_method,
            AGENT_FIELD_BYTES,
            "agent.authMethod",
            &mut truncated,
        );
    }
    for (name, value) in &mut event.captured {
        if let Value::String(s) = value {
            if let Some(cut) = cut_to_chars(s, config.max_capture_chars) {
                *s = cut;
                mark(&mut truncated, name);
            }
        }
    }
    event.truncated = truncated;
    // The hot path: a cheap upper bound spares serializing the event twice.
    if upper_bound_len(event) <= config.max_event_bytes {
        return;
    }
    let mut size = event.to_json().len();
    while size > config.max_event_bytes {
        let Some(name) = next_to_drop(event, config) else {
            break;
        };
        mark(&mut event.truncated, &name);
        size = event.to_json().len();
    }
}

/// At least the length of `event.to_json()` once the fields are cut: the
/// fixed part's bound plus what the captures and their names can add.
fn upper_bound_len(event: &AuditEvent) -> usize {
    let captures: usize = event
        .captured
        .iter()
        .map(|(name, value)| {
            let value_len = match value {
                Value::String(s) => json_len(s) + 2,
                // numbers print in at most 24 bytes, booleans and null less
                Value::Number(_) | Value::Bool(_) | Value::Null => 24,
                other => other.to_string().len(),
            };
            // "name":value, plus the name again in `truncated` if marked
            2 * (json_len(name) + 3) + value_len
        })
        .sum();
    CORE_EVENT_BYTES + captures
}

/// Remove the next optional part (module doc order); its name, or None
/// when only the parts that are never dropped are left.
fn next_to_drop(event: &mut AuditEvent, config: &AuditConfig) -> Option<String> {
    let rank = |name: &str| -> u8 {
        let request = config.request_captures.iter().find(|c| c.name == name);
        match request.map(|c| &c.source) {
            Some(Source::Header(_)) => 0,
            None => 1, // a response capture
            Some(Source::VerifiedIdentity(_)) => 2,
            Some(Source::JsonPath { .. }) => 3,
        }
    };
    let victim = event
        .captured
        .iter()
        .map(|(name, value)| (rank(name), std::cmp::Reverse(value.to_string().len()), name))
        .min()
        .map(|(_, _, name)| name.clone());
    if let Some(name) = victim {
        event.captured.remove(&name);
        return Some(name);
    }
    if event.detail.take().is_some() {
        return Some("detail".into());
    }
    if event.correlation_id.take().is_some() {
        return Some("correlationId".into());
    }
    None
}

/// serde_json output with the characters of [`needs_unicode_escape`] that
/// serde_json leaves raw written as escapes. Compact JSON has them only
/// inside strings, where an escape means the same character.
pub fn to_one_line_json(json: String) -> String {
    // A byte scan (DEL, and the lead bytes of U+0080..U+009F and of
    // U+2028/9) keeps the common case cheap.
    if !json.bytes().any(|b| matches!(b, 0x7f | 0xc2 | 0xe2)) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if matches!(c, '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}') {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::config::AuditConfigSpec;
    use crate::audit::event::{AgentInfo, Decision};
    use crate::config::load;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn config(extra: &str) -> AuditConfig {
        let text = format!(
            "captureFields:\n  request:\n    - header: user-agent\n      as: client\n    - header: x-verified-agent-id\n      as: agentId\n    - jsonPath: '$.params.name'\n      as: toolName\n  response:\n    - jsonPath: '$.result.status.state'\n      as: taskState\n{extra}"
        );
        load::<AuditConfigSpec, AuditConfig>(text.as_bytes()).unwrap()
    }

    fn event() -> AuditEvent {
        AuditEvent {
            event_id: "rid".into(),
            timestamp: Some("2026-01-01T00:00:00.000Z".into()),
            correlation_id: Some("rid".into()),
            duration_ms: Some(3),
            path: Some("/mcp".into()),
            http_method: "POST".into(),
            status: Some(200),
            decision: Decision::Allowed,
            detail: None,
            jsonrpc_method: Some("tools/call".into()),
            jsonrpc_id: Some(json!(1)),
            batch_size: None,
            agent: Some(AgentInfo {
                id: "sentinel-1".into(),
                name: "Sentinel".into(),
                owner: "secops".into(),
                auth_method: "apiKey".into(),
            }),
            request_body: None,
            truncated: Vec::new(),
            captured: BTreeMap::new(),
        }
    }

    #[test]
    fn json_len_counts_escapes() {
        for s in [
            "abc",
            "é€😀",
            "a\"b\\c",
            "\n\t\u{1}\u{7f}\u{85}\u{2028}",
            "",
        ] {
            let quoted = to_one_line_json(serde_json::to_string(s).unwrap());
            assert_eq!(json_len(s) + 2, quoted.len(), "{s:?} -> {quoted}");
        }
    }

    #[test]
    fn cuts_fit_their_budget_on_char_boundaries() {
        assert_eq!(cut_to_bytes("short", 10), None);
        for s in [
            "x".repeat(500),
            "é".repeat(500),
            "\u{1}".repeat(500),
            "😀a".repeat(300),
        ] {
            for max in [3, 4, 5, 16, 128] {
                let cut = cut_to_bytes(&s, max).unwrap();
                assert!(json_len(&cut) <= max, "{max}: {cut:?}");
                assert!(cut.ends_with('…'));
            }
        }
        assert_eq!(cut_to_chars("abcdef", 4).as_deref(), Some("abcd…"));
        assert_eq!(cut_to_chars("abcd", 4), None);
        assert_eq!(clip_chars("abcdef".into(), 4), "abcde");
        assert_eq!(clip_chars("ééé".into(), 4), "ééé");
    }

    #[test]
    fn huge_client_fields_are_cut_and_named() {
        let c = config("");
        let mut e = event();
        e.jsonrpc_id = Some(json!("i".repeat(500_000)));
        e.jsonrpc_method = Some("m".repeat(100_000));
        e.path = Some(format!("/mcp/{}", "p".repeat(60_000)));
        e.http_method = "X".repeat(1000);
        e.event_id = "r".repeat(1000);
        e.captured.insert("toolName".into(), json!("t".repeat(257)));
        e.captured.insert("agentId".into(), json!("short"));
        bound_event(&mut e, &c);
        let text = e.to_json();
        assert!(text.len() < 4096, "{}", text.len());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["truncated"],
            json!([
                "eventId",
                "path",
                "httpMethod",
                "jsonrpcMethod",
                "jsonrpcId",
                "toolName"
            ])
        );
        assert_eq!(v["toolName"].as_str().unwrap().chars().count(), 257);
        assert!(v["jsonrpcId"].as_str().unwrap().ends_with('…'));
        assert!(v["path"].as_str().unwrap().starts_with("/mcp/ppp"));
        assert_eq!(v["agentId"], json!("short"));
        assert_eq!(v["decision"], json!("allowed"));
    }

    #[test]
    fn a_non_string_id_too_long_becomes_its_cut_text() {
        let c = config("");
        let mut e = event();
        e.jsonrpc_id = Some(json!({"a": "b".repeat(1000)}));
        bound_event(&mut e, &c);
        assert!(matches!(&e.jsonrpc_id, Some(Value::String(s)) if s.len() <= JSONRPC_ID_BYTES));
        assert_eq!(e.truncated, ["jsonrpcId"]);
    }

    #[test]
    fn over_the_event_bound_optional_parts_go_first() {
        let c = config("maxCaptureChars: 3000\nmaxEventBytes: 4096\n");
        let mut e = event();
        for name in ["client", "taskState", "agentId", "toolName"] {
            e.captured.insert(name.into(), json!("v".repeat(1500)));
        }
        e.detail = Some("via_something".into());
        bound_event(&mut e, &c);
        let text = e.to_json();
        assert!(text.len() <= 4096, "{}", text.len());
        // header capture, then response capture went; the rest fits
        assert_eq!(e.truncated, ["client", "taskState"]);
        assert!(e.captured.contains_key("toolName") && e.captured.contains_key("agentId"));
        assert_eq!(e.jsonrpc_method.as_deref(), Some("tools/call"));
        assert!(e.agent.is_some() && e.detail.is_some());
    }

    #[test]
    fn the_fixed_part_never_exceeds_core_event_bytes() {
        let c = config("maxEventBytes: 4096\n");
        let long = "\u{1}".repeat(10_000);
        let mut e = event();
        e.event_id = long.clone();
        e.correlation_id = Some(long.clone());
        e.path = Some(long.clone());
        e.http_method = long.clone();
        e.detail = Some(long.clone());
        e.jsonrpc_method = Some(long.clone());
        e.jsonrpc_id = Some(json!(long.clone()));
        e.batch_size = Some(usize::MAX);
        e.duration_ms = Some(u64::MAX);
        e.status = Some(u32::MAX);
        e.decision = Decision::UpstreamError;
        e.request_body = Some("invalid: invalid_json".into());
        e.agent = Some(AgentInfo {
            id: long.clone(),
            name: long.clone(),
            owner: long.clone(),
            auth_method: long,
        });
        bound_event(&mut e, &c);
        let len = e.to_json().len();
        assert!(len <= CORE_EVENT_BYTES, "{len}");
        assert_eq!(e.truncated.len(), 11);
    }

    #[test]
    fn the_cheap_size_bound_is_an_upper_bound() {
        let c = config("");
        let mut e = event();
        e.captured
            .insert("toolName".into(), json!("\u{1}".repeat(300)));
        e.captured.insert("toolError".into(), json!(true));
        e.captured
            .insert("n".into(), json!(-1.2345678901234567e-300));
        e.jsonrpc_id = Some(json!("x".repeat(1000)));
        bound_event(&mut e, &c);
        assert!(e.to_json().len() <= upper_bound_len(&e));
    }

    #[test]
    fn line_breakers_are_escaped() {
        let mut e = event();
        e.jsonrpc_method =
            Some("a\nb\r\u{85}c\u{2028}d\u{2029}\u{7f}{\"eventId\":\"forged\"}".into());
        let text = e.to_json();
        for bad in ['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}', '\u{7f}'] {
            assert!(!text.contains(bad), "{bad:?} in {text}");
        }
        assert_eq!(text.lines().count(), 1);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["jsonrpcMethod"], json!(e.jsonrpc_method.unwrap()));
        assert_eq!(v["eventId"], json!("rid"));
    }
}
