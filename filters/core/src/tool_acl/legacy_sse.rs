//! The 2024-11-05 HTTP+SSE transport: denials delivered where its clients
//! read.
//!
//! A client of that transport opens `GET /mcp/sse`, whose first `endpoint`
//! event names a messages URL (`...?session_id=S`); it POSTs every message
//! there and reads every answer from the GET stream only (the POST itself is
//! answered `202 Accepted`). A denial sent as the POST's own response is
//! never read: the official Python client waits forever. The filter cannot
//! add bytes to another request's stream, so:
//!
//! 1. the denied `tools/call` is forwarded as a `ping` with the same id
//!    (the server executes nothing, and answers the ping on the GET stream),
//!    padded with JSON whitespace to the original length so that
//!    `Content-Length` still holds;
//! 2. the denial is remembered in a bounded, expiring table keyed by the
//!    session and the JSON-RPC id ([`PendingDenials`], shared by all
//!    workers);
//! 3. the GET stream's SSE rewriter, which knows its session from the
//!    `endpoint` event, replaces the server's answer to that id with the
//!    denial.

use crate::shared_doc::SharedDoc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Entries kept at most: a bound on shared memory whatever clients send.
pub const MAX_PENDING: usize = 256;
/// How long a denial waits for the server's answer to the ping.
pub const PENDING_TTL_MS: u64 = 60_000;
/// Longest session id accepted (the Python SDK's are 32 hex digits).
const MAX_SESSION_LEN: usize = 128;

/// The session of the 2024-11-05 transport named in a URL's query (a POST's
/// `:path`, or the `endpoint` event's data): `session_id` (Python SDK) or
/// `sessionId` (TypeScript SDK). `None` for any other request.
pub fn session_of(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        let ok = (key == "session_id" || key == "sessionId")
            && !value.is_empty()
            && value.len() <= MAX_SESSION_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| value.to_string())
    })
}

/// A `ping` with `id`, padded with spaces to `len` bytes when shorter (a
/// `tools/call` with the same id always is longer), so the forwarded body
/// keeps the original `Content-Length`.
pub fn ping_in_place_of(id: &Value, len: usize) -> Vec<u8> {
    let mut body = json!({"jsonrpc": "2.0", "id": id, "method": "ping"})
        .to_string()
        .into_bytes();
    if body.len() < len {
        body.resize(len, b' ');
    }
    body
}

/// One route of the gateway that serves the transport under another prefix
/// than the upstream (Envoy's `prefix_rewrite`): the `endpoint` event the
/// upstream sends names its own prefix, which the client could not reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRewrite {
    /// The prefix clients use (the route's match), e.g. `/tools/legacy/`.
    pub gateway: String,
    /// The prefix the upstream serves (the route's `prefix_rewrite`).
    pub upstream: String,
}

impl PrefixRewrite {
    /// Both must be absolute path prefixes; the error names the bad one.
    pub fn new(gateway: &str, upstream: &str) -> Result<Self, String> {
        for (key, p) in [("gatewayPrefix", gateway), ("upstreamPrefix", upstream)] {
            if !p.starts_with('/') || p.contains(['?', '#']) {
                return Err(format!(
                    "{key}: `{p}` must be an absolute path prefix such as /mcp/"
                ));
            }
        }
        Ok(Self {
            gateway: gateway.to_string(),
            upstream: upstream.to_string(),
        })
    }
}

/// The `endpoint` event's URL as the client must use it: for a stream the
/// client opened under a rewritten route's gateway prefix (`stream_path`,
/// the GET's path as the client sent it), the upstream prefix of a
/// relative URL is replaced with the gateway's. `None`: leave it as it is
/// (no rule applies, or an absolute URL, which names a host of its own).
pub fn rewrite_endpoint(stream_path: &str, data: &str, rules: &[PrefixRewrite]) -> Option<String> {
    let url = data.trim();
    if !url.starts_with('/') || url.starts_with("//") {
        return None;
    }
    let rule = rules
        .iter()
        .find(|r| stream_path.starts_with(&r.gateway) && url.starts_with(&r.upstream))?;
    let rest = url.get(rule.upstream.len()..)?;
    let rewritten = format!("{}{rest}", rule.gateway);
    (rewritten != url).then_some(rewritten)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub session: String,
    pub id: Value,
    /// The whole JSON-RPC error response to send instead of the answer.
    pub answer: Value,
    pub expires_at_ms: u64,
}

/// Denials waiting for the server's answer, oldest first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PendingDenials {
    pub entries: Vec<Pending>,
}

impl SharedDoc for PendingDenials {}

impl PendingDenials {
    /// Remember a denial; expired entries go, then the oldest beyond
    /// [`MAX_PENDING`] (its client then gets the ping's answer: an empty
    /// result, never the tool's).
    pub fn add(&mut self, pending: Pending, now_ms: u64) {
        self.entries.retain(|e| {
            e.expires_at_ms > now_ms && !(e.session == pending.session && e.id == pending.id)
        });
        self.entries.push(pending);
        let excess = self.entries.len().saturating_sub(MAX_PENDING);
        self.entries.drain(..excess);
    }

    /// The denial for this session's answer to `id`, removed from the table.
    pub fn take(&mut self, session: &str, id: &Value, now_ms: u64) -> Option<Value> {
        let at = self
            .entries
            .iter()
            .position(|e| e.session == session && &e.id == id && e.expires_at_ms > now_ms)?;
        Some(self.entries.remove(at).answer)
    }
}

/// The id of a server's answer (a message with `result` or `error` and no
/// `method`) carried by an SSE event's data; `None` for anything else.
pub fn answer_id(data: &str) -> Option<Value> {
    if !data.contains("\"id\"") {
        return None;
    }
    let value: Value = serde_json::from_str(data).ok()?;
    let is_answer = value.get("method").is_none()
        && (value.get("result").is_some() || value.get("error").is_some());
    is_answer.then(|| value.get("id").cloned()).flatten()
}

/// The denial as a JSON-RPC error response: the reply body when it already
/// is one (format `jsonrpc`/`auto`), else wrapped (format `http`).
pub fn denial_answer(reply_body: &str, id: &Value, code: i64) -> Value {
    refusal_answer(reply_body, id, code, "tool access denied")
}

/// Any filter's refusal as a JSON-RPC error response with `id`: the reply
/// body when it already is one, else wrapped as `data` under `code`, with
/// the body's `message` or `default_message`.
pub fn refusal_answer(reply_body: &str, id: &Value, code: i64, default_message: &str) -> Value {
    match serde_json::from_str::<Value>(reply_body) {
        Ok(Value::Object(mut v)) if v.contains_key("error") && v.contains_key("jsonrpc") => {
            v.insert("id".into(), id.clone());
            Value::Object(v)
        }
        parsed => {
            let data = parsed.unwrap_or_else(|_| Value::String(reply_body.to_string()));
            let message = data
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or(default_message)
                .to_string();
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message, "data": data}})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_come_from_the_query_only() {
        assert_eq!(
            session_of("/mcp/messages/?session_id=0123abcd").as_deref(),
            Some("0123abcd")
        );
        assert_eq!(
            session_of("/messages?x=1&sessionId=a-b_c").as_deref(),
            Some("a-b_c")
        );
        assert_eq!(session_of("/mcp"), None);
        assert_eq!(session_of("/mcp?session_id="), None);
        assert_eq!(session_of("/mcp?session_id=a%2Fb"), None);
        assert_eq!(
            session_of(&format!("/m?session_id={}", "a".repeat(129))),
            None
        );
    }

    #[test]
    fn endpoint_urls_follow_the_route_prefix() {
        let rules = vec![
            PrefixRewrite::new("/tools/legacy/", "/mcp/").unwrap(),
            PrefixRewrite::new("/other/", "/").unwrap(),
        ];
        assert_eq!(
            rewrite_endpoint("/tools/legacy/sse", "/mcp/messages/?session_id=ab", &rules)
                .as_deref(),
            Some("/tools/legacy/messages/?session_id=ab")
        );
        assert_eq!(
            rewrite_endpoint("/other/sse", "/messages?sessionId=1", &rules).as_deref(),
            Some("/other/messages?sessionId=1")
        );
        // a stream under no rewritten route, an absolute URL, another prefix
        assert_eq!(
            rewrite_endpoint("/mcp/sse", "/mcp/messages/?session_id=ab", &rules),
            None
        );
        assert_eq!(
            rewrite_endpoint(
                "/tools/legacy/sse",
                "https://h/mcp/messages/?session_id=a",
                &rules
            ),
            None
        );
        assert_eq!(
            rewrite_endpoint("/tools/legacy/sse", "//h/mcp/m", &rules),
            None
        );
        assert_eq!(
            rewrite_endpoint("/tools/legacy/sse", "/x/messages/", &rules),
            None
        );
        assert!(PrefixRewrite::new("mcp/", "/").is_err());
        assert!(PrefixRewrite::new("/a/", "/b?x")
            .unwrap_err()
            .contains("upstreamPrefix"));
    }

    #[test]
    fn ping_keeps_the_length_and_the_id() {
        let call = br#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"execute_code","arguments":{}}}"#;
        let ping = ping_in_place_of(&json!("abc"), call.len());
        assert_eq!(ping.len(), call.len());
        let v: Value = serde_json::from_slice(&ping).unwrap();
        assert_eq!(v, json!({"jsonrpc":"2.0","id":"abc","method":"ping"}));
        // never truncated
        assert!(ping_in_place_of(&json!(1), 3).len() > 3);
    }

    #[test]
    fn pending_denials_are_keyed_bounded_and_expire() {
        let mut t = PendingDenials::default();
        let p = |s: &str, id: Value, exp: u64| Pending {
            session: s.into(),
            id,
            answer: json!({"denied": s}),
            expires_at_ms: exp,
        };
        t.add(p("s1", json!(1), 100), 0);
        t.add(p("s2", json!(1), 100), 0);
        assert_eq!(t.take("s1", &json!("1"), 10), None, "ids compare as JSON");
        assert_eq!(t.take("s1", &json!(1), 10), Some(json!({"denied": "s1"})));
        assert_eq!(t.take("s1", &json!(1), 10), None, "taken once");
        assert_eq!(t.take("s2", &json!(1), 100), None, "expired");
        for i in 0..(MAX_PENDING + 10) {
            t.add(p("s", json!(i), 1_000), 200);
        }
        assert_eq!(t.entries.len(), MAX_PENDING);
        assert_eq!(t.take("s", &json!(0), 300), None, "oldest evicted");
        assert!(t.take("s", &json!(MAX_PENDING + 9), 300).is_some());
        let back = PendingDenials::from_bytes(Some(&t.to_bytes()));
        assert_eq!(back, t);
        assert_eq!(
            PendingDenials::from_bytes(Some(b"x")),
            PendingDenials::default()
        );
    }

    #[test]
    fn answers_are_recognised() {
        assert_eq!(
            answer_id(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
            Some(json!(7))
        );
        assert_eq!(
            answer_id(r#"{"jsonrpc":"2.0","id":"a","error":{"code":1}}"#),
            Some(json!("a"))
        );
        assert_eq!(
            answer_id(r#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage"}"#),
            None
        );
        assert_eq!(answer_id(r#"{"jsonrpc":"2.0","method":"x"}"#), None);
        assert_eq!(answer_id("/mcp/messages/?session_id=1"), None);
    }

    #[test]
    fn denials_become_jsonrpc_errors_with_the_id() {
        let rpc = r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32001,"message":"no"}}"#;
        assert_eq!(
            denial_answer(rpc, &json!(5), -32001)["error"]["message"],
            "no"
        );
        let http = r#"{"error":"tool_access_denied","message":"Agent 'a' is not authorized"}"#;
        let v = denial_answer(http, &json!("x"), -32001);
        assert_eq!(v["id"], "x");
        assert_eq!(v["error"]["code"], -32001);
        assert_eq!(v["error"]["message"], "Agent 'a' is not authorized");
        assert_eq!(v["error"]["data"]["error"], "tool_access_denied");
    }
}
