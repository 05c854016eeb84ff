//! The request-side decision of the A2A stage, in order:
//!
//! 1. version pinning (before anything else: a client of an unaccepted
//!    version learns that first, whoever it is);
//! 2. access rules (operation, and the skill a send names);
//! 3. task isolation: a request about a task (get, cancel, subscribe, push
//!    config, a send continuing it) must come from the agent that created
//!    it, else it gets task-not-found; a list is marked for filtering; a
//!    send or stream is marked so its answer's task ids are recorded.
//!
//! Unknown task ids (never seen by this gateway, created before a restart,
//! expired from the table, or created through another replica) are
//! refused like another agent's: letting them through would leak every
//! task the table does not hold. Exempt agents (`exemptAgents`) are not
//! checked.

use crate::a2a_acl::config::A2aAcl;
use crate::a2a_acl::errors::{self, A2aReply, Detail, Kind};
use crate::a2a_acl::rules::{operation_name, Caller};
use crate::protocol::a2a::{A2aVersion, Binding};
use crate::protocol::operation::Operation;
use serde_json::{json, Value};

/// One A2A request as the stage judges it (owned: it may wait for the
/// owner store's answer before it is decided).
#[derive(Debug, Clone, PartialEq)]
pub struct A2aCall {
    pub operation: Operation,
    pub binding: Binding,
    /// JSON-RPC method name (`None` on REST).
    pub method: Option<String>,
    /// Version of a REST route (`/v1`: 0.3).
    pub rest_version: Option<A2aVersion>,
    /// JSON-RPC id, for the error.
    pub id: Option<Value>,
    /// The task the request is about.
    pub task_id: Option<String>,
    /// Skill hints of a send (see [`skill_hints`]).
    pub skills: Vec<String>,
    /// A REST send whose body is not strict JSON (duplicate keys, `NaN`,
    /// not JSON at all): the gateway cannot know which `message.taskId` or
    /// skill the agent will read, so it refuses it (see [`unreadable_send`]).
    pub unreadable_body: bool,
}

/// Whether a REST send's body must be refused as unreadable: anything but
/// strict JSON (an agent's lenient parser may take the second of two
/// `taskId`s, or accept `NaN`, where the gateway saw none).
pub fn unreadable_send(operation: Operation, binding: Binding, body: &[u8]) -> bool {
    binding == Binding::HttpJson
        && matches!(operation, Operation::A2aSend | Operation::A2aStream)
        && crate::protocol::jsonrpc::parse_strict_json(body).is_err()
}

/// What to do with the answer of a request let through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Record the task ids of the answer as the caller's (send, stream).
    pub record_owner: Option<String>,
    /// Cut a list answer down to this agent's tasks.
    pub list_owner: Option<ListView>,
}

/// Whose tasks a list answer may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListView {
    /// The agent's own (an anonymous caller sees none).
    Owner(Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass(Plan),
    Refuse { reply: A2aReply, log: String },
}

/// Where a message names the skill it addresses. A2A has no standard field
/// for it; these are the metadata keys clients use, on the message and on
/// the request. All present must be allowed, so a client cannot show the
/// gateway one and the agent another.
pub const SKILL_HINT_KEYS: &[&str] = &["skillId", "skill_id", "skill"];

/// Skill hints of a send's params (JSON-RPC `params`, or a REST body).
pub fn skill_hints(params: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let metas = [
        params.get("message").and_then(|m| m.get("metadata")),
        params.get("metadata"),
    ];
    for meta in metas.into_iter().flatten() {
        for key in SKILL_HINT_KEYS {
            match meta.get(*key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => out.push(s.clone()),
                Some(Value::Array(a)) => out.extend(a.iter().map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })),
                Some(other) => out.push(other.to_string()),
            }
        }
    }
    out
}

fn refuse(acl: &A2aAcl, call: &A2aCall, kind: Kind, detail: Detail, log: String) -> Verdict {
    let reply = match call.binding {
        Binding::JsonRpc => errors::jsonrpc(kind, call.id.as_ref(), &detail, acl.denied_code),
        Binding::HttpJson => errors::rest(kind, &detail),
    };
    Verdict::Refuse { reply, log }
}

/// Judge `call` by `caller` (`None`: no verified identity). `owner_of`
/// looks a task up in the ownership table.
pub fn decide(
    acl: &A2aAcl,
    call: &A2aCall,
    version_header: Option<&str>,
    caller: Option<Caller<'_>>,
    mut owner_of: impl FnMut(&str) -> Option<String>,
) -> Verdict {
    if let Err(v) = acl
        .versions
        .check(version_header, call.method.as_deref(), call.rest_version)
    {
        let mut detail = Detail {
            message: format!(
                "A2A version {} is not supported by this gateway (supported: {})",
                v.requested,
                v.supported.join(", ")
            ),
            ..Detail::default()
        };
        detail
            .metadata
            .insert("requested".into(), Value::String(v.requested.clone()));
        detail
            .metadata
            .insert("supported".into(), json!(v.supported));
        let log = format!("version {} refused", v.requested);
        return refuse(acl, call, Kind::VersionNotSupported, detail, log);
    }
    if call.unreadable_body {
        let detail = Detail {
            message: "request body is not strict JSON (duplicate keys, non-standard numbers, \
                      or not JSON): the gateway cannot judge it"
                .into(),
            ..Detail::default()
        };
        let log = "unreadable REST send refused".to_string();
        return refuse(acl, call, Kind::InvalidRequest, detail, log);
    }
    if let Some(rules) = &acl.rules {
        if let Err(d) = rules.check(caller, call.operation, &call.skills) {
            let agent = caller.map_or("", |c| c.id);
            let mut detail = Detail {
                message: format!("Agent '{agent}' is not authorized: {}", d.reason),
                ..Detail::default()
            };
            detail.metadata.insert(
                "operation".into(),
                Value::String(operation_name(call.operation).into()),
            );
            let log = format!(
                "denied {} for agent `{agent}` ({})",
                operation_name(call.operation),
                d.reason
            );
            return refuse(acl, call, Kind::AccessDenied, detail, log);
        }
    }
    let iso = &acl.isolation;
    let owner = caller.map(|c| c.id.to_string());
    let mut plan = Plan::default();
    if matches!(call.operation, Operation::A2aSend | Operation::A2aStream) {
        plan.record_owner.clone_from(&owner);
    }
    if !iso.enabled || caller.is_some_and(|c| iso.exempt.matches(c.id)) {
        return Verdict::Pass(plan);
    }
    if call.operation == Operation::A2aListTasks {
        plan.list_owner = Some(ListView::Owner(owner));
        return Verdict::Pass(plan);
    }
    let Some(task) = call.task_id.as_deref() else {
        return Verdict::Pass(plan);
    };
    let found = owner_of(task);
    if found.is_some() && found == owner {
        return Verdict::Pass(plan);
    }
    let detail = Detail {
        message: format!("Task not found: {task}"),
        ..Detail::default()
    };
    let log = format!(
        "task `{task}` hidden from agent `{}` ({})",
        owner.as_deref().unwrap_or(""),
        if found.is_some() {
            "another agent's"
        } else {
            "unknown"
        }
    );
    refuse(acl, call, Kind::TaskNotFound, detail, log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::a2a_acl::config::A2aAclSpec;

    fn acl(yaml: &str) -> A2aAcl {
        let spec: A2aAclSpec = serde_yaml_ng::from_str(yaml).unwrap();
        A2aAcl::try_from(spec).unwrap()
    }

    const SHIPPED: &str = r#"
accessRules:
  - agentPattern: "sentinel-*"
    allowedOperations: ["*"]
    deniedOperations: [pushConfig]
  - agentPattern: "alchemy-*"
    allowedOperations: [send, stream, get, list, cancel, subscribe]
    allowedSkills: ["echo", "render-*"]
    deniedSkills: ["render-secret"]
  - agentPattern: "admin-*"
    allowedOperations: ["*"]
versions: ["0.3", "1.0"]
taskIsolation:
  exemptAgents: ["admin-*"]
"#;

    fn call(op: Operation, task: Option<&str>) -> A2aCall {
        A2aCall {
            operation: op,
            binding: Binding::JsonRpc,
            method: None,
            rest_version: None,
            id: None,
            task_id: task.map(str::to_string),
            skills: Vec::new(),
            unreadable_body: false,
        }
    }

    fn who(id: &str) -> Option<Caller<'_>> {
        Some(Caller { id, name: "" })
    }

    fn owners(task: &str) -> Option<String> {
        match task {
            "t-sentinel" => Some("sentinel-1".into()),
            "t-alchemy" => Some("alchemy-1".into()),
            _ => None,
        }
    }

    fn kind(o: &Verdict) -> Option<Kind> {
        match o {
            Verdict::Pass(_) => None,
            Verdict::Refuse { reply, .. } => Some(reply.kind),
        }
    }

    #[test]
    fn operations_by_rule() {
        let a = acl(SHIPPED);
        let send = call(Operation::A2aSend, None);
        let o = decide(&a, &send, Some("1.0"), who("sentinel-1"), owners);
        assert_eq!(
            o,
            Verdict::Pass(Plan {
                record_owner: Some("sentinel-1".into()),
                list_owner: None
            })
        );
        let push = call(Operation::A2aPushConfig, Some("t-sentinel"));
        assert_eq!(
            kind(&decide(&a, &push, None, who("sentinel-1"), owners)),
            Some(Kind::AccessDenied)
        );
        let card = call(Operation::A2aExtendedCard, None);
        assert_eq!(
            kind(&decide(&a, &card, None, who("alchemy-1"), owners)),
            Some(Kind::AccessDenied)
        );
        // No rule, no identity: default deny.
        assert_eq!(
            kind(&decide(&a, &send, None, who("intern-1"), owners)),
            Some(Kind::AccessDenied)
        );
        assert_eq!(
            kind(&decide(&a, &send, None, None, owners)),
            Some(Kind::AccessDenied)
        );
        // Without rules everything is allowed (isolation still applies).
        let open = acl("{}");
        assert_eq!(kind(&decide(&open, &send, None, None, owners)), None);
        assert_eq!(kind(&decide(&open, &card, None, who("x"), owners)), None);
    }

    #[test]
    fn skills_by_rule() {
        let a = acl(SHIPPED);
        let mut send = call(Operation::A2aStream, None);
        for (skills, ok) in [
            (vec![], true),
            (vec!["echo"], true),
            (vec!["render-scene"], true),
            (vec!["render-secret"], false),
            (vec!["delete"], false),
            (vec!["echo", "delete"], false),
        ] {
            send.skills = skills.iter().map(|s| s.to_string()).collect();
            let o = decide(&a, &send, None, who("alchemy-2"), owners);
            assert_eq!(kind(&o).is_none(), ok, "{skills:?}");
            // sentinel has no skill lists: every skill.
            assert!(kind(&decide(&a, &send, None, who("sentinel-2"), owners)).is_none());
        }
    }

    #[test]
    fn skill_hints_are_all_collected() {
        let p = json!({"message": {"metadata": {"skillId": "a", "skill": ["b", 3]}},
                       "metadata": {"skill_id": "c"}});
        assert_eq!(skill_hints(&p), vec!["a", "b", "3", "c"]);
        assert!(skill_hints(&json!({"message": {"parts": []}})).is_empty());
    }

    #[test]
    fn tasks_are_isolated() {
        let a = acl(SHIPPED);
        for op in [
            Operation::A2aGetTask,
            Operation::A2aCancelTask,
            Operation::A2aResubscribe,
            Operation::A2aSend,
        ] {
            let own = call(op, Some("t-sentinel"));
            assert_eq!(
                kind(&decide(&a, &own, None, who("sentinel-1"), owners)),
                None
            );
            assert_eq!(
                kind(&decide(&a, &own, None, who("alchemy-1"), owners)),
                Some(Kind::TaskNotFound),
                "{op:?}"
            );
            let unknown = call(op, Some("t-never"));
            assert_eq!(
                kind(&decide(&a, &unknown, None, who("sentinel-1"), owners)),
                Some(Kind::TaskNotFound)
            );
            // Admins are exempt.
            assert_eq!(kind(&decide(&a, &own, None, who("admin-1"), owners)), None);
            assert_eq!(
                kind(&decide(&a, &unknown, None, who("admin-1"), owners)),
                None
            );
        }
        let list = call(Operation::A2aListTasks, None);
        match decide(&a, &list, None, who("alchemy-1"), owners) {
            Verdict::Pass(p) => {
                assert_eq!(
                    p.list_owner,
                    Some(ListView::Owner(Some("alchemy-1".into())))
                )
            }
            o => panic!("{o:?}"),
        }
        match decide(&a, &list, None, who("admin-1"), owners) {
            Verdict::Pass(p) => assert_eq!(p.list_owner, None),
            o => panic!("{o:?}"),
        }
        // Isolation off: nothing checked, sends still recorded.
        let off = acl("taskIsolation: {enabled: false}");
        let get = call(Operation::A2aGetTask, Some("t-alchemy"));
        assert_eq!(
            kind(&decide(&off, &get, None, who("sentinel-1"), owners)),
            None
        );
    }

    #[test]
    fn versions_first_in_the_binding_format() {
        let a = acl(SHIPPED);
        let mut c = call(Operation::A2aSend, None);
        c.method = Some("tasks/send".into());
        c.id = None;
        match decide(&a, &c, None, who("intern"), owners) {
            Verdict::Refuse { reply, .. } => {
                assert_eq!(reply.kind, Kind::VersionNotSupported);
                let v: Value = serde_json::from_str(&reply.body).unwrap();
                assert_eq!(v["error"]["code"], -32009);
                assert_eq!(v["error"]["data"]["supported"], json!(["0.3", "1.0"]));
            }
            o => panic!("{o:?}"),
        }
        let mut rest = call(Operation::A2aGetTask, Some("t-alchemy"));
        rest.binding = Binding::HttpJson;
        rest.rest_version = Some(A2aVersion::V1_0);
        match decide(&a, &rest, Some("1.0"), who("sentinel-1"), owners) {
            Verdict::Refuse { reply, .. } => {
                assert_eq!((reply.kind, reply.status), (Kind::TaskNotFound, 404))
            }
            o => panic!("{o:?}"),
        }
        match decide(&a, &rest, Some("2.0"), who("sentinel-1"), owners) {
            Verdict::Refuse { reply, .. } => {
                assert_eq!((reply.kind, reply.status), (Kind::VersionNotSupported, 400))
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn unreadable_rest_sends_are_refused() {
        let send = Operation::A2aSend;
        let dup = br#"{"message": {"taskId": "mine", "taskId": "theirs"}}"#;
        assert!(unreadable_send(send, Binding::HttpJson, dup));
        assert!(unreadable_send(send, Binding::HttpJson, b"{\"x\": NaN}"));
        assert!(unreadable_send(send, Binding::HttpJson, b"not json"));
        assert!(!unreadable_send(
            send,
            Binding::HttpJson,
            br#"{"message": {}}"#
        ));
        // JSON-RPC bodies are parsed strictly before (or refused); other
        // REST operations take their ids from the path.
        assert!(!unreadable_send(send, Binding::JsonRpc, dup));
        assert!(!unreadable_send(
            Operation::A2aCancelTask,
            Binding::HttpJson,
            dup
        ));
        let a = acl("{}");
        let mut c = call(send, None);
        c.binding = Binding::HttpJson;
        c.unreadable_body = true;
        match decide(&a, &c, None, who("admin-1"), owners) {
            Verdict::Refuse { reply, .. } => {
                assert_eq!((reply.kind, reply.status), (Kind::InvalidRequest, 400));
                let v: Value = serde_json::from_str(&reply.body).unwrap();
                assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
            }
            o => panic!("{o:?}"),
        }
    }
}
