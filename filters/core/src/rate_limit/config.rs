//! Configuration of the rate-limit filter: the recipe's `limits` /
//! `rateLimitResponse` block, loaded as written, plus optional keys with
//! defaults (IETF headers, JSON-RPC error form, store geometry, Redis mode).
//!
//! ```yaml
//! limits:
//!   - path: /mcp/tools/call                 # an operation family (see operation.rs)
//!     keySelector: "#[attributes.headers['x-verified-agent-id']]"
//!     maxRequests: 60
//!     windowSeconds: 60
//!     burstAllowance: 10
//! rateLimitResponse:
//!   statusCode: 429
//!   body: '{"error":"agent_rate_limited","agentId":"#[vars.agentId]"}'
//!   headers: { Retry-After: "#[vars.retryAfter]" }
//! ```
//!
//! The key selector is resolved from the *verified* identity only: the
//! recipe's `#[attributes.headers['x-verified-agent-id']]` reads the agent id
//! the identity filter published as filter state, never the request header a
//! client could have sent, and any other header is refused at load time.

use crate::config::ConfigError;
use crate::protocol::http::is_header_name;
use crate::protocol::operation::Operation;
use crate::rate_limit::sliding_window::WindowPolicy;
use crate::template::{Escape, Scope, Template};
use crate::upstream::Upstream;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};

/// Variables a `keySelector` may use.
pub const KEY_VARS: &[&str] = &[
    "agentId",
    "agentName",
    "agentOwner",
    "toolName",
    "operation",
];
/// The only headers a `keySelector` may name: they are read from the verified
/// identity (filter state), not from the request.
pub use crate::protocol::identity::VERIFIED_HEADERS;
/// Variables the response body, headers and JSON-RPC message may use.
pub const RESPONSE_VARS: &[&str] = &[
    "agentId",
    "retryAfter",
    "toolName",
    "operation",
    "limitName",
    "maxRequests",
    "windowSeconds",
    "burstAllowance",
];

/// Longest window accepted: log offsets are u32 milliseconds and a burst
/// keeps 2W of history.
pub const MAX_WINDOW_SECONDS: u32 = 7 * 24 * 3600;
/// Largest quota accepted (counts are u32, and 2 × (M + B) must fit).
/// Both stores keep per-key state bounded whatever the quota: the local
/// store's slots and the Redis store's hashes hold the same buckets
/// (`sliding_window`), at most 129 per key.
pub const MAX_REQUESTS: u32 = 1_000_000_000;

const DEFAULT_BODY: &str = "{\n  \"error\": \"agent_rate_limited\",\n  \"agentId\": \"#[vars.agentId]\",\n  \"retryAfterSeconds\": \"#[vars.retryAfter]\"\n}\n";
const DEFAULT_JSONRPC_MESSAGE: &str = "Rate limit exceeded: retry after #[vars.retryAfter] s";

pub use crate::protocol::identity::IdentityField;

// ------------------------------------------------------------------ spec

/// Every key is optional (no `limits`: nothing is limited).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitConfigSpec {
    pub limits: Vec<LimitSpec>,
    pub rate_limit_response: ResponseSpec,
    pub rate_limit_headers: HeadersSpec,
    pub on_missing_identity: MissingIdentity,
    pub local_store: LocalStoreSpec,
    pub redis_store: Option<RedisStoreSpec>,
    /// Hold the request headers until the body has been counted, so that a
    /// limited request never reaches the upstream, not even its headers.
    /// Needs `allow_on_headers_stop_iteration: true` on the Wasm filter in
    /// Envoy's config (without it, held requests would hang): off by default.
    pub hold_request_headers: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitSpec {
    /// Policy name (RateLimit headers, state keys). Default: the operation's
    /// canonical name (`tools/call`).
    #[serde(default)]
    pub name: Option<String>,
    /// The recipe's path (`/mcp/tools/call`) or a method name (`message/send`).
    pub path: String,
    #[serde(default)]
    pub key_selector: Option<String>,
    pub max_requests: u32,
    pub window_seconds: u32,
    #[serde(default)]
    pub burst_allowance: u32,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseSpec {
    pub status_code: u32,
    pub body: String,
    /// Absent section: `Retry-After` (the `Default` below). A section
    /// written without `headers` sends none: the operator chose the reply.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub json_rpc_error: Option<JsonRpcErrorSpec>,
}

impl Default for ResponseSpec {
    fn default() -> Self {
        Self {
            status_code: 429,
            body: DEFAULT_BODY.to_string(),
            headers: BTreeMap::from([("Retry-After".into(), "#[vars.retryAfter]".into())]),
            json_rpc_error: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct JsonRpcErrorSpec {
    pub code: i64,
    pub message: String,
    /// HTTP status of the JSON-RPC error reply. 200 keeps MCP client sessions
    /// alive (the official clients treat an HTTP 4xx as a transport failure).
    pub status_code: u32,
}

impl Default for JsonRpcErrorSpec {
    fn default() -> Self {
        Self {
            code: crate::protocol::jsonrpc::codes::RATE_LIMITED,
            message: DEFAULT_JSONRPC_MESSAGE.to_string(),
            status_code: 200,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct HeadersSpec {
    /// Send `RateLimit-Policy` and `RateLimit` on allowed and limited responses.
    pub enabled: bool,
}

impl Default for HeadersSpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// What to do with a request that carries no verified identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingIdentity {
    /// Count it in one shared window keyed by agent id `anonymous`.
    #[default]
    Anonymous,
    /// Refuse it (401) when a limit applies.
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalStoreSpec {
    pub slots: u32,
    pub keys_per_slot: u32,
}

impl Default for LocalStoreSpec {
    fn default() -> Self {
        Self {
            slots: 16_384,
            keys_per_slot: 32,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisStoreSpec {
    /// Envoy cluster of the webdis (HTTP front of Redis) endpoints.
    pub cluster: String,
    /// `:authority` of the calls (default: the cluster name).
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default = "default_redis_timeout")]
    pub timeout_ms: u32,
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
}

/// What to do when the Redis store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnUnavailable {
    /// Refuse the request with 503 (fail closed).
    #[default]
    Deny,
    /// Decide with this replica's local windows (each replica then admits up
    /// to the full limit on its own).
    Local,
}

fn default_redis_timeout() -> u32 {
    250
}
fn default_key_prefix() -> String {
    "gw:rl:".to_string()
}

// ------------------------------------------------------------------ runtime

#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub limits: Vec<Limit>,
    pub response: LimitResponse,
    pub headers_enabled: bool,
    pub on_missing_identity: MissingIdentity,
    pub local: LocalStore,
    pub redis: Option<RedisStore>,
    pub hold_request_headers: bool,
}

#[derive(Debug, Clone)]
pub struct Limit {
    pub name: String,
    pub operation: Operation,
    pub key_selector: Template,
    pub max_requests: u32,
    pub window_seconds: u32,
    pub burst_allowance: u32,
    pub policy: WindowPolicy,
}

#[derive(Debug, Clone)]
pub struct LimitResponse {
    pub status: u32,
    pub body: Template,
    /// Content type of the body: JSON when the template renders to JSON.
    pub content_type: &'static str,
    pub headers: Vec<(String, Template)>,
    pub json_rpc: Option<JsonRpcErrorForm>,
}

#[derive(Debug, Clone)]
pub struct JsonRpcErrorForm {
    pub code: i64,
    pub message: Template,
    pub status: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalStore {
    pub slots: u32,
    pub keys_per_slot: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStore {
    /// webdis: the cluster, `:authority` (default: the cluster name), path
    /// `/` and timeout of every call.
    pub upstream: Upstream,
    pub key_prefix: String,
    pub on_unavailable: OnUnavailable,
}

const KEY_SCOPE: Scope<'static> = Scope {
    vars: KEY_VARS,
    payload: false,
    headers: true,
};
const RESPONSE_SCOPE: Scope<'static> = Scope {
    vars: RESPONSE_VARS,
    payload: false,
    headers: false,
};

impl TryFrom<RateLimitConfigSpec> for RateLimitConfig {
    type Error = ConfigError;

    fn try_from(spec: RateLimitConfigSpec) -> Result<Self, ConfigError> {
        let mut names = HashSet::new();
        let limits = spec
            .limits
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let limit = Limit::try_from(l).map_err(|e| e.within(&format!("limits[{i}]")))?;
                if !names.insert(limit.name.clone()) {
                    return Err(ConfigError::at(
                        format!("limits[{i}].name"),
                        format!(
                            "two limits are named `{}`: give each limit on the same operation its own `name`",
                            limit.name
                        ),
                    ));
                }
                Ok(limit)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let response = LimitResponse::try_from(spec.rate_limit_response)
            .map_err(|e| e.within("rateLimitResponse"))?;
        let local = spec.local_store;
        if local.slots == 0 || local.slots > 1 << 20 {
            return Err(ConfigError::at(
                "localStore.slots",
                "must be between 1 and 1048576",
            ));
        }
        if local.keys_per_slot == 0 || local.keys_per_slot > 4096 {
            return Err(ConfigError::at(
                "localStore.keysPerSlot",
                "must be between 1 and 4096",
            ));
        }
        let redis = spec
            .redis_store
            .map(|r| {
                let upstream = Upstream::new(
                    r.cluster.clone(),
                    r.authority.clone(),
                    "/".into(),
                    u64::from(r.timeout_ms),
                )
                .map_err(|_| ConfigError::at("redisStore.cluster", "must name an Envoy cluster"))?;
                if r.timeout_ms == 0 {
                    return Err(ConfigError::at(
                        "redisStore.timeoutMs",
                        "must be at least 1",
                    ));
                }
                if r.key_prefix.contains(['/', '\r', '\n']) {
                    return Err(ConfigError::at(
                        "redisStore.keyPrefix",
                        "must not contain `/` or line breaks",
                    ));
                }
                Ok(RedisStore {
                    upstream,
                    key_prefix: r.key_prefix,
                    on_unavailable: r.on_unavailable,
                })
            })
            .transpose()?;
        Ok(Self {
            limits,
            response,
            headers_enabled: spec.rate_limit_headers.enabled,
            on_missing_identity: spec.on_missing_identity,
            local: LocalStore {
                slots: local.slots,
                keys_per_slot: local.keys_per_slot,
            },
            redis,
            hold_request_headers: spec.hold_request_headers,
        })
    }
}

impl TryFrom<LimitSpec> for Limit {
    type Error = ConfigError;

    fn try_from(spec: LimitSpec) -> Result<Self, ConfigError> {
        let operation = Operation::from_recipe_path(&spec.path).ok_or_else(|| {
            ConfigError::at(
                "path",
                format!(
                    "`{}` names no protocol operation; use a recipe path such as /mcp/tools/call, /a2a/tasks/send, /a2a/tasks/sendSubscribe or a method name",
                    spec.path
                ),
            )
        })?;
        let name = spec
            .name
            .unwrap_or_else(|| operation.canonical_name().to_string());
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::at(
                "name",
                "must be non-empty printable ASCII without `\"` or `\\` (it is sent in RateLimit headers)",
            ));
        }
        let selector = spec
            .key_selector
            .unwrap_or_else(|| "#[vars.agentId]".to_string());
        let key_selector =
            Template::parse(&selector, KEY_SCOPE).map_err(|e| ConfigError::at("keySelector", e))?;
        for expr in key_selector.expressions() {
            if let crate::template::Expr::Header(h) = expr {
                if !VERIFIED_HEADERS.iter().any(|(name, _)| name == h) {
                    return Err(ConfigError::at(
                        "keySelector",
                        format!(
                            "header `{h}` is sent by the client and could be forged; key limits by the verified identity (#[vars.agentId], #[attributes.headers['x-verified-agent-id']]) and #[vars.toolName]"
                        ),
                    ));
                }
            }
        }
        if key_selector.is_literal() {
            return Err(ConfigError::at(
                "keySelector",
                "has no expression: every agent would share one window; use #[vars.agentId]",
            ));
        }
        if spec.max_requests == 0 || spec.max_requests > MAX_REQUESTS {
            return Err(ConfigError::at(
                "maxRequests",
                format!("must be between 1 and {MAX_REQUESTS}"),
            ));
        }
        if spec.window_seconds == 0 || spec.window_seconds > MAX_WINDOW_SECONDS {
            return Err(ConfigError::at(
                "windowSeconds",
                format!("must be between 1 and {MAX_WINDOW_SECONDS} (7 days)"),
            ));
        }
        if spec.burst_allowance > MAX_REQUESTS {
            return Err(ConfigError::at(
                "burstAllowance",
                format!("must be at most {MAX_REQUESTS}"),
            ));
        }
        Ok(Self {
            name,
            operation,
            key_selector,
            max_requests: spec.max_requests,
            window_seconds: spec.window_seconds,
            burst_allowance: spec.burst_allowance,
            policy: WindowPolicy::new(spec.max_requests, spec.window_seconds, spec.burst_allowance),
        })
    }
}

struct Samples;
impl crate::template::Bindings for Samples {
    fn var(&self, name: &str, _: &crate::json_path::JsonPath) -> Option<String> {
        Some(match name {
            "retryAfter" | "maxRequests" | "windowSeconds" | "burstAllowance" => "1".into(),
            _ => "x".into(),
        })
    }
}

impl TryFrom<ResponseSpec> for LimitResponse {
    type Error = ConfigError;

    fn try_from(spec: ResponseSpec) -> Result<Self, ConfigError> {
        if !(200..=599).contains(&spec.status_code) {
            return Err(ConfigError::at(
                "statusCode",
                "must be an HTTP status (200-599)",
            ));
        }
        let body =
            Template::parse(&spec.body, RESPONSE_SCOPE).map_err(|e| ConfigError::at("body", e))?;
        let rendered = body.render(&Samples, Escape::JsonString);
        let content_type = if serde_json::from_str::<serde_json::Value>(&rendered).is_ok() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut headers = Vec::new();
        for (name, value) in spec.headers {
            if !is_header_name(&name, false) {
                return Err(ConfigError::at(
                    format!("headers.{name}"),
                    "is not a valid header name",
                ));
            }
            let t = Template::parse(&value, RESPONSE_SCOPE)
                .map_err(|e| ConfigError::at(format!("headers.{name}"), e))?;
            headers.push((name.to_ascii_lowercase(), t));
        }
        let json_rpc = spec
            .json_rpc_error
            .map(|j| {
                if !(200..=599).contains(&j.status_code) {
                    return Err(ConfigError::at(
                        "jsonRpcError.statusCode",
                        "must be an HTTP status (200-599)",
                    ));
                }
                Ok(JsonRpcErrorForm {
                    code: j.code,
                    message: Template::parse(&j.message, RESPONSE_SCOPE)
                        .map_err(|e| ConfigError::at("jsonRpcError.message", e))?,
                    status: j.status_code,
                })
            })
            .transpose()?;
        Ok(Self {
            status: spec.status_code,
            body,
            content_type,
            headers,
            json_rpc,
        })
    }
}

impl RateLimitConfig {
    pub fn load(bytes: &[u8]) -> Result<Self, ConfigError> {
        crate::config::load::<RateLimitConfigSpec, Self>(bytes)
    }

    /// Does any limit count this operation?
    pub fn limits_operation(&self, op: Operation) -> bool {
        self.limits.iter().any(|l| l.operation == op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const RECIPE: &str = include_str!("../../../../examples/recipe/agent-rate-limit.yaml");

    #[test]
    fn recipe_block_loads_as_written() {
        let c = RateLimitConfig::load(RECIPE.as_bytes()).unwrap();
        assert_eq!(c.limits.len(), 3);
        let ops: Vec<_> = c.limits.iter().map(|l| l.operation).collect();
        assert_eq!(
            ops,
            [
                Operation::McpToolsCall,
                Operation::A2aSend,
                Operation::A2aStream
            ]
        );
        assert_eq!(c.limits[0].name, "tools/call");
        assert_eq!(c.limits[0].policy, WindowPolicy::new(60, 60, 10));
        assert_eq!(c.limits[2].policy.burst, 0);
        assert_eq!(c.response.status, 429);
        assert_eq!(c.response.content_type, "application/json");
        assert_eq!(c.response.headers.len(), 1);
        assert_eq!(c.response.headers[0].0, "retry-after");
        assert!(c.headers_enabled);
        assert_eq!(c.on_missing_identity, MissingIdentity::Anonymous);
        assert_eq!(
            c.local,
            LocalStore {
                slots: 16_384,
                keys_per_slot: 32
            }
        );
        assert!(c.redis.is_none());
        assert!(c.limits_operation(Operation::A2aSend));
        assert!(!c.limits_operation(Operation::McpToolsList));
    }

    #[test]
    fn empty_config_loads_with_no_limits() {
        let c = RateLimitConfig::load(b"").unwrap();
        assert!(c.limits.is_empty());
        assert_eq!(c.response.status, 429);
    }

    #[test]
    fn client_headers_cannot_key_a_limit() {
        let err = RateLimitConfig::load(
            b"limits:\n  - path: /mcp/tools/call\n    keySelector: \"#[attributes.headers['x-agent-id']]\"\n    maxRequests: 1\n    windowSeconds: 1\n",
        )
        .unwrap_err();
        assert_eq!(err.path, "limits[0].keySelector");
        assert!(err.message.contains("forged"), "{err}");
        let err = RateLimitConfig::load(
            b"limits:\n  - path: /mcp/tools/call\n    keySelector: all\n    maxRequests: 1\n    windowSeconds: 1\n",
        )
        .unwrap_err();
        assert!(err.message.contains("share one window"), "{err}");
    }

    #[test]
    fn per_tool_keys_and_explicit_names() {
        let c = RateLimitConfig::load(
            br##"
limits:
  - path: /mcp/tools/call
    maxRequests: 60
    windowSeconds: 60
  - name: per-tool
    path: tools/call
    keySelector: "#[vars.agentId]/#[vars.toolName]"
    maxRequests: 5
    windowSeconds: 60
"##,
        )
        .unwrap();
        assert_eq!(c.limits[1].name, "per-tool");
        let err = RateLimitConfig::load(
            b"limits:\n  - {path: /mcp/tools/call, maxRequests: 1, windowSeconds: 1}\n  - {path: tools/call, maxRequests: 2, windowSeconds: 1}\n",
        )
        .unwrap_err();
        assert_eq!(err.path, "limits[1].name");
    }

    #[test]
    fn bad_values_are_named_with_their_path() {
        for (yaml, path) in [
            ("limits:\n  - {path: /mcp/tools/cal, maxRequests: 1, windowSeconds: 1}\n", "limits[0].path"),
            ("limits:\n  - {path: /mcp/tools/call, maxRequests: 0, windowSeconds: 1}\n", "limits[0].maxRequests"),
            ("limits:\n  - {path: /mcp/tools/call, maxRequests: 1, windowSeconds: 0}\n", "limits[0].windowSeconds"),
            ("limits:\n  - {path: /mcp/tools/call, maxRequests: 1, windowSeconds: 1, burst: 3}\n", "limits[0].burst"),
            ("limits:\n  - {path: /mcp/tools/call, maxRequests: 1, windowSeconds: 1, keySelector: '#[vars.agentID]'}\n", "limits[0].keySelector"),
            ("rateLimitResponse: {body: '#[vars.nope]'}\n", "rateLimitResponse.body"),
            ("rateLimitResponse: {statusCode: 99}\n", "rateLimitResponse.statusCode"),
            ("rateLimitResponse: {headers: {'Bad Name': x}}\n", "rateLimitResponse.headers.Bad Name"),
            ("localStore: {slots: 0}\n", "localStore.slots"),
            ("redisStore: {cluster: ''}\n", "redisStore.cluster"),
            ("redisStore: {cluster: r, onUnavailable: open}\n", "redisStore.onUnavailable"),
            ("limitz: []\n", "limitz"),
        ] {
            let err = RateLimitConfig::load(yaml.as_bytes()).unwrap_err();
            assert_eq!(err.path, path, "{yaml}: {err}");
        }
    }

    #[test]
    fn optional_blocks_load() {
        let c = RateLimitConfig::load(
            br##"
rateLimitResponse:
  body: "slow down"
  jsonRpcError: {code: -32000}
rateLimitHeaders: {enabled: false}
onMissingIdentity: deny
localStore: {slots: 8, keysPerSlot: 2}
redisStore: {cluster: gw_rate_limit_redis, onUnavailable: local}
"##,
        )
        .unwrap();
        assert_eq!(c.response.content_type, "text/plain; charset=utf-8");
        let j = c.response.json_rpc.unwrap();
        assert_eq!((j.code, j.status), (-32000, 200));
        assert!(!c.headers_enabled);
        assert_eq!(c.on_missing_identity, MissingIdentity::Deny);
        let r = c.redis.unwrap();
        assert_eq!(r.upstream.authority, "gw_rate_limit_redis");
        assert_eq!(r.on_unavailable, OnUnavailable::Local);
        assert_eq!(r.upstream.timeout_ms, 250);
    }

    #[test]
    fn redis_store_takes_any_quota() {
        // Redis keeps bucket counters (at most 129 per key), not one entry
        // per admission: no cap below MAX_REQUESTS.
        let c = RateLimitConfig::load(
            b"limits:\n  - {path: /mcp/tools/call, maxRequests: 1000000000, windowSeconds: 60, burstAllowance: 1000000}\nredisStore: {cluster: r}\n",
        )
        .unwrap();
        assert!(c.redis.is_some());
        assert_eq!(c.limits[0].policy.max_requests, 1_000_000_000);
        assert!(c.limits[0].policy.max_buckets() <= 129);
    }
}
