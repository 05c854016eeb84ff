//! The JSONPath subset the recipe uses: `$`, `.key`, `['key']`, `["key"]`
//! and `[n]`. Anything else (wildcards, filters, recursive descent) is
//! rejected at load time, so a capture can never cost more than a few map
//! lookups per request.

use serde_json::Value;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    pub fn from_steps(steps: Vec<Step>) -> Self {
        Self { steps }
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Parse `$.params.message.parts[0].kind`. The leading `$` is required.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| format!("JSONPath `{text}` must start with `$`"))?;
        Self::parse_steps(rest, text).map(Self::from_steps)
    }

    /// Parse the steps of a dotted path without `$`, e.g. `params.name` in
    /// `#[payload.params.name]`.
    pub fn parse_dotted(text: &str) -> Result<Self, String> {
        Self::parse_steps(&format!(".{text}"), text).map(Self::from_steps)
    }

    fn parse_steps(mut rest: &str, whole: &str) -> Result<Vec<Step>, String> {
        let unsupported = |why: &str| format!("unsupported JSONPath `{whole}`: {why}");
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after_dot) = rest.strip_prefix('.') {
                let end = after_dot.find(['.', '[']).unwrap_or(after_dot.len());
                let (key, tail) = after_dot.split_at(end);
                if key.is_empty() {
                    return Err(unsupported(
                        "empty key (recursive descent `..` is not supported)",
                    ));
                }
                if key == "*" {
                    return Err(unsupported("wildcards are not supported"));
                }
                if !key
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(unsupported("use ['key'] for keys with special characters"));
                }
                steps.push(Step::Key(key.to_string()));
                rest = tail;
            } else if let Some(after_bracket) = rest.strip_prefix('[') {
                let end = after_bracket
                    .find(']')
                    .ok_or_else(|| unsupported("unclosed `[`"))?;
                let (inside, tail) = after_bracket.split_at(end);
                rest = tail.get(1..).unwrap_or("");
                let quoted = inside
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inside.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                if let Some(key) = quoted {
                    steps.push(Step::Key(key.to_string()));
                } else if let Ok(index) = inside.parse::<usize>() {
                    steps.push(Step::Index(index));
                } else {
                    return Err(unsupported(
                        "only [n] indexes and ['key'] members are supported",
                    ));
                }
            } else {
                return Err(unsupported("expected `.` or `[`"));
            }
        }
        Ok(steps)
    }

    pub fn get<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.steps
            .iter()
            .try_fold(value, |current, step| match step {
                Step::Key(key) => current.as_object()?.get(key),
                Step::Index(index) => current.as_array()?.get(*index),
            })
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for step in &self.steps {
            match step {
                Step::Key(key) => write!(f, "['{key}']")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Render a JSON scalar the way a header or log field wants it: strings
/// without quotes, other values as compact JSON.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recipe_paths_parse_and_resolve() {
        let body = json!({"method":"message/send","params":{"message":{"parts":[{"kind":"text","text":"hi"}]}}});
        let p = JsonPath::parse("$.params.message.parts[0].kind").unwrap();
        assert_eq!(p.get(&body), Some(&json!("text")));
        assert_eq!(
            JsonPath::parse("$.method").unwrap().get(&body),
            Some(&json!("message/send"))
        );
        assert_eq!(
            JsonPath::parse("$['params']['message']")
                .unwrap()
                .steps()
                .len(),
            2
        );
        assert_eq!(
            JsonPath::parse("$.result.isError").unwrap().get(&body),
            None
        );
        assert_eq!(JsonPath::parse("$").unwrap().get(&body), Some(&body));
    }

    #[test]
    fn unsupported_syntax_is_rejected() {
        for bad in [
            "params.name",
            "$..name",
            "$.a[*]",
            "$.a[?(@.x)]",
            "$.a[",
            "$.*",
            "$x",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn dotted_form_for_templates() {
        let p = JsonPath::parse_dotted("params.name").unwrap();
        assert_eq!(p.get(&json!({"params":{"name":"x"}})), Some(&json!("x")));
    }

    #[test]
    fn indexes_do_not_panic_out_of_range() {
        let p = JsonPath::parse("$.a[99999999]").unwrap();
        assert_eq!(p.get(&json!({"a":[1]})), None);
    }
}
