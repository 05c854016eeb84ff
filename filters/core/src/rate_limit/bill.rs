//! Which windows a request is counted in: the limits whose operation it
//! performs, keyed by the verified agent (and whatever else each limit's
//! `keySelector` adds), with how many slots it takes in each.
//!
//! A limit counts protocol operations, not HTTP requests: a JSON-RPC batch
//! of three `tools/call` takes three slots, a `tools/list` takes none.

use crate::json_path::JsonPath;
use crate::protocol::a2a;
use crate::protocol::operation::Operation;
use crate::protocol::request_facts::{RequestFacts, VerifiedIdentity};
use crate::rate_limit::config::{
    IdentityField, MissingIdentity, RateLimitConfig, VERIFIED_HEADERS,
};
use crate::rate_limit::window_table::KeyId;
use crate::template::{Bindings, Escape};
use std::collections::BTreeMap;

/// The agent id used for requests without a verified identity
/// (`onMissingIdentity: anonymous`): they all share its windows.
pub const ANONYMOUS: &str = "anonymous";

/// One protocol operation found in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationCall {
    pub operation: Operation,
    /// `params.name` of a `tools/call`.
    pub tool_name: Option<String>,
}

impl OperationCall {
    /// The operations of a parsed body (every message of a batch).
    pub fn from_facts(facts: &RequestFacts) -> Vec<Self> {
        facts
            .messages
            .iter()
            .filter_map(|m| {
                Some(Self {
                    operation: m.operation()?,
                    tool_name: m.name.clone(),
                })
            })
            .collect()
    }

    /// The operation a request names by its HTTP method and path: an A2A
    /// REST route (`POST /a2a/rest/message:send`), else the recipe's path
    /// of a bodiless request (`GET /mcp/tools/list`).
    pub fn from_request(http_method: &str, path: &str) -> Vec<Self> {
        if let Some(call) = a2a::rest_call(http_method, path) {
            return vec![Self {
                operation: call.operation,
                tool_name: None,
            }];
        }
        Self::from_path(path)
    }

    /// The operation a bodiless request names by the recipe's path
    /// (`GET /mcp/tools/list`).
    pub fn from_path(path: &str) -> Vec<Self> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        if !(path.starts_with("/mcp/") || path.starts_with("/a2a/")) {
            return Vec::new();
        }
        Operation::from_recipe_path(path)
            .map(|operation| {
                vec![Self {
                    operation,
                    tool_name: None,
                }]
            })
            .unwrap_or_default()
    }
}

/// Slots one request takes in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Index into `config.limits`.
    pub limit: usize,
    /// The rendered key (agent id, possibly with the tool name).
    pub key: String,
    pub id: KeyId,
    pub slots: u32,
    /// A tool name this charge is about (for the reply), if any.
    pub tool_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bill {
    /// No limit counts this request.
    Unlimited,
    /// The request must fit in all of these windows.
    Charges {
        agent_id: String,
        charges: Vec<Charge>,
    },
    /// A limit applies but there is no verified identity and the config says deny.
    MissingIdentity,
}

struct KeyBindings<'a> {
    identity: Option<&'a VerifiedIdentity>,
    call: &'a OperationCall,
}

impl KeyBindings<'_> {
    fn field(&self, field: IdentityField) -> String {
        match (self.identity, field) {
            (Some(id), field) => field.value(id).to_string(),
            (None, IdentityField::AgentId) => ANONYMOUS.to_string(),
            (None, _) => String::new(),
        }
    }
}

impl Bindings for KeyBindings<'_> {
    fn var(&self, name: &str, _: &JsonPath) -> Option<String> {
        Some(match name {
            "agentId" => self.field(IdentityField::AgentId),
            "agentName" => self.field(IdentityField::AgentName),
            "agentOwner" => self.field(IdentityField::AgentOwner),
            "toolName" => self.call.tool_name.clone().unwrap_or_default(),
            "operation" => self.call.operation.canonical_name().to_string(),
            _ => return None,
        })
    }

    /// Only the verified-identity headers pass config validation, and they
    /// are answered from the identity filter's filter state: whatever
    /// `X-Verified-Agent-*` header the client sent is never read.
    fn header(&self, name: &str) -> Option<String> {
        VERIFIED_HEADERS
            .iter()
            .find(|(h, _)| *h == name)
            .map(|(_, field)| self.field(*field))
    }
}

/// Work out the windows a request is counted in.
pub fn bill(
    config: &RateLimitConfig,
    identity: Option<&VerifiedIdentity>,
    calls: &[OperationCall],
) -> Bill {
    let identity = identity.filter(|i| !i.agent_id.is_empty());
    let mut slots: BTreeMap<(usize, String), (u32, Option<String>)> = BTreeMap::new();
    for call in calls {
        for (index, limit) in config.limits.iter().enumerate() {
            if limit.operation != call.operation {
                continue;
            }
            let bindings = KeyBindings { identity, call };
            let key = limit.key_selector.render(&bindings, Escape::Raw);
            let entry = slots.entry((index, key)).or_insert((0, None));
            entry.0 = entry.0.saturating_add(1);
            if entry.1.is_none() {
                entry.1.clone_from(&call.tool_name);
            }
        }
    }
    if slots.is_empty() {
        return Bill::Unlimited;
    }
    if identity.is_none() && config.on_missing_identity == MissingIdentity::Deny {
        return Bill::MissingIdentity;
    }
    let charges = slots
        .into_iter()
        .filter_map(|((limit, key), (n, tool_name))| {
            let name = &config.limits.get(limit)?.name;
            Some(Charge {
                limit,
                id: KeyId::of(name, &key),
                key,
                slots: n,
                tool_name,
            })
        })
        .collect();
    Bill::Charges {
        agent_id: identity.map_or_else(|| ANONYMOUS.to_string(), |i| i.agent_id.clone()),
        charges,
    }
}

/// For other modules' tests: `yaml`'s config, and the charges of one
/// `tools/call` by agent `a` under it.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
pub(crate) fn one_tool_call(yaml: &str) -> (RateLimitConfig, Vec<Charge>) {
    let config = RateLimitConfig::load(yaml.as_bytes()).unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#;
    let calls = OperationCall::from_facts(&RequestFacts::inspect(body).unwrap().1);
    let who = VerifiedIdentity {
        agent_id: "a".into(),
        ..Default::default()
    };
    let Bill::Charges { charges, .. } = bill(&config, Some(&who), &calls) else {
        panic!("one tools/call is not charged under {yaml}");
    };
    (config, charges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> RateLimitConfig {
        RateLimitConfig::load(yaml.as_bytes()).unwrap()
    }

    fn identity(agent: &str) -> VerifiedIdentity {
        VerifiedIdentity {
            agent_id: agent.into(),
            ..Default::default()
        }
    }

    fn facts(body: &str) -> Vec<OperationCall> {
        OperationCall::from_facts(&RequestFacts::inspect(body.as_bytes()).unwrap().1)
    }

    const RECIPE_KEYS: &str = include_str!("../../../../examples/recipe/agent-rate-limit.yaml");

    #[test]
    fn the_verified_agent_keys_the_window() {
        let c = config(RECIPE_KEYS);
        let calls = facts(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_patterns"}}"#,
        );
        let Bill::Charges { agent_id, charges } = bill(&c, Some(&identity("sentinel-1")), &calls)
        else {
            panic!()
        };
        assert_eq!(agent_id, "sentinel-1");
        assert_eq!(charges.len(), 1);
        assert_eq!(charges[0].key, "sentinel-1");
        assert_eq!(charges[0].id, KeyId::of("tools/call", "sentinel-1"));
        assert_eq!(charges[0].slots, 1);
    }

    #[test]
    fn every_a2a_version_counts_in_the_same_window() {
        let c = config(RECIPE_KEYS);
        let who = identity("alchemy-7");
        let mut ids = Vec::new();
        for method in ["tasks/send", "message/send", "SendMessage"] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{}}}}"#);
            let Bill::Charges { charges, .. } = bill(&c, Some(&who), &facts(&body)) else {
                panic!()
            };
            ids.push((charges[0].limit, charges[0].id));
        }
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        for method in [
            "tasks/sendSubscribe",
            "message/stream",
            "SendStreamingMessage",
        ] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{}}}}"#);
            let Bill::Charges { charges, .. } = bill(&c, Some(&who), &facts(&body)) else {
                panic!()
            };
            assert_eq!(charges[0].limit, 2, "{method}");
        }
    }

    #[test]
    fn unlimited_operations_and_paths() {
        let c = config(RECIPE_KEYS);
        let calls = facts(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert_eq!(bill(&c, Some(&identity("a")), &calls), Bill::Unlimited);
        assert_eq!(OperationCall::from_path("/mcp/tools/call").len(), 1);
        assert!(OperationCall::from_path("/mcp").is_empty());
        assert!(OperationCall::from_path("/tools/call").is_empty());
    }

    #[test]
    fn rest_and_jsonrpc_sends_share_one_window() {
        let c = config(RECIPE_KEYS);
        let who = identity("alchemy-7");
        let window = |calls: &[OperationCall]| match bill(&c, Some(&who), calls) {
            Bill::Charges { charges, .. } => Some((charges[0].limit, charges[0].id)),
            _ => None,
        };
        let jsonrpc = window(&facts(
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}"#,
        ));
        assert!(jsonrpc.is_some());
        for path in [
            "/a2a/rest/message:send",
            "/a2a/rest/v1/message:send",
            "/a2a/message:send",
            "/a2a/rest/message%3Asend",
        ] {
            assert_eq!(
                window(&OperationCall::from_request("POST", path)),
                jsonrpc,
                "{path}"
            );
            let call = a2a::rest_call("POST", path).unwrap();
            let (_, f) = RequestFacts::from_rest(&call, b"{}");
            assert_eq!(window(&OperationCall::from_facts(&f)), jsonrpc, "{path}");
        }
        let stream = window(&OperationCall::from_request(
            "POST",
            "/a2a/rest/message:stream",
        ));
        assert_eq!(stream.map(|w| w.0), Some(2));
        assert_eq!(
            window(&OperationCall::from_request("GET", "/a2a/rest/tasks/t1")),
            None
        );
        assert!(
            OperationCall::from_request("GET", "/a2a/rest/tasks/t1")[0].operation
                == Operation::A2aGetTask
        );
        assert!(OperationCall::from_request("POST", "/other/message:send").is_empty());
    }

    #[test]
    fn a_batch_takes_one_slot_per_operation() {
        let c = config(RECIPE_KEYS);
        let calls = facts(
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}},{"jsonrpc":"2.0","id":3,"method":"tools/list"}]"#,
        );
        let Bill::Charges { charges, .. } = bill(&c, Some(&identity("x")), &calls) else {
            panic!()
        };
        assert_eq!(charges.len(), 1);
        assert_eq!(charges[0].slots, 2);
    }

    #[test]
    fn per_tool_limits_key_by_agent_and_tool() {
        let c = config(
            r##"
limits:
  - {path: /mcp/tools/call, maxRequests: 60, windowSeconds: 60}
  - {name: per-tool, path: tools/call, keySelector: "#[vars.agentId]|#[vars.toolName]", maxRequests: 5, windowSeconds: 60}
"##,
        );
        let calls = facts(
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b"}}]"#,
        );
        let Bill::Charges { charges, .. } = bill(&c, Some(&identity("x")), &calls) else {
            panic!()
        };
        let keys: Vec<_> = charges
            .iter()
            .map(|c| (c.limit, c.key.as_str(), c.slots))
            .collect();
        assert_eq!(keys, [(0, "x", 2), (1, "x|a", 1), (1, "x|b", 1)]);
        assert_ne!(charges[1].id, charges[2].id);
    }

    #[test]
    fn missing_identity_is_anonymous_or_denied() {
        let calls =
            facts(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#);
        let c = config(RECIPE_KEYS);
        let Bill::Charges { agent_id, charges } = bill(&c, None, &calls) else {
            panic!()
        };
        assert_eq!(agent_id, ANONYMOUS);
        assert_eq!(charges[0].key, ANONYMOUS);
        // An empty agent id is no identity either.
        assert!(
            matches!(bill(&c, Some(&identity("")), &calls), Bill::Charges { agent_id, .. } if agent_id == ANONYMOUS)
        );
        let deny = config(&format!("{RECIPE_KEYS}onMissingIdentity: deny\n"));
        assert_eq!(bill(&deny, None, &calls), Bill::MissingIdentity);
        let list = facts(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert_eq!(bill(&deny, None, &list), Bill::Unlimited);
    }
}
