//! Pure policy logic of the MCP/A2A gateway.
//!
//! Nothing here imports `proxy_wasm`: the filter crates adapt host calls to
//! these types, and everything in this crate is tested with `cargo test` on
//! the host. A newcomer looking for a rule finds it in the folder of the
//! filter that applies it:
//!
//! - [`protocol`]: what the gateway understands of MCP and A2A on the wire
//!   (strict JSON-RPC, method families, request facts, SSE)
//! - [`identity`]: agent authentication (API keys, OAuth2 introspection)
//! - [`tool_acl`]: per-agent tool access, `tools/list` filtering and caching
//! - [`rate_limit`]: exact sliding windows per verified agent and operation
//! - [`audit`]: audit events, response captures, batched delivery
//! - [`a2a_acl`]: A2A access rules, task isolation and version pinning (the
//!   tool-acl filter applies them)
//!
//! and, shared by all of them:
//!
//! - [`config`]: loading a filter's YAML/JSON configuration, errors with key paths
//! - [`template`]: the recipe's `#[vars.x]` / `#[payload.a.b]` / `#[attributes.headers['h']]` expressions
//! - [`json_path`]: the `$.a.b[0]['c']` subset used by captures and templates
//! - [`filter_state`]: names of the filter-state keys the filters share
//! - [`reply`]: the local reply every filter's refusals are built as
//! - [`shared_doc`]: how documents kept in Envoy's shared data are encoded
//! - [`webdis`]: commands for the Redis stores (webdis, over HTTP callouts)
//! - [`upstream`]: where an HTTP callout goes (identity, audit, Redis), and the one URL parser

pub mod a2a_acl;
pub mod audit;
pub mod config;
pub mod filter_state;
pub mod gateway;
pub mod glob;
pub mod identity;
pub mod json_path;
pub mod protocol;
pub mod rate_limit;
pub mod reply;
pub mod shared_doc;
pub mod template;
pub mod tool_acl;
pub mod upstream;
pub mod webdis;
