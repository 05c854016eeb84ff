//! The recipe's `#[...]` template expressions, parsed once at load time.
//!
//! Three kinds of expression exist in the recipe:
//! - `#[vars.agentId]`, `#[vars.tokenClaims.agent_id]`: a variable the filter
//!   computes (the set each site accepts is checked at load time);
//! - `#[payload.params.name]`: a member of the JSON request body;
//! - `#[attributes.headers['x-verified-agent-id']]`: a request header.
//!
//! A template is literal text with any number of expressions, e.g. a denial
//! body. Values inserted into a JSON body are JSON-escaped so that a tool name
//! such as `a"b` cannot break or inject into the response; values inserted
//! into headers lose CR/LF.

use crate::json_path::{JsonPath, Step};
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `vars.<name>` followed by an optional member path (`vars.tokenClaims.agent_id`).
    Var { name: String, path: JsonPath },
    /// `payload.<path>`: a member of the JSON request body.
    Payload(JsonPath),
    /// `attributes.headers['name']`: a request header (lower-cased name).
    Header(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Expr(Expr),
}

/// Which expressions a config site accepts.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub vars: &'a [&'a str],
    pub payload: bool,
    pub headers: bool,
}

/// What a template reads its values from at render time.
pub trait Bindings {
    fn var(&self, name: &str, path: &JsonPath) -> Option<String>;
    fn payload(&self, _path: &JsonPath) -> Option<String> {
        None
    }
    fn header(&self, _name: &str) -> Option<String> {
        None
    }
}

/// How inserted values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Values go inside a JSON string literal.
    JsonString,
    /// Values go into an HTTP header value.
    HeaderValue,
    /// Values are used as they are (keys, comparisons).
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    pub fn parse(text: &str, scope: Scope<'_>) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("#[") {
            let (literal, after) = rest.split_at(start);
            if !literal.is_empty() {
                segments.push(Segment::Literal(literal.to_string()));
            }
            let body = after.get(2..).unwrap_or("");
            let end = find_closing_bracket(body)
                .ok_or_else(|| format!("unclosed `#[` in template `{text}`"))?;
            let (inside, tail) = body.split_at(end);
            segments.push(Segment::Expr(parse_expr(inside.trim(), scope)?));
            rest = tail.get(1..).unwrap_or("");
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_string()));
        }
        Ok(Self { segments })
    }

    /// The expression when the template is exactly one `#[...]`, as key
    /// selectors and identity extraction are.
    pub fn as_single_expr(&self) -> Option<&Expr> {
        match self.segments.as_slice() {
            [Segment::Expr(expr)] => Some(expr),
            _ => None,
        }
    }

    pub fn expressions(&self) -> impl Iterator<Item = &Expr> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Expr(e) => Some(e),
            Segment::Literal(_) => None,
        })
    }

    pub fn is_literal(&self) -> bool {
        self.expressions().next().is_none()
    }

    pub fn render(&self, bindings: &dyn Bindings, escape: Escape) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Expr(expr) => {
                    let value = evaluate(expr, bindings).unwrap_or_default();
                    push_escaped(&mut out, &value, escape);
                }
            }
        }
        out
    }
}

pub fn evaluate(expr: &Expr, bindings: &dyn Bindings) -> Option<String> {
    match expr {
        Expr::Var { name, path } => bindings.var(name, path),
        Expr::Payload(path) => bindings.payload(path),
        Expr::Header(name) => bindings.header(name),
    }
}

/// `]` that closes `#[`, skipping the `]` of `['x']` inside it.
fn find_closing_bracket(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') if depth == 0 => return Some(i),
            (None, ']') => depth -= 1,
            _ => {}
        }
    }
    None
}

fn parse_expr(inside: &str, scope: Scope<'_>) -> Result<Expr, String> {
    if let Some(rest) = inside.strip_prefix("vars.") {
        let path = JsonPath::parse_dotted(rest).map_err(|e| format!("in `#[{inside}]`: {e}"))?;
        let (first, member) = match path.steps().split_first() {
            Some((Step::Key(first), member)) => (first.clone(), member.to_vec()),
            _ => return Err(format!("`#[{inside}]` must name a variable")),
        };
        if !scope.vars.contains(&first.as_str()) {
            return Err(format!(
                "unknown variable `vars.{first}` here; available: {}",
                scope
                    .vars
                    .iter()
                    .map(|v| format!("vars.{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        return Ok(Expr::Var {
            name: first,
            path: JsonPath::from_steps(member),
        });
    }
    if let Some(rest) = inside.strip_prefix("payload.") {
        if !scope.payload {
            return Err(format!(
                "`#[{inside}]`: the request payload is not available here"
            ));
        }
        let path = JsonPath::parse_dotted(rest).map_err(|e| format!("in `#[{inside}]`: {e}"))?;
        return Ok(Expr::Payload(path));
    }
    if let Some(rest) = inside.strip_prefix("attributes.headers") {
        if !scope.headers {
            return Err(format!(
                "`#[{inside}]`: request headers are not available here"
            ));
        }
        let path =
            JsonPath::parse(&format!("${rest}")).map_err(|e| format!("in `#[{inside}]`: {e}"))?;
        return match path.steps() {
            [Step::Key(name)] if !name.is_empty() => Ok(Expr::Header(name.to_ascii_lowercase())),
            _ => Err(format!(
                "`#[{inside}]`: write a header as attributes.headers['name']"
            )),
        };
    }
    Err(format!(
        "unsupported expression `#[{inside}]`: expected vars.*, payload.* or attributes.headers['…']"
    ))
}

fn push_escaped(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::Raw => out.push_str(value),
        Escape::HeaderValue => out.extend(value.chars().filter(|c| !c.is_control())),
        Escape::JsonString => {
            for c in value.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if (c as u32) < 0x20 => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SCOPE: Scope<'static> = Scope {
        vars: &["agentId", "toolName", "allowedTools", "tokenClaims"],
        payload: true,
        headers: true,
    };

    struct Map(HashMap<&'static str, &'static str>);
    impl Bindings for Map {
        fn var(&self, name: &str, path: &JsonPath) -> Option<String> {
            if path.steps().is_empty() {
                self.0.get(name).map(|s| s.to_string())
            } else {
                Some(format!("{name}{path}"))
            }
        }
        fn header(&self, name: &str) -> Option<String> {
            Some(format!("hdr:{name}"))
        }
    }

    #[test]
    fn recipe_denied_body_renders_with_escaping() {
        let t = Template::parse(
            "Agent '#[vars.agentId]' is not authorized to invoke tool '#[vars.toolName]'",
            SCOPE,
        )
        .unwrap();
        let b = Map(HashMap::from([
            ("agentId", "sentinel-1"),
            ("toolName", "x\"y\n"),
        ]));
        assert_eq!(
            t.render(&b, Escape::JsonString),
            "Agent 'sentinel-1' is not authorized to invoke tool 'x\\\"y\\n'"
        );
        assert_eq!(
            t.render(&b, Escape::HeaderValue),
            "Agent 'sentinel-1' is not authorized to invoke tool 'x\"y'"
        );
    }

    #[test]
    fn recipe_expressions_parse() {
        let t = Template::parse("#[attributes.headers['x-verified-agent-id']]", SCOPE).unwrap();
        assert_eq!(
            t.as_single_expr(),
            Some(&Expr::Header("x-verified-agent-id".into()))
        );
        let t = Template::parse("#[vars.tokenClaims.agent_id]", SCOPE).unwrap();
        match t.as_single_expr() {
            Some(Expr::Var { name, path }) => {
                assert_eq!(name, "tokenClaims");
                assert_eq!(path.steps(), &[Step::Key("agent_id".into())]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let t = Template::parse("#[payload.params.name]", SCOPE).unwrap();
        assert!(matches!(t.as_single_expr(), Some(Expr::Payload(_))));
        assert!(Template::parse("plain", SCOPE).unwrap().is_literal());
    }

    #[test]
    fn unknown_variables_and_syntax_are_rejected_at_load() {
        let err = Template::parse("#[vars.agentID]", SCOPE).unwrap_err();
        assert!(err.contains("vars.agentId"), "{err}");
        assert!(Template::parse("#[vars.agentId", SCOPE).is_err());
        assert!(Template::parse("#[env.HOME]", SCOPE).is_err());
        assert!(Template::parse("#[attributes.headers.x]", SCOPE).is_ok());
        assert!(Template::parse("#[attributes.headers]", SCOPE).is_err());
        let no_payload = Scope {
            payload: false,
            ..SCOPE
        };
        assert!(Template::parse("#[payload.params.name]", no_payload).is_err());
    }

    #[test]
    fn missing_values_render_empty() {
        let t = Template::parse("[#[vars.agentId]]", SCOPE).unwrap();
        assert_eq!(t.render(&Map(HashMap::new()), Escape::Raw), "[]");
    }
}
