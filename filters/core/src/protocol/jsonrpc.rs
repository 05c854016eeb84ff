//! Strict JSON-RPC 2.0 body inspection.
//!
//! Parsers disagree about duplicate object keys (first wins vs last wins), so
//! a body like `{"params":{"name":"read_config","name":"execute_code"}}`
//! could pass our ACL with one name and run on the server with the other. We
//! therefore parse with a visitor that rejects duplicate keys at every depth.
//! `\u`-escapes are decoded by the JSON parser, so `"\u0065xecute_code"` is
//! seen as `execute_code`, exactly as the server will see it.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A body that is not acceptable JSON-RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectError {
    /// Not JSON at all, or JSON with duplicate keys (the message says which).
    InvalidJson(String),
    /// Valid JSON that is not a JSON-RPC request, notification or response.
    NotJsonRpc(String),
    /// `[]`: the spec calls an empty batch invalid.
    EmptyBatch,
}

/// Every JSON-RPC error code the gateway answers with, in one place: the
/// JSON-RPC 2.0 ones, then the implementation-defined server errors
/// (-32000 to -32099) of MCP and of our own defaults.
pub mod codes {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// Invalid params (MCP: an `initialize` asking for an unsupported version).
    pub const INVALID_PARAMS: i64 = -32602;
    /// The gateway cannot do its part (e.g. filter a compressed tool list).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The tool ACL's default code for a denied call (`jsonRpcCode`).
    pub const TOOL_DENIED: i64 = -32001;
    /// An `Mcp-Method` / `Mcp-Name` header disagreeing with the body (MCP 2026-07-28).
    pub const HEADER_MISMATCH: i64 = -32020;
    /// An unsupported `MCP-Protocol-Version` header (MCP 2026-07-28).
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    /// The rate limit's default code for a limited call (`jsonRpcError.code`).
    pub const RATE_LIMITED: i64 = -32029;
}

impl InspectError {
    /// The JSON-RPC error code for a reply: parse error or invalid request.
    pub fn jsonrpc_code(&self) -> i64 {
        match self {
            InspectError::InvalidJson(_) => codes::PARSE_ERROR,
            _ => codes::INVALID_REQUEST,
        }
    }
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InspectError::InvalidJson(m) => write!(f, "request body is not valid JSON: {m}"),
            InspectError::NotJsonRpc(m) => write!(f, "request body is not JSON-RPC 2.0: {m}"),
            InspectError::EmptyBatch => f.write_str("empty JSON-RPC batch"),
        }
    }
}

/// One JSON-RPC message: a request (method + id), a notification (method, no
/// id) or a response (result/error + id) that a client POSTs back.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    value: Map<String, Value>,
}

impl Message {
    pub fn method(&self) -> Option<&str> {
        self.value.get("method").and_then(Value::as_str)
    }
    /// `None` for notifications. Kept as JSON so that replies echo it exactly
    /// (a string id stays a string, `7` stays a number).
    pub fn id(&self) -> Option<&Value> {
        self.value.get("id")
    }
    pub fn params(&self) -> Option<&Value> {
        self.value.get("params")
    }
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params()?.get(key)?.as_str()
    }
    pub fn is_request(&self) -> bool {
        self.method().is_some() && self.id().is_some()
    }
    pub fn as_value(&self) -> &Map<String, Value> {
        &self.value
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum JsonRpcBody {
    Single(Message),
    Batch(Vec<Message>),
}

impl JsonRpcBody {
    pub fn messages(&self) -> &[Message] {
        match self {
            JsonRpcBody::Single(m) => std::slice::from_ref(m),
            JsonRpcBody::Batch(ms) => ms,
        }
    }
    pub fn is_batch(&self) -> bool {
        matches!(self, JsonRpcBody::Batch(_))
    }
}

/// Parse JSON rejecting duplicate keys at any depth.
pub fn parse_strict_json(body: &[u8]) -> Result<Value, InspectError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let StrictValue(value) =
        StrictValue::deserialize(&mut de).map_err(|e| InspectError::InvalidJson(e.to_string()))?;
    de.end()
        .map_err(|e| InspectError::InvalidJson(e.to_string()))?;
    Ok(value)
}

/// Parse a request body into JSON-RPC messages.
pub fn parse(body: &[u8]) -> Result<JsonRpcBody, InspectError> {
    match parse_strict_json(body)? {
        Value::Object(map) => Ok(JsonRpcBody::Single(message(map)?)),
        Value::Array(items) if items.is_empty() => Err(InspectError::EmptyBatch),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(map) => message(map)
                    .map_err(|e| InspectError::NotJsonRpc(format!("batch item {i}: {e}"))),
                _ => Err(InspectError::NotJsonRpc(format!(
                    "batch item {i} is not an object"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(JsonRpcBody::Batch),
        _ => Err(InspectError::NotJsonRpc(
            "expected an object or an array of objects".into(),
        )),
    }
}

/// One JSON-RPC message from a parsed object (checked as [`parse`] checks
/// every message).
pub fn message(map: Map<String, Value>) -> Result<Message, InspectError> {
    if map.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(InspectError::NotJsonRpc("`jsonrpc` must be \"2.0\"".into()));
    }
    match map.get("method") {
        None | Some(Value::String(_)) => {}
        Some(_) => return Err(InspectError::NotJsonRpc("`method` must be a string".into())),
    }
    match map.get("id") {
        None | Some(Value::String(_) | Value::Number(_) | Value::Null) => {}
        Some(_) => {
            return Err(InspectError::NotJsonRpc(
                "`id` must be a string, a number or null".into(),
            ))
        }
    }
    if map.get("method").is_none() && !(map.contains_key("result") || map.contains_key("error")) {
        return Err(InspectError::NotJsonRpc(
            "a message needs `method`, `result` or `error`".into(),
        ));
    }
    Ok(Message { value: map })
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let StrictValue(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_request_in_any_key_order() {
        let body = br#"{"params":{"arguments":{},"name":"search_patterns"},"id":"a-1","method":"tools/call","jsonrpc":"2.0"}"#;
        let parsed = parse(body).unwrap();
        let [m] = parsed.messages() else { panic!() };
        assert_eq!(m.method(), Some("tools/call"));
        assert_eq!(m.id(), Some(&json!("a-1")));
        assert_eq!(m.param_str("name"), Some("search_patterns"));
        assert!(m.is_request());
        assert!(!parsed.is_batch());
    }

    #[test]
    fn batch_exposes_every_message() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"execute_code"}}]"#;
        let parsed = parse(body).unwrap();
        assert!(parsed.is_batch());
        assert_eq!(parsed.messages()[1].param_str("name"), Some("execute_code"));
        assert_eq!(parse(b"[]"), Err(InspectError::EmptyBatch));
        assert!(matches!(parse(b"[1]"), Err(InspectError::NotJsonRpc(_))));
    }

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth() {
        let top = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}"#;
        let nested = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_config","name":"execute_code"}}"#;
        for body in [&top[..], &nested[..]] {
            match parse(body) {
                Err(InspectError::InvalidJson(m)) => assert!(m.contains("duplicate key"), "{m}"),
                other => panic!("expected duplicate-key error, got {other:?}"),
            }
        }
    }

    #[test]
    fn unicode_escapes_are_decoded_like_the_server_does() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\u0065xecute_code"}}"#;
        assert_eq!(
            parse(body).unwrap().messages()[0].param_str("name"),
            Some("execute_code")
        );
    }

    #[test]
    fn notifications_and_responses_are_messages() {
        let n = parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(!n.messages()[0].is_request());
        let r = parse(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#).unwrap();
        assert_eq!(r.messages()[0].method(), None);
    }

    #[test]
    fn malformed_bodies_get_precise_errors() {
        assert!(matches!(parse(b"{"), Err(InspectError::InvalidJson(_))));
        assert!(matches!(
            parse(b"{} trailing"),
            Err(InspectError::InvalidJson(_))
        ));
        assert!(matches!(parse(b"\"x\""), Err(InspectError::NotJsonRpc(_))));
        assert!(matches!(
            parse(br#"{"jsonrpc":"1.0","method":"x"}"#),
            Err(InspectError::NotJsonRpc(_))
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":7}"#),
            Err(InspectError::NotJsonRpc(_))
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":{},"method":"x"}"#),
            Err(InspectError::NotJsonRpc(_))
        ));
        assert_eq!(
            InspectError::InvalidJson(String::new()).jsonrpc_code(),
            -32700
        );
        assert_eq!(InspectError::EmptyBatch.jsonrpc_code(), -32600);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
