//! Every Wasm `configuration` we ship loads through the core's own loaders,
//! in seconds and without Envoy: each filter's section in envoy/**.yaml
//! (the four modules, the one-module `gateway.wasm` sections, the audit
//! sender service); the recipe blocks in examples/recipe have their own
//! test (recipe_configs.rs). A config that would make Envoy refuse the
//! filter fails here first, with its file and the key the loader names.

use gw_core::audit::config::{AuditConfig, AuditConfigSpec};
use gw_core::config::{load, ConfigError};
use gw_core::gateway::{self, Stage};
use gw_core::identity::config::{IdentityConfig, IdentitySpec};
use gw_core::rate_limit::config::{RateLimitConfig, RateLimitConfigSpec};
use gw_core::tool_acl::config::{ToolAclConfig, ToolAclSpec};
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn load_stage(stage: Stage, bytes: &[u8]) -> Result<(), ConfigError> {
    match stage {
        Stage::Audit => load::<AuditConfigSpec, AuditConfig>(bytes).map(drop),
        Stage::Identity => load::<IdentitySpec, IdentityConfig>(bytes).map(drop),
        Stage::ToolAcl => load::<ToolAclSpec, ToolAclConfig>(bytes).map(drop),
        Stage::RateLimit => load::<RateLimitConfigSpec, RateLimitConfig>(bytes).map(drop),
    }
}

/// Load one Wasm plugin's configuration by its `root_id`.
fn load_plugin(root_id: &str, bytes: &[u8]) -> Result<(), String> {
    let stage = match root_id {
        "gw_audit" => Stage::Audit,
        "gw_identity" => Stage::Identity,
        "gw_tool_acl" => Stage::ToolAcl,
        "gw_rate_limit" => Stage::RateLimit,
        "gw_gateway" => {
            let sections = gateway::sections(bytes).map_err(|e| e.to_string())?;
            if sections.is_empty() {
                return Err("no section".into());
            }
            for (stage, section) in sections {
                load_stage(stage, &section).map_err(|e| format!("{}: {e}", stage.key()))?;
            }
            return Ok(());
        }
        other => return Err(format!("unknown root_id {other}")),
    };
    load_stage(stage, bytes).map_err(|e| e.to_string())
}

/// Every Wasm plugin config (HTTP filter or bootstrap service) in a YAML
/// document: (root_id, configuration text).
fn plugins(node: &Value, out: &mut Vec<(String, String)>) {
    match node {
        Value::Mapping(map) => {
            let is_wasm = map.get("@type").and_then(Value::as_str).is_some_and(|t| {
                t.ends_with(".wasm.v3.Wasm") || t.ends_with(".wasm.v3.WasmService")
            });
            if is_wasm {
                let config = map.get("config");
                let root_id = config
                    .and_then(|c| c.get("root_id"))
                    .and_then(Value::as_str);
                let text = config
                    .and_then(|c| c.get("configuration"))
                    .and_then(|c| c.get("value"))
                    .and_then(Value::as_str);
                if let (Some(root_id), Some(text)) = (root_id, text) {
                    out.push((root_id.to_string(), text.to_string()));
                }
            }
            for value in map.values() {
                plugins(value, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| plugins(v, out)),
        _ => {}
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "node_modules") {
            continue;
        }
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn every_shipped_wasm_configuration_loads() {
    let mut files = Vec::new();
    yaml_files(&Path::new(ROOT).join("envoy"), &mut files);
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    let mut failures = Vec::new();
    let mut loaded = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
        let mut found = Vec::new();
        plugins(&doc, &mut found);
        // every shipped gateway config has the audit sender and the filters
        assert!(
            found.len() >= 2,
            "{}: {} wasm plugins",
            file.display(),
            found.len()
        );
        for (root_id, config) in found {
            match load_plugin(&root_id, config.as_bytes()) {
                Ok(()) => loaded += 1,
                Err(e) => failures.push(format!("{} ({root_id}): {e}", file.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(loaded >= 20, "only {loaded} configurations found");
}

#[test]
fn a_broken_section_is_caught_with_its_key() {
    let err = load_plugin(
        "gw_gateway",
        b"rateLimit:\n  limits:\n    - maxRequests: 0\n",
    )
    .unwrap_err();
    assert!(
        err.contains("rateLimit") && err.contains("limits[0]"),
        "{err}"
    );
}
