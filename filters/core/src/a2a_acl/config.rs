//! The `a2a:` section of the tool-acl configuration. Absent: the ACL stage
//! governs MCP only, as before. Present, every key is optional:
//!
//! ```yaml
//! a2a:
//!   accessRules:                 # absent or empty: every operation allowed
//!     - agentPattern: "sentinel-*"
//!       allowedOperations: [send, stream, get, list, cancel, subscribe]
//!       deniedOperations: [pushConfig]
//!       allowedSkills: ["echo"]   # absent: every skill not denied
//!       deniedSkills: ["admin-*"]
//!   matchAgentBy: agentId        # or agentName
//!   defaultDecision: deny        # agents no rule matches (with rules)
//!   versions: ["0.3", "1.0"]     # default: every version known
//!   taskIsolation:
//!     enabled: true              # default
//!     exemptAgents: ["admin-*"]  # see every task
//!     ttlSeconds: 86400
//!     maxTasks: 50000
//!     redisStore: { cluster: webdis }  # optional: owners shared by replicas
//!   deniedResponse: { jsonRpcCode: -32040 }
//!   maxResponseBytes: 4194304    # answers read to record or filter tasks
//! ```

use crate::a2a_acl::errors::DEFAULT_DENIED_CODE;
use crate::a2a_acl::rules::{A2aRule, A2aRules, OperationSet};
use crate::a2a_acl::versions::A2aVersions;
use crate::config::ConfigError;
use crate::tool_acl::config::{AgentFieldSpec, DefaultDecisionSpec};
use crate::tool_acl::rules::{AgentField, DefaultDecision, PatternList};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct A2aAclSpec {
    pub access_rules: Vec<A2aRuleSpec>,
    pub match_agent_by: AgentFieldSpec,
    pub default_decision: DefaultDecisionSpec,
    pub versions: Option<Vec<String>>,
    pub task_isolation: TaskIsolationSpec,
    pub denied_response: A2aDeniedSpec,
    pub max_response_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct A2aRuleSpec {
    pub agent_pattern: String,
    #[serde(default)]
    pub allowed_operations: Vec<String>,
    #[serde(default)]
    pub denied_operations: Vec<String>,
    #[serde(default)]
    pub allowed_skills: Option<Vec<String>>,
    #[serde(default)]
    pub denied_skills: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskIsolationSpec {
    pub enabled: bool,
    pub exempt_agents: Vec<String>,
    pub ttl_seconds: u64,
    pub max_tasks: usize,
    /// Share owners across replicas (`owner_store`).
    pub redis_store: Option<crate::a2a_acl::owner_store::OwnerStoreSpec>,
}

impl Default for TaskIsolationSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            exempt_agents: Vec::new(),
            ttl_seconds: 86_400,
            max_tasks: 50_000,
            redis_store: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct A2aDeniedSpec {
    pub json_rpc_code: i64,
}

impl Default for A2aDeniedSpec {
    fn default() -> Self {
        Self {
            json_rpc_code: DEFAULT_DENIED_CODE,
        }
    }
}

pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Upper bound of `taskIsolation.maxTasks` (shared memory of every worker).
pub const MAX_TASKS_LIMIT: usize = 1_000_000;

#[derive(Debug, Clone)]
pub struct TaskIsolation {
    pub enabled: bool,
    pub exempt: PatternList,
    pub ttl_ms: u64,
    pub max_tasks: usize,
    pub redis: Option<crate::a2a_acl::owner_store::OwnerStore>,
}

/// The loaded `a2a:` section.
#[derive(Debug, Clone)]
pub struct A2aAcl {
    /// `None`: no access rules, every operation allowed.
    pub rules: Option<A2aRules>,
    pub versions: A2aVersions,
    pub isolation: TaskIsolation,
    pub denied_code: i64,
    pub max_response_bytes: usize,
    /// Some rule judges skills (only then is a send's body read for hints).
    pub judges_skills: bool,
}

fn rule(i: usize, spec: A2aRuleSpec) -> Result<A2aRule, ConfigError> {
    let at = |key: &str| format!("a2a.accessRules[{i}].{key}");
    let agent = PatternList::compile(vec![spec.agent_pattern.clone()], &at("agentPattern"))
        .map_err(|e| ConfigError::at(at("agentPattern"), e.message))?;
    let ops = |names: &[String], key: &str| {
        OperationSet::parse(names).map_err(|(j, m)| ConfigError::at(format!("{}[{j}]", at(key)), m))
    };
    Ok(A2aRule {
        agent_pattern: spec.agent_pattern,
        agent,
        allowed_operations: ops(&spec.allowed_operations, "allowedOperations")?,
        denied_operations: ops(&spec.denied_operations, "deniedOperations")?,
        allowed_skills: spec
            .allowed_skills
            .map(|s| PatternList::compile(s, &at("allowedSkills")))
            .transpose()?,
        denied_skills: PatternList::compile(spec.denied_skills, &at("deniedSkills"))?,
    })
}

impl TryFrom<A2aAclSpec> for A2aAcl {
    type Error = ConfigError;

    fn try_from(spec: A2aAclSpec) -> Result<Self, ConfigError> {
        let rules = spec
            .access_rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| rule(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        let judges_skills = rules
            .iter()
            .any(|r| r.allowed_skills.is_some() || !r.denied_skills.patterns().is_empty());
        let rules = (!rules.is_empty()).then_some(A2aRules {
            rules,
            match_by: match spec.match_agent_by {
                AgentFieldSpec::AgentId => AgentField::Id,
                AgentFieldSpec::AgentName => AgentField::Name,
            },
            default_decision: match spec.default_decision {
                DefaultDecisionSpec::Deny => DefaultDecision::Deny,
                DefaultDecisionSpec::Allow => DefaultDecision::Allow,
            },
        });
        let versions = match spec.versions {
            None => A2aVersions::default(),
            Some(list) => A2aVersions::new(list).map_err(|(i, m)| match i {
                Some(i) => ConfigError::at(format!("a2a.versions[{i}]"), m),
                None => ConfigError::at("a2a.versions", m),
            })?,
        };
        let t = spec.task_isolation;
        if t.ttl_seconds == 0 {
            return Err(ConfigError::at(
                "a2a.taskIsolation.ttlSeconds",
                "must be at least 1 (a task forgotten at once would be refused to its owner)",
            ));
        }
        if t.max_tasks == 0 || t.max_tasks > MAX_TASKS_LIMIT {
            return Err(ConfigError::at(
                "a2a.taskIsolation.maxTasks",
                format!("must be between 1 and {MAX_TASKS_LIMIT}"),
            ));
        }
        let isolation = TaskIsolation {
            enabled: t.enabled,
            exempt: PatternList::compile(t.exempt_agents, "a2a.taskIsolation.exemptAgents")?,
            ttl_ms: t.ttl_seconds.saturating_mul(1000),
            max_tasks: t.max_tasks,
            redis: t.redis_store.map(TryInto::try_into).transpose()?,
        };
        let code = spec.denied_response.json_rpc_code;
        // A2A's own codes (-32001 task not found, ...) would make a client
        // misread a denial.
        if !(-32099..=-32000).contains(&code) || (-32009..=-32001).contains(&code) {
            return Err(ConfigError::at(
                "a2a.deniedResponse.jsonRpcCode",
                format!(
                    "{code}: use a server-error code (-32099..-32000) that A2A does not \
                     assign (-32009..-32001 are A2A's errors)"
                ),
            ));
        }
        let max_response_bytes = spec
            .max_response_bytes
            .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        if max_response_bytes == 0 {
            return Err(ConfigError::at("a2a.maxResponseBytes", "must be positive"));
        }
        Ok(Self {
            rules,
            versions,
            isolation,
            denied_code: code,
            max_response_bytes,
            judges_skills,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<A2aAcl, ConfigError> {
        let spec: A2aAclSpec =
            serde_yaml_ng::from_str(yaml).map_err(|e| ConfigError::at("", e.to_string()))?;
        A2aAcl::try_from(spec)
    }

    #[test]
    fn defaults() {
        let c = load("{}").unwrap();
        assert!(c.rules.is_none());
        assert!(c.isolation.enabled);
        assert_eq!(c.isolation.ttl_ms, 86_400_000);
        assert_eq!(c.denied_code, DEFAULT_DENIED_CODE);
        assert!(!c.judges_skills);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load("accessRules: [{agentPattern: 'a-*', allowedOperations: [send, sned]}]")
            .unwrap_err();
        assert_eq!(e.path, "a2a.accessRules[0].allowedOperations[1]");
        let e = load("accessRules: [{agentPattern: 'a-*', deniedOperations: [nope]}]").unwrap_err();
        assert_eq!(e.path, "a2a.accessRules[0].deniedOperations[0]");
        let e = load("accessRules: [{agentPattern: '[', allowedOperations: [send]}]").unwrap_err();
        assert_eq!(e.path, "a2a.accessRules[0].agentPattern");
        let e = load("accessRules: [{agentPattern: 'a', deniedSkills: ['[']}]").unwrap_err();
        assert_eq!(e.path, "a2a.accessRules[0].deniedSkills[0]");
        let e = load("versions: ['1.0', '9.9']").unwrap_err();
        assert_eq!(e.path, "a2a.versions[1]");
        let e = load("versions: []").unwrap_err();
        assert_eq!(e.path, "a2a.versions");
        let e = load("taskIsolation: {ttlSeconds: 0}").unwrap_err();
        assert_eq!(e.path, "a2a.taskIsolation.ttlSeconds");
        let e = load("taskIsolation: {maxTasks: 0}").unwrap_err();
        assert_eq!(e.path, "a2a.taskIsolation.maxTasks");
        let e = load("taskIsolation: {exemptAgents: ['{']}").unwrap_err();
        assert_eq!(e.path, "a2a.taskIsolation.exemptAgents[0]");
        let e = load("deniedResponse: {jsonRpcCode: -32001}").unwrap_err();
        assert_eq!(e.path, "a2a.deniedResponse.jsonRpcCode");
        assert!(load("accessRule: []").is_err());
        assert!(load("accessRules: [{agentPattern: a, allowedOperation: [send]}]").is_err());
    }

    #[test]
    fn skills_make_the_stage_read_sends() {
        let c = load(
            "accessRules: [{agentPattern: 'a', allowedOperations: ['*'], allowedSkills: [echo]}]",
        )
        .unwrap();
        assert!(c.judges_skills);
        assert!(c.rules.is_some());
    }

    #[test]
    fn loads_as_the_tool_acl_section() {
        use crate::tool_acl::config::{ToolAclConfig, ToolAclSpec};
        let load = |yaml: &str| crate::config::load::<ToolAclSpec, ToolAclConfig>(yaml.as_bytes());
        let c = load("a2a: {versions: ['1.0']}").unwrap();
        assert!(c.a2a.is_some());
        assert!(load("{}").unwrap().a2a.is_none());
        let e = load("a2a: {versions: ['9']}").unwrap_err();
        assert_eq!(e.path, "a2a.versions[0]");
        let e =
            load("a2a: {accessRules: [{agentPattern: a, allowedOperation: [send]}]}").unwrap_err();
        assert!(e.path.starts_with("a2a.accessRules[0]"), "{e}");
        assert!(e.to_string().contains("allowedOperation"), "{e}");
    }
}
