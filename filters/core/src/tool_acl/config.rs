//! The tool-acl filter's configuration: the recipe's
//! `policies/mcp-tool-acl.yaml` `config:` block loads as written; every
//! other key is optional with a safe default. See `docs/tool-acl.md`.

use crate::config::ConfigError;
use crate::json_path::Step;
use crate::protocol::operation::Operation;
use crate::template::{Expr, Scope, Template};
use crate::tool_acl::denial::{DenialFormat, DeniedResponse, DEFAULT_BODY, DEFAULT_JSONRPC_CODE};
use crate::tool_acl::legacy_sse::PrefixRewrite;
use crate::tool_acl::request_guard::canonical_path;
use crate::tool_acl::rules::{
    AccessRule, AgentField, DefaultDecision, PatternList, Permissions, TargetKind, ToolAcl,
};
use crate::tool_acl::tools_list::CacheLimits;
use crate::tool_acl::versions::ProtocolVersions;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Every key is optional (no rules: every tool allowed, lists unfiltered).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolAclSpec {
    pub access_rules: Vec<AccessRuleSpec>,
    pub apply_to: ApplyToSpec,
    pub tool_name_extractor: Option<String>,
    pub denied_response: DeniedResponseSpec,
    pub match_agent_by: AgentFieldSpec,
    pub default_decision: DefaultDecisionSpec,
    pub max_body_bytes: Option<usize>,
    pub batches: BatchPolicy,
    pub tools_list: ToolsListSpec,
    /// Hold the request headers until the body has been judged, so that a
    /// denied call never reaches the upstream, not even its headers (without
    /// it the upstream sees the headers, then a reset). Needs
    /// `allow_on_headers_stop_iteration: true` in the Wasm filter's Envoy
    /// config; without that flag every inspected request would hang, hence
    /// off by default.
    pub hold_request_headers: bool,
    /// MCP revisions accepted (version pinning, `versions.rs`); default:
    /// every revision the official SDK and the example server speak.
    pub protocol_versions: Option<Vec<String>>,
    /// A2A governance under `/a2a` (`crate::a2a_acl`); absent: MCP only.
    pub a2a: Option<crate::a2a_acl::config::A2aAclSpec>,
    /// The 2024-11-05 HTTP+SSE transport (`legacy_sse.rs`).
    pub legacy_sse: LegacySseSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacySseSpec {
    /// Routes that serve the transport under another prefix than the
    /// upstream's (`prefix_rewrite`): the `endpoint` event is rewritten.
    pub prefix_rewrites: Vec<PrefixRewriteSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixRewriteSpec {
    pub gateway_prefix: String,
    pub upstream_prefix: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessRuleSpec {
    pub agent_pattern: String,
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    #[serde(default)]
    pub denied_tools: Vec<String>,
    #[serde(default)]
    pub allowed_resources: Vec<String>,
    #[serde(default)]
    pub denied_resources: Vec<String>,
    #[serde(default)]
    pub allowed_prompts: Vec<String>,
    #[serde(default)]
    pub denied_prompts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyToSpec {
    /// The recipe's per-operation paths naming what is governed.
    pub paths: Vec<String>,
    /// The same, by JSON-RPC method (`resources/read`, `prompts/get`).
    pub methods: Vec<String>,
    /// Path prefixes whose requests are inspected (default `/mcp`).
    pub endpoints: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct DeniedResponseSpec {
    pub status_code: u16,
    pub body: String,
    pub headers: BTreeMap<String, String>,
    pub format: DenialFormatSpec,
    pub json_rpc_code: i64,
}

impl Default for DeniedResponseSpec {
    fn default() -> Self {
        Self {
            status_code: 403,
            body: DEFAULT_BODY.to_string(),
            headers: BTreeMap::new(),
            format: DenialFormatSpec::default(),
            json_rpc_code: DEFAULT_JSONRPC_CODE,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DenialFormatSpec {
    #[default]
    Auto,
    Http,
    #[serde(rename = "jsonrpc", alias = "jsonRpc")]
    JsonRpc,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AgentFieldSpec {
    #[default]
    #[serde(alias = "id")]
    AgentId,
    #[serde(alias = "name")]
    AgentName,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DefaultDecisionSpec {
    #[default]
    Deny,
    Allow,
}

/// JSON-RPC batches (arrays): MCP 2025-03-26 allowed them, later revisions
/// removed them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchPolicy {
    /// Check every message; one denied message refuses the whole batch.
    #[default]
    Inspect,
    /// Refuse every batch with 400.
    Reject,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolsListSpec {
    pub filter: bool,
    pub cache: ToolsListCacheSpec,
    pub max_response_bytes: usize,
}

impl Default for ToolsListSpec {
    fn default() -> Self {
        Self {
            filter: true,
            cache: ToolsListCacheSpec::default(),
            max_response_bytes: 4 << 20,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolsListCacheSpec {
    pub enabled: bool,
    pub ttl_seconds: u64,
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl Default for ToolsListCacheSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_seconds: 300,
            max_entries: 32,
            max_bytes: 1 << 20,
        }
    }
}

pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
pub const DEFAULT_ENDPOINT: &str = "/mcp";

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct ToolAclConfig {
    pub acl: ToolAcl,
    /// Kinds whose calls are checked (tools/call unless configured).
    pub governed: Vec<TargetKind>,
    /// Canonical path prefixes that are inspected.
    pub endpoints: Vec<String>,
    pub denial: DeniedResponse,
    pub max_body_bytes: usize,
    pub batches: BatchPolicy,
    pub tools_list: ToolsListConfig,
    pub hold_request_headers: bool,
    pub protocol_versions: ProtocolVersions,
    /// `legacySse.prefixRewrites`: for the `endpoint` event.
    pub legacy_prefix_rewrites: Vec<PrefixRewrite>,
    /// A2A access rules, task isolation, version pinning (`a2a:`).
    pub a2a: Option<crate::a2a_acl::config::A2aAcl>,
}

#[derive(Debug, Clone)]
pub struct ToolsListConfig {
    pub filter: bool,
    /// What `filter` covers, worked out at load: see
    /// [`ToolAclConfig::filtered_lists`].
    lists: Vec<TargetKind>,
    /// `None`: caching off.
    pub cache: Option<CacheConfig>,
    pub max_response_bytes: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    pub ttl_ms: u64,
    pub limits: CacheLimits,
}

impl ToolAclConfig {
    pub fn governs(&self, kind: TargetKind) -> bool {
        self.governed.contains(&kind)
    }

    /// The lists filtered per agent (`toolsList.filter`): `tools/list`, and
    /// `resources/list` / `prompts/list` when resources / prompts are
    /// governed, so that no list shows what the agent may not use.
    pub fn filtered_lists(&self) -> &[TargetKind] {
        &self.tools_list.lists
    }
}

fn patterns(list: Vec<String>, path: String) -> Result<PatternList, ConfigError> {
    PatternList::compile(list, &path)
}

fn rule(i: usize, spec: AccessRuleSpec) -> Result<AccessRule, ConfigError> {
    let at = |key: &str| format!("accessRules[{i}].{key}");
    let perms = |allowed, denied, a: &str, d: &str| -> Result<Permissions, ConfigError> {
        Ok(Permissions {
            allowed: patterns(allowed, at(a))?,
            denied: patterns(denied, at(d))?,
        })
    };
    let tools = perms(
        spec.allowed_tools,
        spec.denied_tools,
        "allowedTools",
        "deniedTools",
    )?;
    let resources = perms(
        spec.allowed_resources,
        spec.denied_resources,
        "allowedResources",
        "deniedResources",
    )?;
    let prompts = perms(
        spec.allowed_prompts,
        spec.denied_prompts,
        "allowedPrompts",
        "deniedPrompts",
    )?;
    AccessRule::new(spec.agent_pattern, tools, resources, prompts)
        .map_err(|e| e.within(&format!("accessRules[{i}]")))
}

fn governed(apply_to: &ApplyToSpec) -> Result<Vec<TargetKind>, ConfigError> {
    let mut kinds = Vec::new();
    let mut add = |kind: Option<TargetKind>, path: String, given: &str| match kind {
        Some(k) => {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
            Ok(())
        }
        None => Err(ConfigError::at(
            path,
            format!(
                "`{given}` does not name an operation the ACL can check; use /mcp/tools/call, \
                 /mcp/resources/read or /mcp/prompts/get (every request under applyTo.endpoints \
                 is inspected whatever its path)"
            ),
        )),
    };
    for (i, p) in apply_to.paths.iter().enumerate() {
        let kind = Operation::from_recipe_path(p).and_then(TargetKind::of);
        add(kind, format!("applyTo.paths[{i}]"), p)?;
    }
    for (i, m) in apply_to.methods.iter().enumerate() {
        let kind = Operation::from_method(m).and_then(TargetKind::of);
        add(kind, format!("applyTo.methods[{i}]"), m)?;
    }
    if kinds.is_empty() {
        kinds.push(TargetKind::Tool);
    }
    Ok(kinds)
}

/// Only `#[payload.params.name]` is accepted: the ACL must check the very
/// field the MCP server dispatches on, or a client could put an allowed
/// name where the extractor looks and the real one where the server looks.
fn check_extractor(extractor: Option<&str>) -> Result<(), ConfigError> {
    let Some(text) = extractor else { return Ok(()) };
    let scope = Scope {
        vars: &[],
        payload: true,
        headers: true,
    };
    let err = |m: String| ConfigError::at("toolNameExtractor", m);
    let template = Template::parse(text, scope).map_err(err)?;
    match template.as_single_expr() {
        Some(Expr::Payload(path))
            if path.steps() == [Step::Key("params".into()), Step::Key("name".into())] =>
        {
            Ok(())
        }
        Some(Expr::Header(_)) => Err(err(
            "a header cannot name the tool: the MCP server runs the tool named in the body; \
             use \"#[payload.params.name]\""
                .into(),
        )),
        _ => Err(err(format!(
            "`{text}`: only \"#[payload.params.name]\" is supported, the field MCP servers \
             dispatch tools/call on (checking any other field would let a client name one \
             tool to the gateway and another to the server)"
        ))),
    }
}

fn endpoints(list: &[String]) -> Result<Vec<String>, ConfigError> {
    if list.is_empty() {
        return Ok(vec![DEFAULT_ENDPOINT.to_string()]);
    }
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            if !p.starts_with('/') {
                return Err(ConfigError::at(
                    format!("applyTo.endpoints[{i}]"),
                    format!("`{p}` must be an absolute path such as /mcp"),
                ));
            }
            Ok(canonical_path(p))
        })
        .collect()
}

impl TryFrom<ToolAclSpec> for ToolAclConfig {
    type Error = ConfigError;

    fn try_from(spec: ToolAclSpec) -> Result<Self, ConfigError> {
        let rules = spec
            .access_rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| rule(i, r))
            .collect::<Result<Vec<_>, _>>()?;
        let match_by = match spec.match_agent_by {
            AgentFieldSpec::AgentId => AgentField::Id,
            AgentFieldSpec::AgentName => AgentField::Name,
        };
        let default_decision = match spec.default_decision {
            DefaultDecisionSpec::Deny => DefaultDecision::Deny,
            DefaultDecisionSpec::Allow => DefaultDecision::Allow,
        };
        let governed = governed(&spec.apply_to)?;
        let endpoints = endpoints(&spec.apply_to.endpoints)?;
        check_extractor(spec.tool_name_extractor.as_deref())?;
        let d = spec.denied_response;
        let format = match d.format {
            DenialFormatSpec::Auto => DenialFormat::Auto,
            DenialFormatSpec::Http => DenialFormat::Http,
            DenialFormatSpec::JsonRpc => DenialFormat::JsonRpc,
        };
        let denial = DeniedResponse::new(
            d.status_code,
            &d.body,
            d.headers.into_iter().collect(),
            format,
            d.json_rpc_code,
        )
        .map_err(|e| e.within("deniedResponse"))?;
        let max_body_bytes = spec.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            return Err(ConfigError::at("maxBodyBytes", "must be greater than 0"));
        }
        let t = spec.tools_list;
        if t.max_response_bytes == 0 {
            return Err(ConfigError::at(
                "toolsList.maxResponseBytes",
                "must be greater than 0",
            ));
        }
        let cache = (t.cache.enabled && t.cache.ttl_seconds > 0).then_some(CacheConfig {
            ttl_ms: t.cache.ttl_seconds.saturating_mul(1000),
            limits: CacheLimits {
                max_entries: t.cache.max_entries.max(1),
                max_bytes: t.cache.max_bytes,
            },
        });
        let lists = if t.filter {
            [TargetKind::Tool, TargetKind::Resource, TargetKind::Prompt]
                .into_iter()
                .filter(|k| governed.contains(k))
                .collect()
        } else {
            Vec::new()
        };
        let protocol_versions = match spec.protocol_versions {
            None => ProtocolVersions::default(),
            Some(list) => ProtocolVersions::new(list).map_err(|(i, m)| match i {
                Some(i) => ConfigError::at(format!("protocolVersions[{i}]"), m),
                None => ConfigError::at("protocolVersions", m),
            })?,
        };
        let legacy_prefix_rewrites = spec
            .legacy_sse
            .prefix_rewrites
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PrefixRewrite::new(&r.gateway_prefix, &r.upstream_prefix)
                    .map_err(|m| ConfigError::at(format!("legacySse.prefixRewrites[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            acl: ToolAcl::new(rules, match_by, default_decision),
            governed,
            endpoints,
            denial,
            max_body_bytes,
            batches: spec.batches,
            tools_list: ToolsListConfig {
                filter: t.filter,
                lists,
                cache,
                max_response_bytes: t.max_response_bytes,
            },
            hold_request_headers: spec.hold_request_headers,
            protocol_versions,
            legacy_prefix_rewrites,
            a2a: spec.a2a.map(TryInto::try_into).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::tool_acl::denial::DenialContext;
    use crate::tool_acl::rules::Agent;

    /// The recipe's `config:` block, verbatim.
    pub const RECIPE: &str = include_str!("../../../../examples/recipe/mcp-tool-acl.yaml");

    fn recipe() -> ToolAclConfig {
        load::<ToolAclSpec, ToolAclConfig>(RECIPE.as_bytes()).unwrap()
    }

    #[test]
    fn recipe_block_loads_as_written() {
        let c = recipe();
        assert_eq!(c.acl.rules().len(), 3);
        assert_eq!(c.governed, vec![TargetKind::Tool]);
        assert_eq!(c.endpoints, vec!["/mcp"]);
        assert_eq!(c.denial.status, 403);
        assert_eq!(c.denial.format, DenialFormat::Auto);
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.batches, BatchPolicy::Inspect);
        let cache = c.tools_list.cache.unwrap();
        assert_eq!(cache.ttl_ms, 300_000);
        assert!(c.tools_list.filter);
    }

    #[test]
    fn recipe_rules_decide_as_documented() {
        let c = recipe();
        let agent = |id| Some(Agent { id, name: "" });
        let cases = [
            ("sentinel-1", "search_patterns", true),
            ("sentinel-1", "read_config", true),
            ("sentinel-1", "execute_code", false),
            ("sentinel-1", "write_file", false),
            ("sentinel-1", "render_scene", false),
            ("alchemy-1", "generate_video", true),
            ("alchemy-1", "render_scene", true),
            ("alchemy-1", "read_template", true),
            ("alchemy-1", "delete_scene", false),
            ("alchemy-1", "search_patterns", false),
            ("admin-1", "execute_code", true),
            ("admin-1", "delete_scene", true),
            ("admin-1", "deploy_application", true),
            ("intern-1", "search_patterns", false),
        ];
        for (who, tool, allowed) in cases {
            assert_eq!(
                c.acl
                    .decide(agent(who), TargetKind::Tool, tool)
                    .is_allowed(),
                allowed,
                "{who} {tool}"
            );
        }
    }

    #[test]
    fn recipe_denial_body_renders() {
        let c = recipe();
        let reply = c.denial.http(&DenialContext {
            agent_id: "sentinel-1".into(),
            tool_name: "execute_code".into(),
            allowed_tools: "search_patterns, classify_content, read_config".into(),
            ..Default::default()
        });
        let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            v["message"],
            "Agent 'sentinel-1' is not authorized to invoke tool 'execute_code'"
        );
    }

    #[test]
    fn empty_config_is_deny_all() {
        let c = load::<ToolAclSpec, ToolAclConfig>(b"").unwrap();
        assert!(c.acl.rules().is_empty());
        assert!(!c
            .acl
            .decide(
                Some(Agent {
                    id: "admin-1",
                    name: ""
                }),
                TargetKind::Tool,
                "x"
            )
            .is_allowed());
    }

    #[test]
    fn extended_keys() {
        let c = load::<ToolAclSpec, ToolAclConfig>(
            br##"
accessRules:
  - agentPattern: "sentinel-*"
    allowedTools: ["read_*"]
    allowedResources: ["config://*"]
    allowedPrompts: ["summarize"]
applyTo:
  paths: [/mcp/tools/call, /mcp/resources/read]
  methods: [prompts/get]
  endpoints: [/mcp, /MCP-v2/]
matchAgentBy: agentName
defaultDecision: allow
maxBodyBytes: 4096
batches: reject
deniedResponse:
  format: jsonrpc
  jsonRpcCode: -32003
toolsList:
  filter: true
  maxResponseBytes: 1000
  cache: { enabled: true, ttlSeconds: 60, maxEntries: 4, maxBytes: 50000 }
"##,
        )
        .unwrap();
        assert_eq!(
            c.governed,
            vec![TargetKind::Tool, TargetKind::Resource, TargetKind::Prompt]
        );
        assert_eq!(c.endpoints, vec!["/mcp", "/mcp-v2"]);
        assert_eq!(c.max_body_bytes, 4096);
        assert_eq!(c.batches, BatchPolicy::Reject);
        assert_eq!(c.denial.format, DenialFormat::JsonRpc);
        assert_eq!(c.denial.jsonrpc_code, -32003);
        assert_eq!(c.tools_list.cache.unwrap().ttl_ms, 60_000);
        let agent = Some(Agent {
            id: "x",
            name: "sentinel-a",
        });
        assert!(c
            .acl
            .decide(agent, TargetKind::Resource, "config://a")
            .is_allowed());
        let off =
            load::<ToolAclSpec, ToolAclConfig>(b"toolsList: {cache: {ttlSeconds: 0}}").unwrap();
        assert!(off.tools_list.cache.is_none());
    }

    #[test]
    fn protocol_versions_default_and_pinned() {
        let default = recipe();
        for v in crate::tool_acl::versions::DEFAULT_PROTOCOL_VERSIONS {
            assert!(default.protocol_versions.accepts(v), "{v}");
        }
        let pinned =
            load::<ToolAclSpec, ToolAclConfig>(b"protocolVersions: ['2025-11-25', '2026-07-28']\n")
                .unwrap();
        assert_eq!(
            pinned.protocol_versions.list(),
            ["2025-11-25", "2026-07-28"]
        );
        assert!(!pinned.protocol_versions.accepts("2025-06-18"));
    }

    #[test]
    fn legacy_prefix_rewrites_load_and_name_the_key() {
        let c = load::<ToolAclSpec, ToolAclConfig>(
            b"legacySse: {prefixRewrites: [{gatewayPrefix: /tools/legacy/, upstreamPrefix: /mcp/}]}\n",
        )
        .unwrap();
        assert_eq!(c.legacy_prefix_rewrites[0].gateway, "/tools/legacy/");
        assert!(recipe().legacy_prefix_rewrites.is_empty());
        let err = load::<ToolAclSpec, ToolAclConfig>(
            b"legacySse: {prefixRewrites: [{gatewayPrefix: legacy, upstreamPrefix: /mcp/}]}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("legacySse.prefixRewrites[0]"), "{err}");
        assert!(err.contains("gatewayPrefix"), "{err}");
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            (
                "accessRules:\n  - agentPattern: a\n    allowedTool: [x]\n",
                "accessRules[0].allowedTool",
            ),
            (
                "accessRules:\n  - agentPattern: a\n    deniedTools: ['[x']\n",
                "accessRules[0].deniedTools[0]",
            ),
            (
                "accessRules:\n  - agentPattern: '{a'\n",
                "accessRules[0].agentPattern",
            ),
            ("accessRules:\n  - allowedTools: [x]\n", "accessRules[0]"),
            ("applyTo:\n  paths: [/mcp]\n", "applyTo.paths[0]"),
            ("applyTo:\n  paths: [/mcp/tools/list]\n", "applyTo.paths[0]"),
            ("applyTo:\n  methods: [tools/cal]\n", "applyTo.methods[0]"),
            ("applyTo:\n  endpoints: [mcp]\n", "applyTo.endpoints[0]"),
            (
                "toolNameExtractor: \"#[payload.params.tool]\"\n",
                "toolNameExtractor",
            ),
            (
                "toolNameExtractor: \"#[attributes.headers['mcp-name']]\"\n",
                "toolNameExtractor",
            ),
            (
                "toolNameExtractor: \"#[payload.params.name\"\n",
                "toolNameExtractor",
            ),
            (
                "deniedResponse:\n  body: '#[vars.agent]'\n",
                "deniedResponse.body",
            ),
            (
                "deniedResponse:\n  statusCode: 200\n",
                "deniedResponse.statusCode",
            ),
            ("deniedResponse:\n  format: xml\n", "deniedResponse.format"),
            ("matchAgentBy: owner\n", "matchAgentBy"),
            ("defaultDecision: maybe\n", "defaultDecision"),
            ("batches: allow\n", "batches"),
            ("maxBodyBytes: 0\n", "maxBodyBytes"),
            ("toolsList:\n  cache:\n    ttl: 5\n", "toolsList.cache.ttl"),
            ("protocolVersions: []\n", "protocolVersions"),
            (
                "protocolVersions: [2025-11-25, '2025-6-18']\n",
                "protocolVersions[1]",
            ),
        ];
        for (yaml, path) in cases {
            let err = load::<ToolAclSpec, ToolAclConfig>(yaml.as_bytes()).unwrap_err();
            assert_eq!(&err.path, path, "{yaml}: {err}");
        }
    }
}
