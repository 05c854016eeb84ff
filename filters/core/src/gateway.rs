//! Configuration of the one-module chain (`gateway.wasm`): one section per
//! filter, each exactly what that filter's own module takes, so a config
//! moves between the four-module and the one-module deployment unchanged.
//!
//! ```yaml
//! audit:     { logDestination: ..., captureFields: ... }   # optional
//! identity:  { authMethods: ... }                           # optional
//! toolAcl:   { accessRules: ... }                           # optional
//! rateLimit: { limits: ... }                                # optional
//! ```
//!
//! The sections run in the chain's fixed order (audit, identity, tool ACL,
//! rate limit) whatever their order in the document.

use crate::config::{parse_document, ConfigError};

/// One filter of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Audit,
    Identity,
    ToolAcl,
    RateLimit,
}

impl Stage {
    /// The order requests go through (responses go the other way).
    pub const CHAIN_ORDER: [Stage; 4] = [
        Stage::Audit,
        Stage::Identity,
        Stage::ToolAcl,
        Stage::RateLimit,
    ];

    /// The section's key in the configuration.
    pub fn key(self) -> &'static str {
        match self {
            Stage::Audit => "audit",
            Stage::Identity => "identity",
            Stage::ToolAcl => "toolAcl",
            Stage::RateLimit => "rateLimit",
        }
    }
}

/// The configured stages in chain order, each with its section as a JSON
/// document for that filter's own loader. A section that is present but
/// empty (`toolAcl: {}` or `toolAcl:`) runs the filter with its defaults.
pub fn sections(bytes: &[u8]) -> Result<Vec<(Stage, Vec<u8>)>, ConfigError> {
    let doc: serde_yaml_ng::Mapping = parse_document(bytes)?;
    let mut found: Vec<(Stage, &serde_yaml_ng::Value)> = Vec::new();
    for (key, value) in &doc {
        let name = key.as_str().unwrap_or_default();
        let Some(stage) = Stage::CHAIN_ORDER.into_iter().find(|s| s.key() == name) else {
            return Err(ConfigError::at(
                name,
                "unknown section (expected audit, identity, toolAcl or rateLimit)",
            ));
        };
        found.push((stage, value));
    }
    let mut out = Vec::new();
    for stage in Stage::CHAIN_ORDER {
        let Some((_, value)) = found.iter().find(|(s, _)| *s == stage) else {
            continue;
        };
        let json = if value.is_null() {
            b"{}".to_vec()
        } else {
            serde_json::to_vec(value).map_err(|e| ConfigError::at(stage.key(), e.to_string()))?
        };
        out.push((stage, json));
    }
    if out.is_empty() {
        return Err(ConfigError::at(
            "",
            "no filter configured: give at least one of audit, identity, toolAcl, rateLimit",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_come_in_chain_order_as_json() {
        let doc = b"rateLimit:\n  limits: []\nidentity:\n  authMethods: []\naudit:\n";
        let got = sections(doc).unwrap();
        let stages: Vec<Stage> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(stages, [Stage::Audit, Stage::Identity, Stage::RateLimit]);
        assert_eq!(got[0].1, b"{}");
        assert_eq!(got[1].1, br#"{"authMethods":[]}"#);
    }

    #[test]
    fn unknown_section_and_empty_config_are_refused() {
        let err = sections(b"toolAcls: {}\n").unwrap_err();
        assert!(err.to_string().contains("toolAcls"), "{err}");
        let err = sections(b"").unwrap_err();
        assert!(err.to_string().contains("no filter configured"), "{err}");
    }
}
