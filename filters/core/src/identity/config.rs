//! Configuration of the identity filter: the recipe's "Agent Authentication
//! Policy" `config:` block, loaded as written, plus the keys a production
//! deployment needs (static agents, clusters, timeouts, client
//! authentication, per-path scopes, cache bounds).
//!
//! ```yaml
//! authMethods:
//!   - type: apiKey
//!     headerName: x-agent-api-key
//!     validationEndpoint: https://identity.internal/v1/agents/validate
//!   - type: oauth2ClientCredentials
//!     tokenUrl: https://auth.example.com/oauth/token
//!     introspectionUrl: https://auth.example.com/oauth/introspect
//!     requiredScopes: [mcp:tools:invoke, a2a:tasks:send]
//! identityExtraction:
//!   agentId: "#[vars.tokenClaims.agent_id]"
//!   agentName: "#[vars.tokenClaims.agent_name]"
//!   agentOwner: "#[vars.tokenClaims.owner]"
//! addHeaders:
//!   X-Verified-Agent-Id: "#[vars.agentId]"
//! ```
//!
//! Endpoints are URLs; the filter calls them through an Envoy cluster named
//! by `validationCluster` / `introspectionCluster`, by default the URL's host
//! (so the recipe's `https://identity.internal/...` goes to the cluster
//! `identity.internal`). The cluster decides TLS and addresses; the URL
//! gives the `:authority` and `:path` of the call.

use crate::config::ConfigError;
use crate::template::{Scope, Template};
use crate::upstream::{Upstream, Url};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

pub const DEFAULT_API_KEY_HEADER: &str = "x-agent-api-key";
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_CACHE_ENTRIES: u32 = 4_096;
/// Longest life of a cached valid API key (the validation service's `exp`
/// shortens it). Keys are long-lived registrations: 5 minutes keeps the
/// validation service out of the hot path.
pub const DEFAULT_API_KEY_TTL_SECONDS: u64 = 300;
/// Longest life of a cached active token (its `exp` shortens it). A token
/// revoked at the authorization server keeps working this long at most: 30 s
/// bounds that window while costing one introspection per token per 30 s
/// per Envoy process.
pub const DEFAULT_TOKEN_TTL_SECONDS: u64 = 30;
/// Life of a negative result (unknown key, inactive token): a flood of the
/// same bad credential costs one callout per 10 s, and a key registered a
/// moment ago works within 10 s.
pub const DEFAULT_NEGATIVE_TTL_SECONDS: u64 = 10;
/// Longest TTL accepted for any cache entry (a day).
pub const MAX_CACHE_TTL_SECONDS: u64 = 86_400;
/// Validation / introspection callouts one Envoy worker may have in flight;
/// beyond that a request that needs a callout is refused with 503, so a
/// flood of unknown credentials cannot pile up on the identity services.
pub const DEFAULT_MAX_CALLOUTS_IN_FLIGHT: u32 = 32;
pub use crate::protocol::identity::VERIFIED_HEADER_PREFIX;

/// Variables the `identityExtraction` templates can read.
const EXTRACTION_VARS: &[&str] = &["tokenClaims"];
/// Variables the `addHeaders` templates can read.
const HEADER_VARS: &[&str] = &[
    "agentId",
    "agentName",
    "agentOwner",
    "authMethod",
    "tokenClaims",
];

// ------------------------------------------------------------------ spec

/// Every key has a default (`authMethods` must still name one method: the
/// conversion checks it).
#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentitySpec {
    pub auth_methods: Vec<AuthMethodSpec>,
    pub identity_extraction: Option<IdentityExtractionSpec>,
    pub add_headers: Option<BTreeMap<String, String>>,
    /// Pass `Authorization` / the API key header on to the upstream.
    pub forward_credentials: bool,
    /// Paths served without authentication (exact, or a prefix ending in `*`).
    pub public_paths: Option<Vec<String>>,
    pub cache: CacheSpec,
    /// Validation / introspection callouts in flight per Envoy worker.
    pub max_callouts_in_flight: u32,
}

impl Default for IdentitySpec {
    fn default() -> Self {
        Self {
            auth_methods: Vec::new(),
            identity_extraction: None,
            add_headers: None,
            forward_credentials: false,
            public_paths: None,
            cache: CacheSpec::default(),
            max_callouts_in_flight: DEFAULT_MAX_CALLOUTS_IN_FLIGHT,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum AuthMethodSpec {
    #[serde(rename = "apiKey")]
    ApiKey(ApiKeySpec),
    #[serde(rename = "oauth2ClientCredentials")]
    OAuth2ClientCredentials(OAuth2Spec),
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeySpec {
    pub header_name: Option<String>,
    pub validation_endpoint: Option<String>,
    pub validation_cluster: Option<String>,
    pub timeout_ms: Option<u64>,
    /// Agents known without a callout, keys stored as SHA-256 hashes.
    pub agents: Vec<StaticAgentSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticAgentSpec {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    /// Lower-case hex SHA-256 of the key (`printf %s KEY | sha256sum`).
    pub key_sha256: String,
    /// More claims, readable as `#[vars.tokenClaims.<name>]`.
    #[serde(default)]
    pub claims: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuth2Spec {
    /// Where clients get tokens. Not called by the gateway; its origin is the
    /// default authorization server in the protected-resource metadata.
    #[serde(default)]
    pub token_url: Option<String>,
    pub introspection_url: String,
    #[serde(default)]
    pub introspection_cluster: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub client_auth: Option<ClientAuthSpec>,
    /// Scopes every request needs (all of them).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Scopes requests matching a path / HTTP method need on top.
    #[serde(default)]
    pub scope_rules: Vec<ScopeRuleSpec>,
    /// The token's `aud` must contain one of these. Required and non-empty:
    /// without it a token minted for any other service would be accepted.
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// RFC 9728 metadata: `authorization_servers` (default: origin of tokenUrl).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// RFC 9728 metadata: the `resource` identifier (default: derived from
    /// the request, `https://<authority>/<first path segment>`).
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ClientAuthMethod {
    /// `Authorization: Basic base64(urlenc(id):urlenc(secret))` (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// `Authorization: Bearer <token>` (a token the gateway holds).
    Bearer,
    /// No client authentication.
    None,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientAuthSpec {
    pub method: ClientAuthMethod,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopeRuleSpec {
    #[serde(default)]
    pub paths: Vec<String>,
    /// HTTP methods (any when empty).
    #[serde(default)]
    pub methods: Vec<String>,
    pub required_scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityExtractionSpec {
    pub agent_id: String,
    #[serde(default)]
    pub agent_name: Option<String>,
    #[serde(default)]
    pub agent_owner: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheSpec {
    pub max_entries: u32,
    pub api_key_ttl_seconds: u64,
    pub token_ttl_seconds: u64,
    pub negative_ttl_seconds: u64,
}

impl Default for CacheSpec {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_CACHE_ENTRIES,
            api_key_ttl_seconds: DEFAULT_API_KEY_TTL_SECONDS,
            token_ttl_seconds: DEFAULT_TOKEN_TTL_SECONDS,
            negative_ttl_seconds: DEFAULT_NEGATIVE_TTL_SECONDS,
        }
    }
}

// ------------------------------------------------------------------ runtime

/// A validation or introspection URL as a callout destination
/// (`crate::upstream`: the URL's host is the cluster unless one is named).
pub fn callout_upstream(
    url: &str,
    cluster: Option<&str>,
    timeout_ms: Option<u64>,
) -> Result<Upstream, String> {
    let timeout_ms = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 || timeout_ms > 60_000 {
        return Err(format!(
            "timeoutMs must be between 1 and 60000, got {timeout_ms}"
        ));
    }
    Upstream::from_url(url, cluster, timeout_ms)
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<String> {
    Url::parse(url).ok().map(|u| u.origin())
}

/// A static agent: its claims, found by the SHA-256 of its key.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticAgent {
    pub id: String,
    pub claims: Map<String, Value>,
    /// Its verdict, computed once at load: it depends on neither the
    /// request nor the time unless the claims carry an `exp` (then `None`,
    /// and every request renders it). Saves the templates per request.
    pub verdict: Option<crate::identity::policy::Verdict>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyMethod {
    pub header_name: String,
    pub validation: Option<Upstream>,
    /// Lower-case hex SHA-256 of the key -> agent.
    pub agents: HashMap<String, StaticAgent>,
}

#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub method: ClientAuthMethod,
    pub client_id: String,
    pub client_secret: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Exact(String),
    Prefix(String),
}

impl PathPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') && text != "*" {
            return Err(format!("path pattern `{text}` must start with `/`"));
        }
        match text.strip_suffix('*') {
            Some(prefix) if prefix.contains('*') => Err(format!(
                "path pattern `{text}`: `*` is only allowed at the end"
            )),
            Some(prefix) => Ok(Self::Prefix(prefix.to_string())),
            None if text.contains('*') => Err(format!(
                "path pattern `{text}`: `*` is only allowed at the end"
            )),
            None => Ok(Self::Exact(text.to_string())),
        }
    }

    /// `path` without its query string.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(p) => p == path,
            Self::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ScopeRule {
    pub paths: Vec<PathPattern>,
    pub methods: Vec<String>,
    pub required_scopes: Vec<String>,
}

impl ScopeRule {
    pub fn applies(&self, method: &str, path: &str) -> bool {
        (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(path)))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }
}

#[derive(Debug, Clone)]
pub struct OAuth2Method {
    pub introspection: Upstream,
    pub client_auth: ClientAuth,
    pub required_scopes: Vec<String>,
    pub scope_rules: Vec<ScopeRule>,
    pub audiences: Vec<String>,
    pub authorization_servers: Vec<String>,
    pub resource: Option<String>,
    pub resource_name: Option<String>,
}

impl OAuth2Method {
    /// Every scope a request to `path` with HTTP `method` needs.
    pub fn scopes_for(&self, method: &str, path: &str) -> Vec<String> {
        let mut scopes = self.required_scopes.clone();
        for rule in self.scope_rules.iter().filter(|r| r.applies(method, path)) {
            for scope in &rule.required_scopes {
                if !scopes.contains(scope) {
                    scopes.push(scope.clone());
                }
            }
        }
        scopes
    }

    /// Every scope any request may need, for `scopes_supported`.
    pub fn all_scopes(&self) -> Vec<String> {
        let mut scopes = self.required_scopes.clone();
        for scope in self.scope_rules.iter().flat_map(|r| &r.required_scopes) {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        scopes
    }
}

#[derive(Debug, Clone)]
pub struct IdentityExtraction {
    pub agent_id: Template,
    pub agent_name: Option<Template>,
    pub agent_owner: Option<Template>,
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub max_entries: u32,
    /// Longest life of a valid API key result.
    pub api_key_ttl_seconds: u64,
    /// Longest life of an active token result.
    pub token_ttl_seconds: u64,
    pub negative_ttl_seconds: u64,
}

/// The loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub api_key: Option<ApiKeyMethod>,
    pub oauth2: Option<OAuth2Method>,
    pub extraction: IdentityExtraction,
    /// (lower-case header name, template), in name order.
    pub add_headers: Vec<(String, Template)>,
    pub forward_credentials: bool,
    pub public_paths: Vec<PathPattern>,
    pub cache: CacheSettings,
    /// Callouts one worker may have in flight (at least 1).
    pub max_callouts_in_flight: u32,
    /// Short hash of the configuration's security-relevant parts: cache
    /// entries written under another configuration are not reused.
    pub fingerprint: String,
}

pub const DEFAULT_PUBLIC_PATHS: &[&str] = &[
    "/.well-known/agent-card.json",
    "/.well-known/agent.json",
    "/a2a/agent-card",
    "/a2a/.well-known/agent-card.json",
    "/.well-known/oauth-protected-resource*",
];

fn template(text: &str, vars: &[&str]) -> Result<Template, String> {
    Template::parse(
        text,
        Scope {
            vars,
            payload: false,
            headers: false,
        },
    )
}

fn header_name(text: &str) -> Result<String, String> {
    if !crate::protocol::http::is_header_name(text, false) {
        return Err(format!("`{text}` is not a valid HTTP header name"));
    }
    Ok(text.to_ascii_lowercase())
}

fn scope_list(scopes: Vec<String>) -> Result<Vec<String>, String> {
    for scope in &scopes {
        // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
        if scope.is_empty()
            || !scope
                .chars()
                .all(|c| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c))
        {
            return Err(format!("`{scope}` is not a valid OAuth scope"));
        }
    }
    Ok(scopes)
}

/// `audiences` is required: RFC 8707 / the MCP authorization spec make the
/// resource server check that a token was issued for it, and an empty list
/// would accept tokens minted for any other service of the same
/// authorization server (a token confused-deputy). No default is guessed:
/// the request's own `:authority` is client-controlled.
fn audience_list(audiences: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let why = "required: list the audience(s) a token must be issued for, normally this \
               gateway's RFC 9728 `resource` (e.g. [https://gateway.example.com]); without \
               it a token minted for any other service of the authorization server would be \
               accepted";
    let audiences = match audiences {
        Some(list) if !list.is_empty() => list,
        _ => return Err(ConfigError::at("audiences", why)),
    };
    for (i, audience) in audiences.iter().enumerate() {
        if audience.trim().is_empty() || audience.trim() != audience {
            return Err(ConfigError::at(
                format!("audiences[{i}]"),
                "an audience is a non-empty string without surrounding spaces",
            ));
        }
    }
    Ok(audiences)
}

impl TryFrom<ApiKeySpec> for ApiKeyMethod {
    type Error = ConfigError;
    fn try_from(spec: ApiKeySpec) -> Result<Self, ConfigError> {
        let header_name = header_name(
            spec.header_name
                .as_deref()
                .unwrap_or(DEFAULT_API_KEY_HEADER),
        )
        .map_err(|m| ConfigError::at("headerName", m))?;
        if header_name == "authorization" || header_name.starts_with(VERIFIED_HEADER_PREFIX) {
            return Err(ConfigError::at(
                "headerName",
                format!("`{header_name}` is reserved"),
            ));
        }
        let validation = match spec.validation_endpoint {
            Some(url) => Some(
                callout_upstream(&url, spec.validation_cluster.as_deref(), spec.timeout_ms)
                    .map_err(|m| ConfigError::at("validationEndpoint", m))?,
            ),
            None if spec.validation_cluster.is_some() => {
                return Err(ConfigError::at(
                    "validationCluster",
                    "set validationEndpoint too",
                ))
            }
            None => None,
        };
        let mut agents = HashMap::new();
        for (i, agent) in spec.agents.into_iter().enumerate() {
            let at = |key: &str, m: String| ConfigError::at(format!("agents[{i}].{key}"), m);
            if agent.id.trim().is_empty() {
                return Err(at("id", "agent id is empty".into()));
            }
            let hash = agent.key_sha256.to_ascii_lowercase();
            if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(at(
                    "keySha256",
                    "expected 64 hex characters (SHA-256 of the key)".into(),
                ));
            }
            let mut claims = agent.claims.unwrap_or_default();
            claims.insert("agent_id".into(), Value::String(agent.id.clone()));
            if let Some(name) = agent.name {
                claims.insert("agent_name".into(), Value::String(name));
            }
            if let Some(owner) = agent.owner {
                claims.insert("owner".into(), Value::String(owner));
            }
            let previous = agents.insert(
                hash,
                StaticAgent {
                    id: agent.id,
                    claims,
                    verdict: None,
                },
            );
            if previous.is_some() {
                return Err(at("keySha256", "two agents have the same key hash".into()));
            }
        }
        if validation.is_none() && agents.is_empty() {
            return Err(ConfigError::at(
                "",
                "an apiKey method needs a validationEndpoint or static agents",
            ));
        }
        Ok(Self {
            header_name,
            validation,
            agents,
        })
    }
}

impl TryFrom<OAuth2Spec> for OAuth2Method {
    type Error = ConfigError;
    fn try_from(spec: OAuth2Spec) -> Result<Self, ConfigError> {
        let introspection = callout_upstream(
            &spec.introspection_url,
            spec.introspection_cluster.as_deref(),
            spec.timeout_ms,
        )
        .map_err(|m| ConfigError::at("introspectionUrl", m))?;
        // No clientAuth block (as in the recipe): introspect without client
        // authentication. A block defaults to client_secret_basic.
        let auth = spec.client_auth.unwrap_or(ClientAuthSpec {
            method: ClientAuthMethod::None,
            ..ClientAuthSpec::default()
        });
        let client_auth = ClientAuth {
            method: auth.method,
            client_id: auth.client_id.unwrap_or_default(),
            client_secret: auth.client_secret.unwrap_or_default(),
            token: auth.token.unwrap_or_default(),
        };
        match client_auth.method {
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost
                if client_auth.client_id.is_empty() =>
            {
                return Err(ConfigError::at(
                    "clientAuth.clientId",
                    "client authentication needs a clientId (or set method: none)",
                ));
            }
            ClientAuthMethod::Bearer if client_auth.token.is_empty() => {
                return Err(ConfigError::at(
                    "clientAuth.token",
                    "method bearer needs a token",
                ))
            }
            _ => {}
        }
        let required_scopes =
            scope_list(spec.required_scopes).map_err(|m| ConfigError::at("requiredScopes", m))?;
        let mut scope_rules = Vec::new();
        for (i, rule) in spec.scope_rules.into_iter().enumerate() {
            let at = |key: &str, m: String| ConfigError::at(format!("scopeRules[{i}].{key}"), m);
            let paths = rule
                .paths
                .iter()
                .map(|p| PathPattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| at("paths", m))?;
            let methods = rule
                .methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect();
            let required_scopes =
                scope_list(rule.required_scopes).map_err(|m| at("requiredScopes", m))?;
            scope_rules.push(ScopeRule {
                paths,
                methods,
                required_scopes,
            });
        }
        let authorization_servers = if spec.authorization_servers.is_empty() {
            spec.token_url
                .as_deref()
                .or(Some(spec.introspection_url.as_str()))
                .and_then(origin)
                .into_iter()
                .collect()
        } else {
            spec.authorization_servers
        };
        if let Some(url) = &spec.token_url {
            origin(url)
                .ok_or_else(|| ConfigError::at("tokenUrl", format!("`{url}` is not a URL")))?;
        }
        let audiences = audience_list(spec.audiences)?;
        Ok(Self {
            introspection,
            client_auth,
            required_scopes,
            scope_rules,
            audiences,
            authorization_servers,
            resource: spec.resource,
            resource_name: spec.resource_name,
        })
    }
}

impl TryFrom<IdentitySpec> for IdentityConfig {
    type Error = ConfigError;
    fn try_from(spec: IdentitySpec) -> Result<Self, ConfigError> {
        let mut api_key = None;
        let mut oauth2 = None;
        for (i, method) in spec.auth_methods.into_iter().enumerate() {
            let at = format!("authMethods[{i}]");
            match method {
                AuthMethodSpec::ApiKey(spec) => {
                    if api_key.is_some() {
                        return Err(ConfigError::at(&at, "only one apiKey method is allowed"));
                    }
                    api_key = Some(ApiKeyMethod::try_from(spec).map_err(|e| e.within(&at))?);
                }
                AuthMethodSpec::OAuth2ClientCredentials(spec) => {
                    if oauth2.is_some() {
                        return Err(ConfigError::at(
                            &at,
                            "only one oauth2ClientCredentials method is allowed",
                        ));
                    }
                    oauth2 = Some(OAuth2Method::try_from(spec).map_err(|e| e.within(&at))?);
                }
            }
        }
        if api_key.is_none() && oauth2.is_none() {
            return Err(ConfigError::at(
                "authMethods",
                "configure at least one authentication method (apiKey or oauth2ClientCredentials)",
            ));
        }

        let extraction_spec = spec.identity_extraction.unwrap_or(IdentityExtractionSpec {
            agent_id: "#[vars.tokenClaims.agent_id]".into(),
            agent_name: Some("#[vars.tokenClaims.agent_name]".into()),
            agent_owner: Some("#[vars.tokenClaims.owner]".into()),
        });
        let at = |key: &str, m: String| ConfigError::at(format!("identityExtraction.{key}"), m);
        let extraction = IdentityExtraction {
            agent_id: template(&extraction_spec.agent_id, EXTRACTION_VARS)
                .map_err(|m| at("agentId", m))?,
            agent_name: extraction_spec
                .agent_name
                .as_deref()
                .map(|t| template(t, EXTRACTION_VARS))
                .transpose()
                .map_err(|m| at("agentName", m))?,
            agent_owner: extraction_spec
                .agent_owner
                .as_deref()
                .map(|t| template(t, EXTRACTION_VARS))
                .transpose()
                .map_err(|m| at("agentOwner", m))?,
        };

        let add_headers_spec = spec.add_headers.unwrap_or_else(|| {
            BTreeMap::from([
                ("X-Verified-Agent-Id".into(), "#[vars.agentId]".into()),
                ("X-Verified-Agent-Name".into(), "#[vars.agentName]".into()),
                ("X-Verified-Agent-Owner".into(), "#[vars.agentOwner]".into()),
            ])
        });
        let mut add_headers = Vec::new();
        for (name, text) in add_headers_spec {
            let at = |m: String| ConfigError::at(format!("addHeaders.{name}"), m);
            let lower = header_name(&name).map_err(at)?;
            if lower.starts_with(':') || lower == "host" {
                return Err(at("pseudo-headers and host cannot be set".into()));
            }
            let reserved = [
                Some("authorization"),
                api_key.as_ref().map(|k| k.header_name.as_str()),
            ];
            if reserved.contains(&Some(lower.as_str())) {
                return Err(at(format!(
                    "`{lower}` carries credentials and cannot be set"
                )));
            }
            add_headers.push((lower, template(&text, HEADER_VARS).map_err(at)?));
        }

        let public_paths = spec
            .public_paths
            .unwrap_or_else(|| DEFAULT_PUBLIC_PATHS.iter().map(|s| s.to_string()).collect())
            .iter()
            .enumerate()
            .map(|(i, p)| {
                PathPattern::parse(p).map_err(|m| ConfigError::at(format!("publicPaths[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let cache = CacheSettings {
            max_entries: spec.cache.max_entries,
            api_key_ttl_seconds: spec.cache.api_key_ttl_seconds,
            token_ttl_seconds: spec.cache.token_ttl_seconds,
            negative_ttl_seconds: spec.cache.negative_ttl_seconds,
        };
        if cache.max_entries > 1_000_000 {
            return Err(ConfigError::at(
                "cache.maxEntries",
                "at most 1000000 entries",
            ));
        }
        for (key, ttl) in [
            ("cache.apiKeyTtlSeconds", cache.api_key_ttl_seconds),
            ("cache.tokenTtlSeconds", cache.token_ttl_seconds),
            ("cache.negativeTtlSeconds", cache.negative_ttl_seconds),
        ] {
            if ttl > MAX_CACHE_TTL_SECONDS {
                return Err(ConfigError::at(
                    key,
                    format!("at most {MAX_CACHE_TTL_SECONDS} seconds, got {ttl}"),
                ));
            }
        }
        let max_callouts_in_flight = spec.max_callouts_in_flight;
        if !(1..=100_000).contains(&max_callouts_in_flight) {
            return Err(ConfigError::at(
                "maxCalloutsInFlight",
                format!(
                    "between 1 and 100000 (0 would refuse every credential that needs a callout), got {max_callouts_in_flight}"
                ),
            ));
        }

        let fingerprint = fingerprint(&api_key, &oauth2);
        let mut config = Self {
            api_key,
            oauth2,
            extraction,
            add_headers,
            forward_credentials: spec.forward_credentials,
            public_paths,
            cache,
            max_callouts_in_flight,
            fingerprint,
        };
        config.precompute_static_verdicts();
        Ok(config)
    }
}

/// Changes when anything that decides what a cached result means changes
/// (endpoints, client, audiences). Scopes and templates are evaluated per
/// request from the cached claims, so they are not part of it.
fn fingerprint(api_key: &Option<ApiKeyMethod>, oauth2: &Option<OAuth2Method>) -> String {
    let mut hasher = Sha256::new();
    if let Some(k) = api_key {
        hasher.update(b"apiKey\0");
        if let Some(v) = &k.validation {
            upstream_digest(&mut hasher, v);
        }
    }
    if let Some(o) = oauth2 {
        hasher.update(b"\0oauth2\0");
        upstream_digest(&mut hasher, &o.introspection);
        hasher.update(b"\0");
        hasher.update(o.client_auth.client_id.as_bytes());
    }
    hex::encode(hasher.finalize())
        .get(..8)
        .unwrap_or_default()
        .to_string()
}

/// Where a callout goes (the URL's scheme is the cluster's business).
fn upstream_digest(hasher: &mut Sha256, u: &Upstream) {
    for part in [&u.authority, &u.path, &u.cluster] {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
}

impl IdentityConfig {
    pub fn is_public(&self, path: &str) -> bool {
        self.public_paths.iter().any(|p| p.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    pub const RECIPE: &str = include_str!("../../../../examples/recipe/agent-authentication.yaml");

    fn load_cfg(text: &str) -> Result<IdentityConfig, ConfigError> {
        load::<IdentitySpec, IdentityConfig>(text.as_bytes())
    }

    #[test]
    fn recipe_block_loads_as_written() {
        let cfg = load_cfg(RECIPE).unwrap();
        let key = cfg.api_key.as_ref().unwrap();
        assert_eq!(key.header_name, "x-agent-api-key");
        let v = key.validation.as_ref().unwrap();
        assert_eq!(v.cluster, "identity.internal");
        assert_eq!(v.authority, "identity.internal");
        assert_eq!(v.path, "/v1/agents/validate");
        assert_eq!(v.timeout_ms, DEFAULT_TIMEOUT_MS);
        let o = cfg.oauth2.as_ref().unwrap();
        assert_eq!(o.introspection.cluster, "auth.example.com");
        assert_eq!(o.introspection.path, "/oauth/introspect");
        assert_eq!(o.required_scopes, ["mcp:tools:invoke", "a2a:tasks:send"]);
        assert_eq!(o.authorization_servers, ["https://auth.example.com"]);
        assert_eq!(
            cfg.add_headers
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            [
                "x-verified-agent-id",
                "x-verified-agent-name",
                "x-verified-agent-owner"
            ]
        );
        assert!(cfg.is_public("/.well-known/agent-card.json"));
        assert!(cfg.is_public("/.well-known/oauth-protected-resource/mcp"));
        assert!(!cfg.is_public("/mcp"));
        assert!(!cfg.is_public("/a2a"));
    }

    #[test]
    fn static_agents_and_extensions_load() {
        let cfg = load_cfg(
            r##"
authMethods:
  - type: apiKey
    agents:
      - id: sentinel-1
        name: Sentinel
        owner: sec
        keySha256: 2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824
        claims: { tier: gold }
  - type: oauth2ClientCredentials
    introspectionUrl: http://127.0.0.1:9000/oauth/introspect
    introspectionCluster: oauth_server
    timeoutMs: 500
    clientAuth: { method: clientSecretPost, clientId: gw, clientSecret: s }
    audiences: [https://gateway.test]
    scopeRules:
      - paths: [/mcp, /mcp/*]
        requiredScopes: [mcp:tools:invoke]
      - paths: [/a2a*]
        methods: [post]
        requiredScopes: [a2a:tasks:send]
forwardCredentials: true
publicPaths: [/healthz]
cache: { maxEntries: 16, apiKeyTtlSeconds: 60, tokenTtlSeconds: 5, negativeTtlSeconds: 2 }
maxCalloutsInFlight: 7
"##,
        )
        .unwrap();
        let key = cfg.api_key.as_ref().unwrap();
        assert_eq!(key.header_name, DEFAULT_API_KEY_HEADER);
        let agent = key
            .agents
            .get("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
            .unwrap();
        assert_eq!(agent.claims["agent_id"], "sentinel-1");
        assert_eq!(agent.claims["tier"], "gold");
        let o = cfg.oauth2.as_ref().unwrap();
        assert_eq!(o.introspection.cluster, "oauth_server");
        assert_eq!(o.introspection.authority, "127.0.0.1:9000");
        assert_eq!(o.introspection.timeout_ms, 500);
        assert_eq!(o.client_auth.method, ClientAuthMethod::ClientSecretPost);
        assert_eq!(o.scopes_for("POST", "/mcp"), ["mcp:tools:invoke"]);
        assert_eq!(o.scopes_for("POST", "/a2a"), ["a2a:tasks:send"]);
        assert!(o.scopes_for("GET", "/a2a").is_empty());
        assert!(o.scopes_for("POST", "/other").is_empty());
        assert_eq!(o.all_scopes(), ["mcp:tools:invoke", "a2a:tasks:send"]);
        assert!(cfg.forward_credentials);
        assert!(cfg.is_public("/healthz"));
        assert!(!cfg.is_public("/.well-known/agent-card.json"));
        assert_eq!(cfg.cache.max_entries, 16);
        assert_eq!(cfg.cache.api_key_ttl_seconds, 60);
        assert_eq!(cfg.cache.token_ttl_seconds, 5);
        assert_eq!(cfg.cache.negative_ttl_seconds, 2);
        assert_eq!(cfg.max_callouts_in_flight, 7);
        assert_eq!(cfg.fingerprint.len(), 8);
    }

    #[test]
    fn mistakes_are_named_with_their_path() {
        for (text, path) in [
            ("authMethods: []", "authMethods"),
            ("{}", "authMethods"),
            (
                "authMethods: [{type: apiKey, validationEndpoint: ftp://x/y}]",
                "authMethods[0].validationEndpoint",
            ),
            (
                "authMethods: [{type: apiKey, agents: [{id: a, keySha256: abc}]}]",
                "authMethods[0].agents[0].keySha256",
            ),
            (
                "authMethods: [{type: apiKey, headerName: 'bad header', agents: []}]",
                "authMethods[0].headerName",
            ),
            ("authMethods: [{type: apiKey}]", "authMethods[0]"),
            (
                "authMethods: [{type: oauth2ClientCredentials, introspectionUrl: 'http://a/i', audiences: [x], requiredScopes: ['bad scope']}]",
                "authMethods[0].requiredScopes",
            ),
            (
                "authMethods: [{type: oauth2ClientCredentials, introspectionUrl: 'http://a/i', audiences: [x], scopeRules: [{paths: ['mcp'], requiredScopes: [x]}]}]",
                "authMethods[0].scopeRules[0].paths",
            ),
            (
                "authMethods: [{type: oauth2ClientCredentials, introspectionUrl: 'http://a/i', audiences: [x], clientAuth: {method: bearer}}]",
                "authMethods[0].clientAuth.token",
            ),
            (
                "authMethods: [{type: oauth2ClientCredentials, introspectionUrl: 'http://a/i', audiences: [x], clientAuth: {clientSecret: x}}]",
                "authMethods[0].clientAuth.clientId",
            ),
            (
                "authMethods: [{type: oauth2ClientCredentials, introspectionUrl: 'http://a/i', audiences: [x], timeoutMs: 0}]",
                "authMethods[0].introspectionUrl",
            ),
            (
                "authMethods: [{type: oauth2ClientCredentials, introspectionUrl: 'http://a/i', audiences: [x]}]\nidentityExtraction: {agentId: '#[vars.claims.x]'}",
                "identityExtraction.agentId",
            ),
            (
                "authMethods: [{type: oauth2ClientCredentials, introspectionUrl: 'http://a/i', audiences: [x]}]\naddHeaders: {Authorization: x}",
                "addHeaders.Authorization",
            ),
            (
                "authMethods: [{type: oauth2ClientCredentials, introspectionUrl: 'http://a/i', audiences: [x]}]\npublicPaths: ['/a*b']",
                "publicPaths[0]",
            ),
            (
                "authMethods: [{type: oauth2ClientCredentials, introspectionUrl: 'http://a/i', audiences: [x]}, {type: oauth2ClientCredentials, introspectionUrl: 'http://a/i', audiences: [x]}]",
                "authMethods[1]",
            ),
        ] {
            let err = load_cfg(text).unwrap_err();
            assert_eq!(err.path, path, "{text}: {err}");
        }
    }

    #[test]
    fn defaults_are_short_for_tokens_and_bounded_for_callouts() {
        let cfg = load_cfg(RECIPE).unwrap();
        assert_eq!(cfg.cache.api_key_ttl_seconds, 300);
        assert_eq!(cfg.cache.token_ttl_seconds, 30);
        assert_eq!(cfg.cache.negative_ttl_seconds, 10);
        assert_eq!(cfg.max_callouts_in_flight, DEFAULT_MAX_CALLOUTS_IN_FLIGHT);
    }

    #[test]
    fn bearer_tokens_need_audiences() {
        let base = "authMethods: [{type: oauth2ClientCredentials, introspectionUrl: 'http://a/i'";
        for (extra, path) in [
            ("", "authMethods[0].audiences"),
            (", audiences: []", "authMethods[0].audiences"),
            (", audiences: ['']", "authMethods[0].audiences[0]"),
            (", audiences: [' https://g']", "authMethods[0].audiences[0]"),
        ] {
            let err = load_cfg(&format!("{base}{extra}}}]")).unwrap_err();
            assert_eq!(err.path, path, "{extra}: {err}");
        }
        let err = load_cfg(&format!("{base}}}]")).unwrap_err();
        assert!(err.to_string().contains("any other service"), "{err}");
        // the recipe's block as written has none: refused, naming the key
        let verbatim: String = RECIPE
            .lines()
            .filter(|l| !l.contains("audiences"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            load_cfg(&verbatim).unwrap_err().path,
            "authMethods[1].audiences"
        );
        // API keys alone need no audience
        assert!(
            load_cfg("authMethods: [{type: apiKey, validationEndpoint: 'http://v/x'}]").is_ok()
        );
        let cfg = load_cfg(&format!("{base}, audiences: [https://g, https://h]}}]")).unwrap();
        assert_eq!(cfg.oauth2.unwrap().audiences, ["https://g", "https://h"]);
    }

    #[test]
    fn cache_and_callout_bounds_are_checked() {
        let base = "authMethods: [{type: apiKey, validationEndpoint: 'http://v/x'}]\n";
        for (extra, path) in [
            ("cache: {tokenTtlSeconds: 86401}", "cache.tokenTtlSeconds"),
            (
                "cache: {apiKeyTtlSeconds: 100000}",
                "cache.apiKeyTtlSeconds",
            ),
            (
                "cache: {negativeTtlSeconds: 99999999}",
                "cache.negativeTtlSeconds",
            ),
            ("maxCalloutsInFlight: 0", "maxCalloutsInFlight"),
            ("maxCalloutsInFlight: 100001", "maxCalloutsInFlight"),
        ] {
            let err = load_cfg(&format!("{base}{extra}")).unwrap_err();
            assert_eq!(err.path, path, "{extra}: {err}");
        }
        // the old single TTL is gone: named, not silently ignored
        let err = load_cfg(&format!("{base}cache: {{ttlSeconds: 5}}")).unwrap_err();
        assert!(err.to_string().contains("ttlSeconds"), "{err}");
    }

    #[test]
    fn unknown_keys_and_types_are_rejected() {
        let err = load_cfg("authMethods: [{type: apiKey, headerNam: x}]").unwrap_err();
        assert!(err.to_string().contains("headerNam"), "{err}");
        let err = load_cfg("authMethods: [{type: jwt}]").unwrap_err();
        assert!(err.to_string().contains("jwt"), "{err}");
        let err = load_cfg(&format!("{RECIPE}\naddHeader: {{}}\n")).unwrap_err();
        assert_eq!(err.path, "addHeader");
    }

    #[test]
    fn endpoints_parse() {
        let e = callout_upstream("http://svc:8080", None, Some(100)).unwrap();
        assert_eq!(
            (e.cluster.as_str(), e.authority.as_str(), e.path.as_str()),
            ("svc", "svc:8080", "/")
        );
        let e = callout_upstream("https://a.b/x?y=1", Some("c"), None).unwrap();
        assert_eq!((e.cluster.as_str(), e.path.as_str()), ("c", "/x?y=1"));
        assert!(callout_upstream("https:///x", None, None).is_err());
        assert!(callout_upstream("https://u@h/x", None, None).is_err());
        assert_eq!(
            origin("https://a.b:1/x/y").as_deref(),
            Some("https://a.b:1")
        );
    }

    #[test]
    fn path_patterns() {
        let p = PathPattern::parse("/mcp/*").unwrap();
        assert!(p.matches("/mcp/tools/call"));
        assert!(!p.matches("/mcp"));
        assert!(PathPattern::parse("*").unwrap().matches("/anything"));
        assert!(PathPattern::parse("/mcp").unwrap().matches("/mcp"));
        assert!(!PathPattern::parse("/mcp").unwrap().matches("/mcp/"));
    }
}
