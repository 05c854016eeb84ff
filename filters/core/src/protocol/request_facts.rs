//! What the request body says, extracted once per request.
//!
//! The first of our filters that reads a request body parses it (strictly,
//! see [`crate::protocol::jsonrpc`]), builds [`RequestFacts`] and stores them as filter
//! state; the others read that instead of parsing the body again. That keeps
//! body inspection to one parse per request however many filters need it.

use crate::protocol::a2a::{Binding, RestCall};
use crate::protocol::jsonrpc::{self, InspectError, JsonRpcBody, Message};
use crate::protocol::operation::Operation;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Facts about one JSON-RPC message of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MessageFacts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The request id as JSON (absent for notifications).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// `params.name` of `tools/call` and `prompts/get`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `params.uri` of `resources/read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// A2A message part kind (`text`, `file`, `data`), from
    /// `params.message.parts[0]`: 0.3 `kind`, 0.1/0.2 `type`, and for 1.0
    /// (no discriminator) the member that is present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_kind: Option<String>,
    /// The A2A task the message is about: the REST path's `{id}`, or
    /// `params.id` (get, cancel, subscribe), `params.taskId` (push
    /// configs) and `params.message.taskId` (a send continuing a task).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

impl MessageFacts {
    pub fn from_message(message: &Message) -> Self {
        let method = message.method().map(str::to_string);
        let operation = message.method().and_then(Operation::from_method);
        let name = match operation {
            Some(Operation::McpToolsCall | Operation::McpPromptsGet) => {
                message.param_str("name").map(str::to_string)
            }
            _ => None,
        };
        let uri = match operation {
            Some(Operation::McpResourcesRead) => message.param_str("uri").map(str::to_string),
            _ => None,
        };
        let message_kind = match operation {
            Some(op) if op.is_a2a() => first_part_kind(message.params()),
            _ => None,
        };
        let task_id = operation.and_then(|op| task_id(op, message.params()));
        Self {
            method,
            id: message.id().cloned(),
            name,
            uri,
            message_kind,
            task_id,
        }
    }

    pub fn operation(&self) -> Option<Operation> {
        self.method.as_deref().and_then(Operation::from_method)
    }
}

fn task_id(operation: Operation, params: Option<&Value>) -> Option<String> {
    let params = params?;
    let found = match operation {
        Operation::A2aGetTask | Operation::A2aCancelTask | Operation::A2aResubscribe => {
            params.get("id")
        }
        Operation::A2aPushConfig => params.get("taskId").or_else(|| params.get("id")),
        Operation::A2aSend | Operation::A2aStream => params.get("message")?.get("taskId"),
        _ => None,
    };
    found.and_then(Value::as_str).map(str::to_string)
}

fn first_part_kind(params: Option<&Value>) -> Option<String> {
    let part = params?.get("message")?.get("parts")?.get(0)?;
    if let Some(kind) = part
        .get("kind")
        .or_else(|| part.get("type"))
        .and_then(Value::as_str)
    {
        return Some(kind.to_string());
    }
    ["text", "raw", "url", "data", "file"]
        .into_iter()
        .find(|member| part.get(member).is_some())
        .map(str::to_string)
}

/// Everything later filters need to know about the request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RequestFacts {
    /// The body was a JSON-RPC batch (an array).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
    pub messages: Vec<MessageFacts>,
    /// `HTTP+JSON` for A2A's REST binding (absent: JSON-RPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
}

impl RequestFacts {
    pub fn from_body(body: &JsonRpcBody) -> Self {
        Self {
            batch: body.is_batch(),
            messages: body
                .messages()
                .iter()
                .map(MessageFacts::from_message)
                .collect(),
            binding: None,
        }
    }

    /// The facts of an A2A REST request, and the request as the JSON-RPC
    /// binding would carry it (`method` the 1.0 operation name, `params`
    /// the body with the path's ids; no `id`), so that everything written
    /// for JSON-RPC (`$.method`, `$.params.message.parts[0].kind`,
    /// `$.params.id` captures, operation families) reads both bindings.
    ///
    /// The operation comes from the route alone and the body is never
    /// refused: it is the agent's to judge (a body that is not a JSON
    /// object, or has duplicate keys, only leaves the facts without a
    /// message kind).
    pub fn from_rest(call: &RestCall, body: &[u8]) -> (JsonRpcBody, Self) {
        let mut params = match jsonrpc::parse_strict_json(body) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        // The path's ids win over the body's, as they do at the agent.
        let mut set = |key: &str, value: &Option<String>| {
            if let Some(v) = value {
                params.insert(key.to_string(), Value::String(v.clone()));
            }
        };
        if call.operation == Operation::A2aPushConfig {
            set("taskId", &call.task_id);
            set("id", &call.config_id);
        } else {
            set("id", &call.task_id);
        }
        set("tenant", &call.tenant);
        let mut message = Map::new();
        message.insert("jsonrpc".into(), Value::String("2.0".into()));
        message.insert("method".into(), Value::String(call.method.into()));
        message.insert("params".into(), Value::Object(params));
        let view = match jsonrpc::message(message.clone()) {
            Ok(m) => JsonRpcBody::Single(m),
            // Cannot happen (we built a valid message); keep the facts anyway.
            Err(_) => JsonRpcBody::Batch(Vec::new()),
        };
        let mut facts = Self::from_body(&view);
        facts.binding = Some(Binding::HttpJson.as_str().to_string());
        (view, facts)
    }

    /// Parse a request body and extract its facts.
    pub fn inspect(body: &[u8]) -> Result<(JsonRpcBody, Self), InspectError> {
        let parsed = jsonrpc::parse(body)?;
        let facts = Self::from_body(&parsed);
        Ok((parsed, facts))
    }

    /// The single message of a non-batch body.
    pub fn single(&self) -> Option<&MessageFacts> {
        match self.messages.as_slice() {
            [only] if !self.batch => Some(only),
            _ => None,
        }
    }

    /// How many messages of the body belong to `operation`: a batch of three
    /// `tools/call` is three tool calls.
    pub fn count(&self, operation: Operation) -> usize {
        self.messages
            .iter()
            .filter(|m| m.operation() == Some(operation))
            .count()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The identity the identity filter verified, handed on as filter state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedIdentity {
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_owner: String,
    /// `apiKey` or `oauth2ClientCredentials`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_method: String,
}

impl VerifiedIdentity {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tools_call_facts_round_trip_through_filter_state() {
        let (_, facts) = RequestFacts::inspect(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_patterns","arguments":{"query":"secret"}}}"#,
        )
        .unwrap();
        let single = facts.single().unwrap();
        assert_eq!(single.name.as_deref(), Some("search_patterns"));
        assert_eq!(single.id, Some(json!(7)));
        assert_eq!(single.operation(), Some(Operation::McpToolsCall));
        let json = facts.to_json();
        assert!(
            !json.contains("secret"),
            "arguments must not be handed on: {json}"
        );
        assert_eq!(RequestFacts::from_json(json.as_bytes()), Some(facts));
    }

    #[test]
    fn a2a_message_kind_across_versions() {
        for (body, kind) in [
            (
                json!({"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"parts":[{"kind":"text","text":"hi"}]}}}),
                "text",
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"tasks/send","params":{"message":{"parts":[{"type":"data","data":{}}]}}}),
                "data",
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"parts":[{"url":"https://x","mediaType":"image/png"}]}}}),
                "url",
            ),
        ] {
            let (_, facts) = RequestFacts::inspect(body.to_string().as_bytes()).unwrap();
            assert_eq!(facts.messages[0].message_kind.as_deref(), Some(kind));
        }
    }

    #[test]
    fn rest_requests_read_like_their_jsonrpc_twins() {
        use crate::protocol::a2a::rest_call;
        let send = rest_call("POST", "/a2a/rest/message:send").unwrap();
        let (view, facts) = RequestFacts::from_rest(
            &send,
            br#"{"message":{"messageId":"m1","role":"ROLE_USER","taskId":"t-7","parts":[{"text":"hello"}]}}"#,
        );
        let m = facts.single().unwrap();
        assert_eq!(m.method.as_deref(), Some("SendMessage"));
        assert_eq!(m.operation(), Some(Operation::A2aSend));
        assert_eq!(m.id, None);
        assert_eq!(m.message_kind.as_deref(), Some("text"));
        assert_eq!(m.task_id.as_deref(), Some("t-7"));
        assert_eq!(facts.binding.as_deref(), Some("HTTP+JSON"));
        assert_eq!(facts.count(Operation::A2aSend), 1);
        assert_eq!(view.messages()[0].method(), Some("SendMessage"));
        assert_eq!(
            RequestFacts::from_json(facts.to_json().as_bytes()),
            Some(facts)
        );

        let get = rest_call("GET", "/a2a/rest/tasks/t-1?historyLength=2").unwrap();
        let (view, facts) = RequestFacts::from_rest(&get, b"");
        assert_eq!(facts.messages[0].task_id.as_deref(), Some("t-1"));
        assert_eq!(view.messages()[0].param_str("id"), Some("t-1"));
        let push = rest_call("GET", "/a2a/rest/tasks/t-2/pushNotificationConfigs/c").unwrap();
        let (view, facts) = RequestFacts::from_rest(&push, b"");
        assert_eq!(facts.messages[0].task_id.as_deref(), Some("t-2"));
        assert_eq!(view.messages()[0].param_str("id"), Some("c"));
        // Whatever the body: never refused, the route decides the operation.
        for body in [
            &b"not json"[..],
            b"[1,2]",
            br#"{"a":1,"a":2}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        ] {
            let (_, facts) = RequestFacts::from_rest(&send, body);
            assert_eq!(
                facts.single().and_then(MessageFacts::operation),
                Some(Operation::A2aSend)
            );
        }
    }

    #[test]
    fn jsonrpc_task_ids() {
        for (body, id) in [
            (
                json!({"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t1"}}),
                "t1",
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"tasks/cancel","params":{"id":"t2"}}),
                "t2",
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"CreateTaskPushNotificationConfig","params":{"taskId":"t3","url":"https://x"}}),
                "t3",
            ),
            (
                json!({"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"taskId":"t4","parts":[]}}}),
                "t4",
            ),
        ] {
            let (_, facts) = RequestFacts::inspect(body.to_string().as_bytes()).unwrap();
            assert_eq!(facts.messages[0].task_id.as_deref(), Some(id));
        }
    }

    #[test]
    fn batches_count_every_operation() {
        let (_, facts) = RequestFacts::inspect(
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#,
        )
        .unwrap();
        assert!(facts.batch);
        assert_eq!(facts.single(), None);
        assert_eq!(facts.count(Operation::McpToolsCall), 2);
    }

    #[test]
    fn resources_and_prompts_are_named() {
        let (_, f) = RequestFacts::inspect(br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///etc/x"}}"#).unwrap();
        assert_eq!(f.messages[0].uri.as_deref(), Some("file:///etc/x"));
        let (_, f) = RequestFacts::inspect(
            br#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}"#,
        )
        .unwrap();
        assert_eq!(f.messages[0].name.as_deref(), Some("p"));
    }
}
