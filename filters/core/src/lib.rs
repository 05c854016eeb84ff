//! Pure policy logic of the MCP/A2A gateway.
//!
//! Nothing here imports `proxy_wasm`: the filter crates adapt host calls to
//! these types, and everything in this crate is tested with `cargo test` on
//! the host. A newcomer looking for a rule should find it in the module
//! named after it:
//!
//! - [`config`]: loading a filter's YAML/JSON configuration, errors with key paths
//! - [`template`]: the recipe's `#[vars.x]` / `#[payload.a.b]` / `#[attributes.headers['h']]` expressions
//! - [`json_path`]: the `$.a.b[0]['c']` subset used by captures and templates
//! - [`jsonrpc`]: strict JSON-RPC body inspection (batches, duplicate keys)
//! - [`operation`]: protocol method families (MCP and every A2A version)
//! - [`request_facts`]: what the first body parser hands on to later filters
//! - [`sse`]: incremental Server-Sent Events parser
//! - [`filter_state`]: names of the filter-state keys the filters share
//! - [`sliding_window`]: the exact sliding-window algorithm and the burst definition
//! - [`window_table`]: rate-limit windows packed into bounded shared-data slots
//! - [`rate_limit_config`]: the recipe's `limits` / `rateLimitResponse` block
//! - [`rate_limit_plan`]: which windows (verified agent × operation) a request counts in
//! - [`rate_limit_headers`]: IETF `RateLimit-Policy` / `RateLimit` fields
//! - [`rate_limit_response`]: the 429 / JSON-RPC error reply of a limited request
//! - [`rate_limit_redis`]: multi-replica windows in Redis (Lua script via webdis)
//! - [`tool_acl`]: per-agent tool/resource/prompt rules (globs, first match, deny beats allow)
//! - [`tool_acl_config`]: the tool-acl filter's configuration (the recipe's `accessRules` block)
//! - [`denial`]: the denied response, HTTP (recipe) or JSON-RPC error
//! - [`request_guard`]: refusing requests the ACL cannot judge (encodings, content types, paths, Mcp-* headers)
//! - [`tools_list`]: per-agent `tools/list` filtering and the unfiltered-list cache entries
//! - [`sse_rewrite`]: rewriting SSE events as they pass
//! - [`audit_config`]: the audit filter's recipe block (destination, captures, event format)
//! - [`audit_event`]: one audit event per request/response pair, request captures
//! - [`response_capture`]: response captures from JSON and SSE bodies, by JSON-RPC id
//! - [`audit_batch`]: the audit sender's batching / retry / backoff state machine
//! - [`otlp`]: audit events as OTLP/HTTP JSON logs
//! - [`identity_config`]: the identity filter's configuration (recipe's agent authentication block)
//! - [`credentials`]: which credential a request carries, precedence rules
//! - [`api_key`]: static agents (SHA-256 keys) and the API key validation contract
//! - [`introspection`]: RFC 7662 token introspection requests and answers
//! - [`callout`]: identity callouts and what their answers mean (fail closed)
//! - [`identity_cache`]: bounded shared-data cache of credential checks, keyed by hash
//! - [`protected_resource`]: RFC 9728 metadata and `WWW-Authenticate` targets
//! - [`auth_denial`]: 401/403/503 answers of the identity filter
//! - [`identity_policy`]: from request headers to an identity verdict

pub mod api_key;
pub mod audit_batch;
pub mod audit_config;
pub mod audit_event;
pub mod auth_denial;
pub mod callout;
pub mod config;
pub mod credentials;
pub mod denial;
pub mod filter_state;
pub mod identity_cache;
pub mod identity_config;
pub mod identity_policy;
pub mod introspection;
pub mod json_path;
pub mod jsonrpc;
pub mod operation;
pub mod otlp;
pub mod protected_resource;
pub mod rate_limit_config;
pub mod rate_limit_headers;
pub mod rate_limit_plan;
pub mod rate_limit_redis;
pub mod rate_limit_response;
pub mod request_facts;
pub mod request_guard;
pub mod response_capture;
pub mod sliding_window;
pub mod sse;
pub mod sse_rewrite;
pub mod template;
pub mod tool_acl;
pub mod tool_acl_config;
pub mod tools_list;
pub mod window_table;
