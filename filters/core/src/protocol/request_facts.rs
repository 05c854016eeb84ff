//! What the request body says, extracted once per request.
//!
//! The first of our filters that reads a request body parses it (strictly,
//! see [`crate::protocol::jsonrpc`]), builds [`RequestFacts`] and stores them as filter
//! state; the others read that instead of parsing the body again. That keeps
//! body inspection to one parse per request however many filters need it.

use crate::protocol::jsonrpc::{self, InspectError, JsonRpcBody, Message};
use crate::protocol::operation::Operation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
        Self {
            method,
            id: message.id().cloned(),
            name,
            uri,
            message_kind,
        }
    }

    pub fn operation(&self) -> Option<Operation> {
        self.method.as_deref().and_then(Operation::from_method)
    }
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
        }
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
