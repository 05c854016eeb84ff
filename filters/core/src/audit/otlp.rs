//! Audit events as OpenTelemetry logs (OTLP/HTTP, JSON encoding), so they
//! land in any standard collector (`POST /v1/logs`).
//!
//! One log record per event: the event time is the request start, every
//! event field becomes an attribute (nested objects flattened with dots:
//! `agent.id`), the body is a one-line summary, and the severity follows
//! the decision (INFO allowed, WARN denied, ERROR upstream failure).
//! Field names follow the OTLP JSON mapping of the protobuf (lowerCamelCase,
//! 64-bit integers as strings).

use crate::audit::event::parse_rfc3339_millis;
use serde_json::{json, Map, Value};

pub const SCOPE_NAME: &str = "gw.audit";

/// Encode a batch of event JSON strings. `now_unix_ms` is the observed time.
pub fn encode_logs(events: &[&str], service_name: &str, now_unix_ms: u64) -> Vec<u8> {
    let records: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .map(|event| log_record(&event, now_unix_ms))
        .collect();
    let body = json!({
        "resourceLogs": [{
            "resource": {"attributes": [attribute("service.name", json!(service_name))]},
            "scopeLogs": [{
                "scope": {"name": SCOPE_NAME, "version": env!("CARGO_PKG_VERSION")},
                "logRecords": records,
            }],
        }],
    });
    crate::audit::bounds::to_one_line_json(serde_json::to_string(&body).unwrap_or_default())
        .into_bytes()
}

fn log_record(event: &Value, now_unix_ms: u64) -> Value {
    let time_ms = event
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339_millis)
        .unwrap_or(now_unix_ms);
    let decision = event.get("decision").and_then(Value::as_str).unwrap_or("");
    let (severity_number, severity_text) = match decision {
        "allowed" => (9, "INFO"),
        "upstream_error" => (17, "ERROR"),
        _ => (13, "WARN"),
    };
    let what = event
        .get("jsonrpcMethod")
        .and_then(Value::as_str)
        .or_else(|| event.get("httpMethod").and_then(Value::as_str))
        .unwrap_or("request");
    let status = event
        .get("status")
        .map(Value::to_string)
        .unwrap_or_else(|| "-".into());
    let mut attributes = vec![attribute("event.name", json!(SCOPE_NAME))];
    if let Value::Object(map) = event {
        flatten("", map, &mut attributes);
    }
    json!({
        "timeUnixNano": nanos(time_ms),
        "observedTimeUnixNano": nanos(now_unix_ms),
        "severityNumber": severity_number,
        "severityText": severity_text,
        "body": {"stringValue": format!("{what} {decision} {status}")},
        "attributes": attributes,
    })
}

fn nanos(ms: u64) -> String {
    (u128::from(ms) * 1_000_000).to_string()
}

fn flatten(prefix: &str, map: &Map<String, Value>, out: &mut Vec<Value>) {
    for (key, value) in map {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => flatten(&name, inner, out),
            Value::Null => {}
            other => out.push(attribute(&name, other.clone())),
        }
    }
}

fn attribute(key: &str, value: Value) -> Value {
    json!({"key": key, "value": any_value(value)})
}

/// An OTLP `AnyValue`. Arrays (the event's `truncated` list) become an
/// `arrayValue`; serde_json escapes every control character in strings, so
/// a client's newline cannot start a record of its own here either.
fn any_value(value: Value) -> Value {
    match value {
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) => match n.as_i64() {
            Some(i) => json!({"intValue": i.to_string()}),
            None => json!({"doubleValue": n.as_f64().unwrap_or(0.0)}),
        },
        Value::String(s) => json!({"stringValue": s}),
        Value::Array(items) => {
            let values: Vec<Value> = items.into_iter().map(any_value).collect();
            json!({"arrayValue": {"values": values}})
        }
        other => json!({"stringValue": other.to_string()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_log_records() {
        let event = json!({
            "eventId": "rid", "timestamp": "2023-11-14T22:13:20.123Z", "httpMethod": "POST",
            "status": 200, "decision": "allowed", "jsonrpcMethod": "tools/call", "jsonrpcId": 7,
            "agent": {"id": "sentinel-1", "owner": "secops"}, "toolError": false, "durationMs": 3
        })
        .to_string();
        let denied =
            json!({"eventId":"r2","httpMethod":"GET","decision":"rate_limited","status":429})
                .to_string();
        let body = encode_logs(&[&event, &denied, "not json"], "gw", 1_700_000_001_000);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let rl = &v["resourceLogs"][0];
        assert_eq!(
            rl["resource"]["attributes"][0],
            json!({"key":"service.name","value":{"stringValue":"gw"}})
        );
        assert_eq!(rl["scopeLogs"][0]["scope"]["name"], json!("gw.audit"));
        let records = rl["scopeLogs"][0]["logRecords"].as_array().unwrap();
        assert_eq!(records.len(), 2, "unparsable events are skipped");
        let r = &records[0];
        assert_eq!(r["timeUnixNano"], json!("1700000000123000000"));
        assert_eq!(r["observedTimeUnixNano"], json!("1700000001000000000"));
        assert_eq!(r["severityText"], json!("INFO"));
        assert_eq!(r["body"]["stringValue"], json!("tools/call allowed 200"));
        let attrs: Map<String, Value> = r["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["key"].as_str().unwrap().to_string(), a["value"].clone()))
            .collect();
        assert_eq!(attrs["agent.id"], json!({"stringValue":"sentinel-1"}));
        assert_eq!(attrs["jsonrpcId"], json!({"intValue":"7"}));
        assert_eq!(attrs["toolError"], json!({"boolValue":false}));
        assert_eq!(attrs["event.name"], json!({"stringValue":"gw.audit"}));
        let r2 = &records[1];
        assert_eq!(r2["severityText"], json!("WARN"));
        assert_eq!(r2["timeUnixNano"], json!("1700000001000000000"));
        assert_eq!(r2["body"]["stringValue"], json!("GET rate_limited 429"));
    }

    #[test]
    fn injected_line_breaks_stay_inside_their_string() {
        let forged = "tools/call\n{\"eventId\":\"forged\"}\r\u{85}\u{2028}";
        let event = json!({"eventId": "rid", "decision": "allowed", "status": 200,
            "jsonrpcMethod": forged, "truncated": ["jsonrpcId", "path"]})
        .to_string();
        let body = String::from_utf8(encode_logs(&[&event], "gw", 0)).unwrap();
        for bad in ['\n', '\r', '\u{85}', '\u{2028}'] {
            assert!(!body.contains(bad), "{bad:?} raw in {body}");
        }
        let v: Value = serde_json::from_str(&body).unwrap();
        let r = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(
            r["body"]["stringValue"],
            json!(format!("{forged} allowed 200"))
        );
        let attrs = r["attributes"].as_array().unwrap();
        let truncated = attrs.iter().find(|a| a["key"] == "truncated").unwrap();
        assert_eq!(
            truncated["value"],
            json!({"arrayValue": {"values": [{"stringValue": "jsonrpcId"}, {"stringValue": "path"}]}})
        );
        assert_eq!(attrs.iter().filter(|a| a["key"] == "eventId").count(), 1);
    }
}
