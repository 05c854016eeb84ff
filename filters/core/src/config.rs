//! Loading a filter's configuration.
//!
//! The Envoy filter `configuration` is YAML (JSON is accepted too, being
//! YAML). Every config struct uses `deny_unknown_fields`, and errors carry the
//! path of the offending key so a typo is reported as
//! `accessRules[0].allowedTool: unknown field ...` rather than a bare
//! "invalid config". Validation that needs more than types (globs, templates,
//! ranges) happens in `TryFrom<Spec>` conversions at load time, never per
//! request.
//!
//! One style for every spec struct of the four filters (and the A2A ACL):
//!
//! - `#[serde(rename_all = "camelCase", deny_unknown_fields)]` on every
//!   struct (`rename_all = "camelCase"` on enums): keys are written as in the
//!   recipe, and a typo is an error naming the key, never a silent default.
//! - A struct whose every key is optional carries `#[serde(default)]` on the
//!   struct itself and states its defaults once, in its `Default` impl
//!   (derived when every default is the type's own). A section written empty
//!   then means exactly the section left out (`tests/config_style.rs`).
//! - A struct with a required key marks each optional field
//!   `#[serde(default)]`; a default other than the type's own is a
//!   `default_<key>()` function next to the struct.

use serde::de::DeserializeOwned;
use std::fmt;

/// A configuration that cannot be loaded. `path` names the key (dotted, with
/// `[n]` for list items); it is empty when the error is about the whole document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Prefix the path with a parent key, for errors raised while validating
    /// a nested value.
    pub fn within(mut self, parent: &str) -> Self {
        self.path = if self.path.is_empty() {
            parent.to_string()
        } else if self.path.starts_with('[') {
            format!("{parent}{}", self.path)
        } else {
            format!("{parent}.{}", self.path)
        };
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "invalid configuration: {}", self.message)
        } else {
            write!(
                f,
                "invalid configuration at `{}`: {}",
                self.path, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parse a YAML or JSON document into `T`. An empty document means `{}` so
/// that filters whose every key has a default can be loaded without config.
pub fn parse_document<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ConfigError::at("", format!("configuration is not UTF-8: {e}")))?;
    let text = if text.trim().is_empty() { "{}" } else { text };
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // serde_yaml's message repeats the path as "key: ..." prefix; keep its
        // location hint (line/column), which helps with long configs.
        ConfigError::at(
            if path == "." { String::new() } else { path },
            inner.to_string(),
        )
    })
}

/// Parse and then validate into a runtime type that is ready to use.
pub fn load<Spec, Runtime>(bytes: &[u8]) -> Result<Runtime, ConfigError>
where
    Spec: DeserializeOwned,
    Runtime: TryFrom<Spec, Error = ConfigError>,
{
    Runtime::try_from(parse_document::<Spec>(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Rule {
        #[allow(dead_code)]
        agent_pattern: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Doc {
        #[serde(default)]
        access_rules: Vec<Rule>,
    }

    #[test]
    fn yaml_and_json_both_load() {
        let y: Doc = parse_document(b"accessRules:\n  - agentPattern: 'a-*'\n").unwrap();
        assert_eq!(y.access_rules.len(), 1);
        let j: Doc = parse_document(br#"{"accessRules":[{"agentPattern":"a-*"}]}"#).unwrap();
        assert_eq!(j.access_rules.len(), 1);
    }

    #[test]
    fn empty_document_means_defaults() {
        let d: Doc = parse_document(b"  \n").unwrap();
        assert!(d.access_rules.is_empty());
    }

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let err = parse_document::<Doc>(b"accessRules:\n  - agentPatern: x\n").unwrap_err();
        assert_eq!(err.path, "accessRules[0].agentPatern");
        assert!(err.message.contains("unknown field"), "{err}");
        assert!(err.to_string().contains("accessRules[0].agentPatern"));
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let err = parse_document::<Doc>(b"accessRules: 3\n").unwrap_err();
        assert_eq!(err.path, "accessRules");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let err = parse_document::<Doc>(b"accessRules: []\naccessRules: []\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{err}");
    }

    #[test]
    fn within_prefixes_paths() {
        assert_eq!(ConfigError::at("x", "m").within("a").path, "a.x");
        assert_eq!(ConfigError::at("[2]", "m").within("a").path, "a[2]");
        assert_eq!(ConfigError::at("", "m").within("a").path, "a");
    }
}
