//! Per-agent tool access: the recipe's "MCP Tool Access Control Policy".
//!
//! - [`authorize`]: judging every governed message of a body (the whole decision)
//! - [`rules`]: per-agent tool/resource/prompt rules (globs, first match, deny beats allow)
//! - [`config`]: the filter's configuration (the recipe's `accessRules` block)
//! - [`denial`]: the denied response, HTTP (recipe) or JSON-RPC error
//! - [`request_guard`]: refusing requests the ACL cannot judge (encodings, content types, paths, Mcp-* headers)
//! - [`list_plan`]: which list answers are filtered, cache eligibility, how an answer is read
//! - [`tools_list`]: per-agent `tools/list` filtering and the unfiltered-list cache entries
//! - [`sse_rewrite`]: rewriting SSE events as they pass
//! - [`versions`]: MCP protocol version pinning
//! - [`legacy_sse`]: denials on the 2024-11-05 HTTP+SSE transport

pub mod authorize;
pub mod config;
pub mod denial;
pub mod legacy_sse;
pub mod list_plan;
pub mod request_guard;
pub mod rules;
pub mod sse_rewrite;
pub mod tools_list;
pub mod versions;
