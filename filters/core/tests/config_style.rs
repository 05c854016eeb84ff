//! The one config style (`gw_core::config`): every spec struct refuses
//! unknown keys and names them by path, and a section written empty means
//! the same as the section left out (its defaults are stated once, in the
//! spec's `Default`). One case per filter, at the top and one section down.

use gw_core::audit::config::{AuditConfig, AuditConfigSpec};
use gw_core::config::{load, ConfigError};
use gw_core::identity::config::{IdentityConfig, IdentitySpec};
use gw_core::rate_limit::config::{RateLimitConfig, RateLimitConfigSpec};
use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};

fn audit(yaml: &str) -> Result<AuditConfig, ConfigError> {
    load::<AuditConfigSpec, AuditConfig>(yaml.as_bytes())
}
/// Identity needs one method; the rest of `yaml` is added to it.
fn identity(yaml: &str) -> Result<IdentityConfig, ConfigError> {
    let text = format!("{IDENTITY_METHOD}{yaml}");
    load::<IdentitySpec, IdentityConfig>(text.as_bytes())
}
const IDENTITY_METHOD: &str = "authMethods:\n  - type: apiKey\n    agents:\n      - id: a\n        keySha256: \"0000000000000000000000000000000000000000000000000000000000000000\"\n";
fn rate_limit(yaml: &str) -> Result<RateLimitConfig, ConfigError> {
    load::<RateLimitConfigSpec, RateLimitConfig>(yaml.as_bytes())
}
fn tool_acl(yaml: &str) -> Result<ToolAclConfig, ConfigError> {
    load::<ToolAclSpec, ToolAclConfig>(yaml.as_bytes())
}

/// The loader refuses `yaml` and names `path`, as an unknown field.
fn refused_at<T>(result: Result<T, ConfigError>, path: &str) {
    let err = result.err();
    assert!(err.is_some(), "{path}: loaded");
    if let Some(err) = err {
        assert_eq!(err.path, path, "{err}");
        assert!(err.message.contains("unknown field"), "{err}");
    }
}

#[test]
fn every_filter_names_an_unknown_key() {
    refused_at(audit("maxEventByte: 1\n"), "maxEventByte");
    refused_at(
        audit("logDestination:\n  retry: {maxBackof: 1}\n"),
        "logDestination.retry.maxBackof",
    );
    refused_at(identity("cache: {ttl: 1}\n"), "cache.ttl");
    refused_at(identity("authMethod: []\n"), "authMethod");
    refused_at(rate_limit("localStore: {slot: 1}\n"), "localStore.slot");
    refused_at(
        rate_limit("rateLimitResponse: {jsonRpcError: {cod: 1}}\n"),
        "rateLimitResponse.jsonRpcError.cod",
    );
    refused_at(
        tool_acl("toolsList: {cache: {ttl: 1}}\n"),
        "toolsList.cache.ttl",
    );
    refused_at(
        tool_acl("a2a: {taskIsolation: {ttl: 1}}\n"),
        "a2a.taskIsolation.ttl",
    );
}

#[test]
fn an_empty_section_means_its_defaults() {
    let debug = |c: &dyn std::fmt::Debug| format!("{c:?}");
    assert_eq!(
        debug(&audit("").unwrap()),
        debug(&audit("logDestination: {retry: {}}\neventFormat: {}\ncaptureFields: {}\n").unwrap())
    );
    assert_eq!(
        debug(&identity("").unwrap()),
        debug(&identity("cache: {}\n").unwrap())
    );
    assert_eq!(
        debug(&rate_limit("").unwrap()),
        debug(&rate_limit("rateLimitHeaders: {}\nlocalStore: {}\n").unwrap())
    );
    assert_eq!(
        debug(&tool_acl("").unwrap()),
        debug(
            &tool_acl("toolsList: {cache: {}}\ndeniedResponse: {}\napplyTo: {}\nlegacySse: {}\n")
                .unwrap()
        )
    );
    assert_eq!(
        debug(&tool_acl("a2a: {}\n").unwrap()),
        debug(&tool_acl("a2a: {taskIsolation: {}, deniedResponse: {}}\n").unwrap())
    );
}

/// The defaults the docs promise, read back through the loader.
#[test]
fn documented_defaults_hold() {
    let a = audit("").unwrap();
    assert_eq!(a.max_request_body_bytes, 512 << 10);
    assert_eq!(a.max_event_bytes, 16 << 10);
    assert_eq!(a.destination.batch_size, 50);
    let i = identity("").unwrap();
    assert_eq!(i.max_callouts_in_flight, 32);
}
