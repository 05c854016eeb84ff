//! Per-agent access rules for MCP tools (and, when configured, resources
//! and prompts): the recipe's `accessRules`.
//!
//! Semantics, with the recipe's own agents:
//! - Rules are tried in order; the **first** rule whose `agentPattern`
//!   matches the verified agent id (or name, see [`AgentField`]) decides.
//!   `sentinel-7` matches `sentinel-*`; later rules are not consulted, even
//!   if `*` would also match.
//! - Within a rule, `deniedTools` beats `allowedTools`: `alchemy-2` may call
//!   `render_scene` but not `delete_scene` (`delete_*`), even if a later
//!   edit adds `*` to its allowed list.
//! - A tool that is in neither list is denied: `sentinel-7` cannot call
//!   `deploy_application`. A rule without `allowedTools` allows nothing.
//! - An agent that no rule matches (`intern-1`), or a request that carries
//!   no verified identity at all, gets the configured default decision
//!   (deny unless configured otherwise).
//!
//! Patterns are globs (`*`, `?`, `[abc]`, `{a,b}`), case-sensitive, where
//! `*` also matches `/` and `:` (resource URIs). Every pattern is compiled
//! once at load time: an invalid glob refuses the configuration.

use crate::config::ConfigError;
use crate::glob::{Glob, ParsedGlob};
use crate::protocol::operation::Operation;

/// What a rule list governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// `tools/call`, by `params.name`.
    Tool,
    /// `resources/read`, by `params.uri`.
    Resource,
    /// `prompts/get`, by `params.name`.
    Prompt,
}

impl TargetKind {
    /// The kind an operation is checked as, if the ACL can govern it.
    pub fn of(operation: Operation) -> Option<Self> {
        match operation {
            Operation::McpToolsCall => Some(Self::Tool),
            Operation::McpResourcesRead => Some(Self::Resource),
            Operation::McpPromptsGet => Some(Self::Prompt),
            _ => None,
        }
    }

    pub fn operation(self) -> Operation {
        match self {
            Self::Tool => Operation::McpToolsCall,
            Self::Resource => Operation::McpResourcesRead,
            Self::Prompt => Operation::McpPromptsGet,
        }
    }

    /// `tool`, `resource`, `prompt`: for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Resource => "resource",
            Self::Prompt => "prompt",
        }
    }
}

/// Which field of the verified identity `agentPattern` is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentField {
    #[default]
    Id,
    Name,
}

/// What happens to agents no rule matches (and to requests without a
/// verified identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultDecision {
    #[default]
    Deny,
    Allow,
}

/// Parse one glob (the syntax and messages of `globset`, see `crate::glob`).
fn parse_glob(pattern: &str) -> Result<ParsedGlob, String> {
    if pattern.is_empty() {
        return Err("empty pattern".into());
    }
    ParsedGlob::parse(pattern).map_err(|e| format!("invalid glob `{pattern}`: {e}"))
}

/// A list of globs compiled into one matcher, keeping the text for messages
/// (`#[vars.allowedTools]`).
#[derive(Debug, Clone)]
pub struct PatternList {
    patterns: Vec<String>,
    globs: Vec<Glob>,
}

impl PatternList {
    /// `path` names the list in errors (`accessRules[1].deniedTools`).
    pub fn compile(patterns: Vec<String>, path: &str) -> Result<Self, ConfigError> {
        // Every pattern parses before any compiles, so a syntax error is
        // named by its index first (as with `globset`'s set builder).
        let parsed = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| parse_glob(p).map_err(|m| ConfigError::at(format!("{path}[{i}]"), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let globs = parsed
            .iter()
            .map(|g| {
                g.compile()
                    .map_err(|e| ConfigError::at(path, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { patterns, globs })
    }

    pub fn empty() -> Self {
        Self {
            patterns: Vec::new(),
            globs: Vec::new(),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        self.globs.iter().any(|g| g.is_match_in_set(name))
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// `allowed*` / `denied*` of one kind in one rule.
#[derive(Debug, Clone)]
pub struct Permissions {
    pub allowed: PatternList,
    pub denied: PatternList,
}

impl Permissions {
    pub fn none() -> Self {
        Self {
            allowed: PatternList::empty(),
            denied: PatternList::empty(),
        }
    }

    /// Deny beats allow; anything not allowed is denied.
    pub fn check(&self, name: &str) -> RuleMatch {
        if self.denied.matches(name) {
            RuleMatch::Denied
        } else if self.allowed.matches(name) {
            RuleMatch::Allowed
        } else {
            RuleMatch::NotAllowed
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleMatch {
    Allowed,
    /// Matched by the rule's denied list (wins over allowed).
    Denied,
    /// In no allowed list of the rule.
    NotAllowed,
}

/// One entry of `accessRules`, ready to match.
#[derive(Debug, Clone)]
pub struct AccessRule {
    pub agent_pattern: String,
    agent: Glob,
    pub tools: Permissions,
    pub resources: Permissions,
    pub prompts: Permissions,
}

/// Rules are equal when written the same (compiled matchers are derived).
impl PartialEq for AccessRule {
    fn eq(&self, other: &Self) -> bool {
        let lists = |r: &Self| {
            [&r.tools, &r.resources, &r.prompts]
                .map(|p| (p.allowed.patterns().to_vec(), p.denied.patterns().to_vec()))
        };
        self.agent_pattern == other.agent_pattern && lists(self) == lists(other)
    }
}

impl Eq for AccessRule {}

impl AccessRule {
    pub fn new(
        agent_pattern: String,
        tools: Permissions,
        resources: Permissions,
        prompts: Permissions,
    ) -> Result<Self, ConfigError> {
        let agent = parse_glob(&agent_pattern)
            .and_then(|g| {
                g.compile()
                    .map_err(|e| format!("invalid glob `{agent_pattern}`: {e}"))
            })
            .map_err(|m| ConfigError::at("agentPattern", m))?;
        Ok(Self {
            agent_pattern,
            agent,
            tools,
            resources,
            prompts,
        })
    }

    pub fn matches_agent(&self, agent: &str) -> bool {
        self.agent.is_match(agent)
    }

    pub fn permissions(&self, kind: TargetKind) -> &Permissions {
        match kind {
            TargetKind::Tool => &self.tools,
            TargetKind::Resource => &self.resources,
            TargetKind::Prompt => &self.prompts,
        }
    }
}

/// Why a call was denied (for logs and the denial body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No verified identity on the request (identity filter absent or it
    /// did not publish one) and the default decision is deny.
    NoIdentity,
    /// No rule's `agentPattern` matches and the default decision is deny.
    NoMatchingRule,
    /// The rule's denied list matches.
    DeniedByRule,
    /// The rule's allowed list does not match.
    NotAllowed,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoIdentity => "no_verified_identity",
            Self::NoMatchingRule => "no_matching_rule",
            Self::DeniedByRule => "denied_by_rule",
            Self::NotAllowed => "not_in_allowed_list",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ruling<'a> {
    Allow,
    Deny {
        reason: DenyReason,
        /// The rule that decided, if one matched.
        rule: Option<&'a AccessRule>,
    },
}

impl Ruling<'_> {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Ruling::Allow)
    }
}

/// The compiled `accessRules` plus how agents are matched.
#[derive(Debug, Clone, Default)]
pub struct ToolAcl {
    rules: Vec<AccessRule>,
    match_by: AgentField,
    default_decision: DefaultDecision,
}

/// What the ACL is asked about: the agent as published by identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agent<'a> {
    pub id: &'a str,
    pub name: &'a str,
}

impl ToolAcl {
    pub fn new(
        rules: Vec<AccessRule>,
        match_by: AgentField,
        default_decision: DefaultDecision,
    ) -> Self {
        Self {
            rules,
            match_by,
            default_decision,
        }
    }

    pub fn rules(&self) -> &[AccessRule] {
        &self.rules
    }

    /// The first rule for this agent; `None` for unknown agents.
    pub fn rule_for(&self, agent: Option<Agent<'_>>) -> Option<&AccessRule> {
        let agent = agent?;
        let key = match self.match_by {
            AgentField::Id => agent.id,
            AgentField::Name => agent.name,
        };
        if key.is_empty() {
            return None;
        }
        self.rules.iter().find(|rule| rule.matches_agent(key))
    }

    /// Decide one call. `agent` is `None` when no verified identity exists.
    pub fn decide(&self, agent: Option<Agent<'_>>, kind: TargetKind, name: &str) -> Ruling<'_> {
        match self.rule_for(agent) {
            Some(rule) => match rule.permissions(kind).check(name) {
                RuleMatch::Allowed => Ruling::Allow,
                RuleMatch::Denied => Ruling::Deny {
                    reason: DenyReason::DeniedByRule,
                    rule: Some(rule),
                },
                RuleMatch::NotAllowed => Ruling::Deny {
                    reason: DenyReason::NotAllowed,
                    rule: Some(rule),
                },
            },
            None => match self.default_decision {
                DefaultDecision::Allow => Ruling::Allow,
                DefaultDecision::Deny => Ruling::Deny {
                    reason: if agent.is_some() {
                        DenyReason::NoMatchingRule
                    } else {
                        DenyReason::NoIdentity
                    },
                    rule: None,
                },
            },
        }
    }

    /// A per-agent view for filtering lists: resolves the rule once and
    /// answers `permits(kind, name)` for many names.
    pub fn view(&self, agent: Option<Agent<'_>>) -> AgentView<'_> {
        AgentView {
            rule: self.rule_for(agent),
            default_allow: self.default_decision == DefaultDecision::Allow,
        }
    }
}

/// One agent's permissions, resolved once (see [`ToolAcl::view`]).
#[derive(Debug, Clone, Copy)]
pub struct AgentView<'a> {
    rule: Option<&'a AccessRule>,
    default_allow: bool,
}

impl AgentView<'_> {
    pub fn permits(&self, kind: TargetKind, name: &str) -> bool {
        match self.rule {
            Some(rule) => rule.permissions(kind).check(name) == RuleMatch::Allowed,
            None => self.default_allow,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> PatternList {
        PatternList::compile(patterns.iter().map(|s| s.to_string()).collect(), "t").unwrap()
    }

    fn tools(allowed: &[&str], denied: &[&str]) -> Permissions {
        Permissions {
            allowed: list(allowed),
            denied: list(denied),
        }
    }

    fn rule(pattern: &str, allowed: &[&str], denied: &[&str]) -> AccessRule {
        AccessRule::new(
            pattern.into(),
            tools(allowed, denied),
            Permissions::none(),
            Permissions::none(),
        )
        .unwrap()
    }

    /// The recipe's three rules, from its policy file as written.
    pub(crate) fn recipe() -> ToolAcl {
        crate::config::load::<
            crate::tool_acl::config::ToolAclSpec,
            crate::tool_acl::config::ToolAclConfig,
        >(include_bytes!(
            "../../../../examples/recipe/mcp-tool-acl.yaml"
        ))
        .unwrap()
        .acl
    }

    fn id(agent: &str) -> Option<Agent<'_>> {
        Some(Agent {
            id: agent,
            name: "",
        })
    }

    #[test]
    fn recipe_sentinel_rules() {
        let acl = recipe();
        for tool in ["search_patterns", "classify_content", "read_config"] {
            assert!(
                acl.decide(id("sentinel-1"), TargetKind::Tool, tool)
                    .is_allowed(),
                "{tool}"
            );
        }
        for (tool, reason) in [
            ("execute_code", DenyReason::DeniedByRule),
            ("write_file", DenyReason::DeniedByRule),
            ("deploy_application", DenyReason::NotAllowed),
            ("generate_video", DenyReason::NotAllowed),
        ] {
            match acl.decide(id("sentinel-1"), TargetKind::Tool, tool) {
                Ruling::Deny { reason: r, rule } => {
                    assert_eq!(r, reason, "{tool}");
                    assert_eq!(rule.unwrap().agent_pattern, "sentinel-*");
                }
                Ruling::Allow => panic!("{tool} must be denied"),
            }
        }
    }

    #[test]
    fn recipe_alchemy_denied_glob() {
        let acl = recipe();
        assert!(acl
            .decide(id("alchemy-prod"), TargetKind::Tool, "render_scene")
            .is_allowed());
        for tool in ["delete_scene", "delete_", "delete_everything"] {
            assert!(
                matches!(
                    acl.decide(id("alchemy-prod"), TargetKind::Tool, tool),
                    Ruling::Deny {
                        reason: DenyReason::DeniedByRule,
                        ..
                    }
                ),
                "{tool}"
            );
        }
        // not a prefix match: `undelete_x` is just not allowed
        assert!(matches!(
            acl.decide(id("alchemy-prod"), TargetKind::Tool, "undelete_x"),
            Ruling::Deny {
                reason: DenyReason::NotAllowed,
                ..
            }
        ));
    }

    #[test]
    fn recipe_admin_full_access() {
        let acl = recipe();
        for tool in ["execute_code", "delete_scene", "anything/with/slashes", "x"] {
            assert!(
                acl.decide(id("admin-root"), TargetKind::Tool, tool)
                    .is_allowed(),
                "{tool}"
            );
        }
    }

    #[test]
    fn unknown_agents_and_missing_identity_get_the_default() {
        let acl = recipe();
        assert_eq!(
            acl.decide(id("intern-1"), TargetKind::Tool, "search_patterns"),
            Ruling::Deny {
                reason: DenyReason::NoMatchingRule,
                rule: None
            }
        );
        assert_eq!(
            acl.decide(None, TargetKind::Tool, "search_patterns"),
            Ruling::Deny {
                reason: DenyReason::NoIdentity,
                rule: None
            }
        );
        // an empty id matches nothing, not even `*`
        let open = ToolAcl::new(
            vec![rule("*", &["*"], &[])],
            AgentField::Id,
            DefaultDecision::Deny,
        );
        assert!(!open.decide(id(""), TargetKind::Tool, "x").is_allowed());
        let permissive = ToolAcl::new(
            recipe().rules().to_vec(),
            AgentField::Id,
            DefaultDecision::Allow,
        );
        assert!(permissive
            .decide(id("intern-1"), TargetKind::Tool, "x")
            .is_allowed());
        assert!(permissive.decide(None, TargetKind::Tool, "x").is_allowed());
        // a matched rule still decides under a permissive default
        assert!(!permissive
            .decide(id("sentinel-1"), TargetKind::Tool, "execute_code")
            .is_allowed());
    }

    #[test]
    fn patterns_are_anchored_and_case_sensitive() {
        let acl = recipe();
        for agent in ["Sentinel-1", "xsentinel-1", "sentinel", "SENTINEL-1"] {
            assert!(
                acl.rule_for(id(agent)).is_none(),
                "{agent} must not match sentinel-*"
            );
        }
        assert!(!acl
            .decide(id("sentinel-1"), TargetKind::Tool, "Search_patterns")
            .is_allowed());
        assert!(!acl
            .decide(id("sentinel-1"), TargetKind::Tool, "search_patterns ")
            .is_allowed());
    }

    #[test]
    fn first_matching_rule_wins() {
        let acl = ToolAcl::new(
            vec![
                rule("admin-readonly", &["read_*"], &[]),
                rule("admin-*", &["*"], &[]),
            ],
            AgentField::Id,
            DefaultDecision::Deny,
        );
        assert!(!acl
            .decide(id("admin-readonly"), TargetKind::Tool, "execute_code")
            .is_allowed());
        assert!(acl
            .decide(id("admin-readonly"), TargetKind::Tool, "read_config")
            .is_allowed());
        assert!(acl
            .decide(id("admin-root"), TargetKind::Tool, "execute_code")
            .is_allowed());
    }

    #[test]
    fn deny_beats_allow_star() {
        let acl = ToolAcl::new(
            vec![rule("ops-*", &["*"], &["delete_*", "execute_code"])],
            AgentField::Id,
            DefaultDecision::Deny,
        );
        assert!(acl
            .decide(id("ops-1"), TargetKind::Tool, "render_scene")
            .is_allowed());
        assert!(!acl
            .decide(id("ops-1"), TargetKind::Tool, "delete_scene")
            .is_allowed());
        assert!(!acl
            .decide(id("ops-1"), TargetKind::Tool, "execute_code")
            .is_allowed());
    }

    #[test]
    fn match_by_name() {
        let acl = ToolAcl::new(
            recipe().rules().to_vec(),
            AgentField::Name,
            DefaultDecision::Deny,
        );
        let agent = Some(Agent {
            id: "a1b2c3",
            name: "sentinel-scanner",
        });
        assert!(acl
            .decide(agent, TargetKind::Tool, "read_config")
            .is_allowed());
        let no_name = Some(Agent {
            id: "sentinel-1",
            name: "",
        });
        assert!(!acl
            .decide(no_name, TargetKind::Tool, "read_config")
            .is_allowed());
    }

    #[test]
    fn resources_and_prompts_use_their_own_lists() {
        let r = AccessRule::new(
            "sentinel-*".into(),
            tools(&["*"], &[]),
            Permissions {
                allowed: list(&["config://*", "file:///srv/public/**"]),
                denied: list(&["file:///srv/public/secret*"]),
            },
            Permissions::none(),
        )
        .unwrap();
        let acl = ToolAcl::new(vec![r], AgentField::Id, DefaultDecision::Deny);
        let a = id("sentinel-1");
        assert!(acl
            .decide(a, TargetKind::Resource, "config://gateway-example")
            .is_allowed());
        assert!(acl
            .decide(a, TargetKind::Resource, "file:///srv/public/a/b.txt")
            .is_allowed());
        assert!(!acl
            .decide(a, TargetKind::Resource, "file:///srv/public/secret.txt")
            .is_allowed());
        assert!(!acl
            .decide(a, TargetKind::Resource, "file:///etc/passwd")
            .is_allowed());
        // no allowedPrompts: every prompt denied, even with allowedTools: ["*"]
        assert!(!acl.decide(a, TargetKind::Prompt, "summarize").is_allowed());
    }

    #[test]
    fn views_filter_lists_like_decide() {
        let acl = recipe();
        let names = [
            "search_patterns",
            "execute_code",
            "render_scene",
            "delete_scene",
            "read_config",
        ];
        for agent in ["sentinel-1", "alchemy-1", "admin-1", "intern-1"] {
            let view = acl.view(id(agent));
            for name in names {
                assert_eq!(
                    view.permits(TargetKind::Tool, name),
                    acl.decide(id(agent), TargetKind::Tool, name).is_allowed(),
                    "{agent} {name}"
                );
            }
        }
        assert!(!acl.view(None).permits(TargetKind::Tool, "search_patterns"));
    }

    #[test]
    fn invalid_globs_are_config_errors_with_paths() {
        let err = PatternList::compile(
            vec!["ok".into(), "bad[".into()],
            "accessRules[0].deniedTools",
        )
        .unwrap_err();
        assert_eq!(err.path, "accessRules[0].deniedTools[1]");
        assert!(err.message.contains("bad["), "{err}");
        assert!(PatternList::compile(vec![String::new()], "x").is_err());
        let err = AccessRule::new(
            "{a".into(),
            Permissions::none(),
            Permissions::none(),
            Permissions::none(),
        )
        .unwrap_err();
        assert_eq!(err.path, "agentPattern");
    }

    #[test]
    fn glob_features() {
        let l = list(&["read_{config,template}", "get_?", "[xy]_tool"]);
        for n in ["read_config", "read_template", "get_a", "x_tool"] {
            assert!(l.matches(n), "{n}");
        }
        for n in ["read_other", "get_ab", "z_tool"] {
            assert!(!l.matches(n), "{n}");
        }
        assert!(!PatternList::empty().matches("x"));
    }
}
