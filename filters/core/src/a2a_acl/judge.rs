//! From what the body inspection found to the [`A2aCall`] the stage
//! decides: which message is the A2A operation, on which binding and REST
//! version, the skill hints of a send, whether a REST send is readable; and
//! whether the owner store must be asked about its task before deciding.
//! The adapter (`filters/a2a-acl`) reads the body and the host; the rules
//! are here.

use crate::a2a_acl::config::A2aAcl;
use crate::a2a_acl::owner_store::OwnerStore;
use crate::a2a_acl::request::{self, A2aCall};
use crate::protocol::a2a::{self, Binding};
use crate::protocol::jsonrpc::{self, JsonRpcBody};
use crate::protocol::operation::Operation;
use crate::protocol::request_facts::RequestFacts;
use serde_json::Value;

/// The JSON-RPC error message of an A2A batch (code -32600, HTTP 400).
pub const BATCH_REFUSED: &str = "A2A does not use JSON-RPC batches";

/// What the stage does with a request whose body it inspected.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// No A2A operation in it (an agent card alias, a non-A2A method).
    NotA2a,
    /// A JSON-RPC batch carrying an A2A operation: A2A has no batches, and
    /// judging one message of several would let the others through.
    Batch,
    /// One A2A operation, to be decided.
    Call(A2aCall),
}

/// Judge the inspected request (`facts`, and the JSON-RPC body when it
/// was parsed; `body`: its bytes) sent as `http_method` to `path`.
pub fn judge(
    acl: &A2aAcl,
    facts: &RequestFacts,
    parsed: Option<&JsonRpcBody>,
    body: &[u8],
    http_method: &str,
    path: &str,
) -> Judgement {
    let is_a2a = |m: &crate::protocol::request_facts::MessageFacts| {
        m.operation().is_some_and(Operation::is_a2a)
    };
    if facts.batch {
        return if facts.messages.iter().any(is_a2a) {
            Judgement::Batch
        } else {
            Judgement::NotA2a
        };
    }
    let Some(message) = facts.single().filter(|m| is_a2a(m)) else {
        return Judgement::NotA2a;
    };
    let Some(operation) = message.operation() else {
        return Judgement::NotA2a;
    };
    let binding = if facts.binding.as_deref() == Some(Binding::HttpJson.as_str()) {
        Binding::HttpJson
    } else {
        Binding::JsonRpc
    };
    let is_send = matches!(operation, Operation::A2aSend | Operation::A2aStream);
    let skills = if acl.judges_skills && is_send {
        send_params(parsed, body, binding)
            .map(|p| request::skill_hints(&p))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Judgement::Call(A2aCall {
        operation,
        binding,
        method: match binding {
            Binding::JsonRpc => message.method.clone(),
            Binding::HttpJson => None,
        },
        rest_version: match binding {
            Binding::HttpJson => a2a::rest_call(http_method, path).map(|c| c.version),
            Binding::JsonRpc => None,
        },
        id: message.id.clone(),
        task_id: message.task_id.clone(),
        skills,
        unreadable_body: request::unreadable_send(operation, binding, body),
    })
}

/// The params of a send: the parsed JSON-RPC message's, else the body read
/// strictly (a REST body is the params).
fn send_params(parsed: Option<&JsonRpcBody>, body: &[u8], binding: Binding) -> Option<Value> {
    if let Some(p) = parsed.and_then(|p| p.messages().first()?.params().cloned()) {
        return Some(p);
    }
    let v = jsonrpc::parse_strict_json(body).ok()?;
    match binding {
        Binding::JsonRpc => v.get("params").cloned(),
        Binding::HttpJson => Some(v),
    }
}

/// The store to ask, and the task to ask about, when isolation is on and
/// shared across replicas and the call names a task. The adapter asks only
/// if this replica's table does not know the task and the caller is not
/// exempt (both read from the host); a store that cannot answer leaves the
/// task unknown, which refuses it (fail closed).
pub fn owner_to_fetch<'a>(acl: &'a A2aAcl, call: &'a A2aCall) -> Option<(&'a OwnerStore, &'a str)> {
    if !acl.isolation.enabled {
        return None;
    }
    Some((acl.isolation.redis.as_ref()?, call.task_id.as_deref()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::a2a_acl::config::A2aAclSpec;
    use crate::protocol::request_facts::MessageFacts;

    fn acl(yaml: &str) -> A2aAcl {
        let spec: A2aAclSpec = serde_yaml_ng::from_str(yaml).unwrap();
        A2aAcl::try_from(spec).unwrap()
    }

    fn message(method: &str, task: Option<&str>) -> MessageFacts {
        MessageFacts {
            method: Some(method.into()),
            id: Some(Value::from(7)),
            task_id: task.map(str::to_string),
            ..MessageFacts::default()
        }
    }

    fn facts(messages: Vec<MessageFacts>, batch: bool) -> RequestFacts {
        RequestFacts {
            batch,
            messages,
            ..RequestFacts::default()
        }
    }

    const SKILLS: &str =
        "accessRules:\n  - {agentPattern: '*', allowedOperations: ['*'], allowedSkills: [echo]}\n";

    #[test]
    fn one_a2a_message_becomes_a_call() {
        let acl = acl(SKILLS);
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"message/send","params":{"message":{"metadata":{"skillId":"echo"}}}}"#;
        let f = facts(vec![message("message/send", None)], false);
        let Judgement::Call(call) = judge(&acl, &f, None, body, "POST", "/a2a") else {
            panic!("not a call");
        };
        assert_eq!(call.operation, Operation::A2aSend);
        assert_eq!(call.binding, Binding::JsonRpc);
        assert_eq!(call.method.as_deref(), Some("message/send"));
        assert_eq!(call.id, Some(Value::from(7)));
        assert_eq!(call.skills, ["echo"]);
        assert!(!call.unreadable_body);
    }

    #[test]
    fn batches_and_other_methods() {
        let acl = acl(SKILLS);
        let a2a = message("tasks/get", Some("t"));
        let other = message("tools/call", None);
        let batch = facts(vec![other.clone(), a2a.clone()], true);
        assert_eq!(
            judge(&acl, &batch, None, b"", "POST", "/a2a"),
            Judgement::Batch
        );
        let mcp_batch = facts(vec![other.clone()], true);
        assert_eq!(
            judge(&acl, &mcp_batch, None, b"", "POST", "/a2a"),
            Judgement::NotA2a
        );
        assert_eq!(
            judge(&acl, &facts(vec![other], false), None, b"", "POST", "/a2a"),
            Judgement::NotA2a
        );
    }

    #[test]
    fn skills_are_read_only_when_rules_name_them() {
        let acl = acl("accessRules:\n  - {agentPattern: '*', allowedOperations: ['*']}\n");
        let body = br#"{"jsonrpc":"2.0","id":7,"method":"message/send","params":{"metadata":{"skill":"x"}}}"#;
        let f = facts(vec![message("message/send", None)], false);
        let Judgement::Call(call) = judge(&acl, &f, None, body, "POST", "/a2a") else {
            panic!("not a call");
        };
        assert!(call.skills.is_empty());
    }

    #[test]
    fn the_store_is_asked_only_with_isolation_a_store_and_a_task() {
        let call = |task: Option<&str>| {
            let f = facts(vec![message("tasks/get", task)], false);
            match judge(&acl(SKILLS), &f, None, b"", "POST", "/a2a") {
                Judgement::Call(c) => c,
                other => panic!("{other:?}"),
            }
        };
        let shared = acl("taskIsolation: {redisStore: {cluster: webdis}}\n");
        let named = call(Some("t-1"));
        let (store, task) = owner_to_fetch(&shared, &named).unwrap();
        assert_eq!((store.upstream.cluster.as_str(), task), ("webdis", "t-1"));
        assert!(owner_to_fetch(&shared, &call(None)).is_none());
        let local = acl("taskIsolation: {}\n");
        assert!(owner_to_fetch(&local, &call(Some("t-1"))).is_none());
        let off = acl("taskIsolation: {enabled: false, redisStore: {cluster: webdis}}\n");
        assert!(owner_to_fetch(&off, &call(Some("t-1"))).is_none());
    }
}
