//! The recipe's policy blocks (examples/recipe/*.yaml, copied verbatim from
//! the user's starting point) must load as written, whatever else changes.

use gw_core::audit::config::{AuditConfig, AuditConfigSpec};
use gw_core::config::load;
use gw_core::identity::config::{IdentityConfig, IdentitySpec};
use gw_core::rate_limit::config::{RateLimitConfig, RateLimitConfigSpec};
use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};

const AUTHENTICATION: &str = include_str!("../../../examples/recipe/agent-authentication.yaml");
const TOOL_ACL: &str = include_str!("../../../examples/recipe/mcp-tool-acl.yaml");
const RATE_LIMIT: &str = include_str!("../../../examples/recipe/agent-rate-limit.yaml");
const AUDIT_LOG: &str = include_str!("../../../examples/recipe/agent-audit-log.yaml");

#[test]
fn agent_authentication_loads_as_written() {
    load::<IdentitySpec, IdentityConfig>(AUTHENTICATION.as_bytes()).unwrap();
}

#[test]
fn tool_access_control_loads_as_written() {
    load::<ToolAclSpec, ToolAclConfig>(TOOL_ACL.as_bytes()).unwrap();
}

#[test]
fn agent_rate_limit_loads_as_written() {
    let config = load::<RateLimitConfigSpec, RateLimitConfig>(RATE_LIMIT.as_bytes()).unwrap();
    assert_eq!(config.limits.len(), 3);
}

#[test]
fn agent_audit_log_loads_as_written() {
    load::<AuditConfigSpec, AuditConfig>(AUDIT_LOG.as_bytes()).unwrap();
}

#[test]
fn every_recipe_file_is_covered_here() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/recipe");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "agent-audit-log.yaml",
            "agent-authentication.yaml",
            "agent-rate-limit.yaml",
            "mcp-tool-acl.yaml"
        ]
    );
}
