//! Per-agent A2A access rules (`a2a.accessRules`), in the style of the
//! recipe's tool ACL:
//!
//! - Rules are tried in order; the **first** rule whose `agentPattern`
//!   matches the verified agent (id, or name with `matchAgentBy: agentName`)
//!   decides.
//! - Within a rule, `deniedOperations` beats `allowedOperations`; an
//!   operation in neither list is denied.
//! - Skills: a send or stream that names a skill (its hint, see
//!   [`crate::a2a_acl::request::skill_hints`]) must name one the rule allows:
//!   `deniedSkills` beats `allowedSkills`, and a rule without
//!   `allowedSkills` allows every skill it does not deny. A message without a
//!   hint is the agent's to route and is not judged by skill.
//! - An agent no rule matches, and a request without a verified identity,
//!   gets `defaultDecision` (deny).

use crate::protocol::operation::Operation;
use crate::tool_acl::rules::{AgentField, DefaultDecision, PatternList};

/// The operations a rule can name, by their config names.
pub const OPERATION_NAMES: &[(&str, Operation)] = &[
    ("send", Operation::A2aSend),
    ("stream", Operation::A2aStream),
    ("get", Operation::A2aGetTask),
    ("list", Operation::A2aListTasks),
    ("cancel", Operation::A2aCancelTask),
    ("subscribe", Operation::A2aResubscribe),
    ("pushConfig", Operation::A2aPushConfig),
    ("extendedCard", Operation::A2aExtendedCard),
];

/// The config name of an A2A operation (`send`, `get`, ...).
pub fn operation_name(op: Operation) -> &'static str {
    OPERATION_NAMES
        .iter()
        .find(|(_, o)| *o == op)
        .map(|(n, _)| *n)
        .unwrap_or("unknown")
}

/// A set of operations (`"*"` is every one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationSet(Vec<Operation>);

impl OperationSet {
    /// `Err((index, message))` names the entry that is no operation.
    pub fn parse(names: &[String]) -> Result<Self, (usize, String)> {
        let mut ops = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if name == "*" {
                ops.extend(OPERATION_NAMES.iter().map(|(_, o)| *o));
                continue;
            }
            match OPERATION_NAMES.iter().find(|(n, _)| n == name) {
                Some((_, op)) => ops.push(*op),
                None => {
                    let known: Vec<&str> = OPERATION_NAMES.iter().map(|(n, _)| *n).collect();
                    return Err((
                        i,
                        format!("`{name}` is no A2A operation; use one of {known:?} or \"*\""),
                    ));
                }
            }
        }
        Ok(Self(ops))
    }

    pub fn contains(&self, op: Operation) -> bool {
        self.0.contains(&op)
    }
}

#[derive(Debug, Clone)]
pub struct A2aRule {
    /// The pattern as written (for messages).
    pub agent_pattern: String,
    pub agent: PatternList,
    pub allowed_operations: OperationSet,
    pub denied_operations: OperationSet,
    /// `None`: every skill not denied.
    pub allowed_skills: Option<PatternList>,
    pub denied_skills: PatternList,
}

/// Why a request was denied (for the denial message and the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct A2aDenied {
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct A2aRules {
    pub rules: Vec<A2aRule>,
    pub match_by: AgentField,
    pub default_decision: DefaultDecision,
}

/// The verified agent as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

impl A2aRules {
    /// The rule that decides for `caller` (the first whose pattern matches).
    pub fn rule_for(&self, caller: Caller<'_>) -> Option<&A2aRule> {
        let key = match self.match_by {
            AgentField::Id => caller.id,
            AgentField::Name => caller.name,
        };
        self.rules.iter().find(|r| r.agent.matches(key))
    }

    /// May `caller` run `op`, naming `skills` (hints of the message)?
    pub fn check(
        &self,
        caller: Option<Caller<'_>>,
        op: Operation,
        skills: &[String],
    ) -> Result<(), A2aDenied> {
        let deny = |reason: String| Err(A2aDenied { reason });
        let Some(caller) = caller else {
            return match self.default_decision {
                DefaultDecision::Allow => Ok(()),
                DefaultDecision::Deny => deny("no verified agent".into()),
            };
        };
        let Some(rule) = self.rule_for(caller) else {
            return match self.default_decision {
                DefaultDecision::Allow => Ok(()),
                DefaultDecision::Deny => {
                    deny(format!("no A2A access rule matches agent '{}'", caller.id))
                }
            };
        };
        let name = operation_name(op);
        if rule.denied_operations.contains(op) {
            return deny(format!(
                "operation '{name}' is denied to agents matching '{}'",
                rule.agent_pattern
            ));
        }
        if !rule.allowed_operations.contains(op) {
            return deny(format!(
                "operation '{name}' is not allowed for agents matching '{}'",
                rule.agent_pattern
            ));
        }
        for skill in skills {
            if rule.denied_skills.matches(skill) {
                return deny(format!(
                    "skill '{skill}' is denied to agents matching '{}'",
                    rule.agent_pattern
                ));
            }
            if let Some(allowed) = &rule.allowed_skills {
                if !allowed.matches(skill) {
                    return deny(format!(
                        "skill '{skill}' is not allowed for agents matching '{}'",
                        rule.agent_pattern
                    ));
                }
            }
        }
        Ok(())
    }
}
