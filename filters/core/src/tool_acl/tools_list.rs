//! `tools/list`: each agent sees only the tools it may call, and the
//! upstream's unfiltered list is cached.
//!
//! Filtering applies to every JSON-RPC result that carries a `tools` array,
//! whatever the request id (fail closed: a server answering on another
//! stream, or a batch, cannot slip a list past the filter). Tools without a
//! string `name` are dropped. Everything else in the result (`nextCursor`,
//! `ttlMs`, `cacheScope`, `_meta`) is kept.
//!
//! Cache: one document per upstream (a bounded key space: the cluster
//! names of the configuration), holding the **unfiltered** result pages
//! keyed by protocol version and cursor. Filtering happens on the way out,
//! per agent, so one agent's view never reaches another. When the server
//! marks a result `cacheScope: "private"` (MCP 2026-07-28: not shareable
//! across authorization contexts), the entry is also keyed by the agent.
//! Entries live for the configured TTL, shortened by the result's `ttlMs`
//! (0 means do not cache). A `notifications/tools/list_changed` bumps the
//! document's generation and empties it; a response that was requested
//! under an older generation is not stored.

use crate::shared_doc::SharedDoc;
use crate::tool_acl::rules::{AgentView, TargetKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The list a `*/list` result carries for `kind`, and the field that names
/// each item: `tools` by `name`, `resources` by `uri`, `prompts` by `name`.
fn list_key(kind: TargetKind) -> (&'static str, &'static str) {
    match kind {
        TargetKind::Tool => ("tools", "name"),
        TargetKind::Resource => ("resources", "uri"),
        TargetKind::Prompt => ("prompts", "name"),
    }
}

/// Keep only the items of the `kinds` lists that `view` permits. Returns
/// how many were removed.
pub fn filter_result(
    result: &mut Map<String, Value>,
    view: &AgentView<'_>,
    kinds: &[TargetKind],
) -> usize {
    let mut removed = 0;
    for &kind in kinds {
        let (list, field) = list_key(kind);
        match result.get_mut(list) {
            Some(Value::Array(items)) => {
                let before = items.len();
                items.retain(|item| {
                    item.get(field)
                        .and_then(Value::as_str)
                        .is_some_and(|name| view.permits(kind, name))
                });
                removed += before - items.len();
            }
            Some(other) => {
                // Not a list we understand: show nothing rather than guess.
                *other = Value::Array(Vec::new());
                removed += 1;
            }
            None => {}
        }
    }
    removed
}

/// What filtering one response body (or SSE event payload) found.
#[derive(Debug, Default, PartialEq)]
pub struct Filtered {
    /// The rewritten JSON, when anything had to change.
    pub rewritten: Option<String>,
    /// Unfiltered results of the responses whose id is in `cache_ids`, for
    /// the cache: `(id, result)`.
    pub unfiltered: Vec<(Value, Value)>,
    /// Tools removed in total.
    pub removed: usize,
    /// The payload was `notifications/tools/list_changed`.
    pub list_changed: bool,
}

/// Filter a JSON-RPC payload (a message or a batch of messages): the lists
/// of `kinds` (those the ACL governs) in every result. `Err` when it is not
/// JSON: the caller must not forward it.
pub fn filter_payload(
    payload: &[u8],
    view: &AgentView<'_>,
    kinds: &[TargetKind],
    cache_ids: &[Value],
) -> Result<Filtered, String> {
    let mut value: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let mut out = Filtered::default();
    let mut has_lists = false;
    {
        let messages: Vec<&mut Value> = match &mut value {
            Value::Array(items) => items.iter_mut().collect(),
            single => vec![single],
        };
        for message in messages {
            if message.get("method").and_then(Value::as_str)
                == Some("notifications/tools/list_changed")
            {
                out.list_changed = true;
            }
            let id = message.get("id").cloned();
            let Some(result) = message.get_mut("result").and_then(Value::as_object_mut) else {
                continue;
            };
            if !kinds.iter().any(|k| result.contains_key(list_key(*k).0)) {
                continue;
            }
            has_lists = true;
            if result.contains_key("tools") {
                if let Some(id) = id.filter(|id| cache_ids.contains(id)) {
                    out.unfiltered.push((id, Value::Object(result.clone())));
                }
            }
            out.removed += filter_result(result, view, kinds);
        }
    }
    if has_lists {
        out.rewritten = Some(value.to_string());
    }
    Ok(out)
}

/// Cheap pre-check for SSE event data: only payloads that may carry a
/// list or a list-changed notification are parsed. `\u` escapes could spell
/// either, so their presence also triggers a parse.
pub fn may_concern_lists(data: &str) -> bool {
    ["tools", "resources", "prompts", "\\u"]
        .iter()
        .any(|word| data.contains(word))
}

/// `params` of a `tools/list` request the cache can answer: none, or only
/// `cursor` (string) and `_meta`. Returns the cursor.
pub fn cacheable_params(params: Option<&Value>) -> Option<Option<String>> {
    match params {
        None | Some(Value::Null) => Some(None),
        Some(Value::Object(map)) => {
            let mut cursor = None;
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("cursor", Value::String(c)) => cursor = Some(c.clone()),
                    ("_meta", _) => {}
                    _ => return None,
                }
            }
            Some(cursor)
        }
        Some(_) => None,
    }
}

/// Cache entry key within one upstream's document.
pub fn entry_key(
    protocol_version: &str,
    cursor: Option<&str>,
    private_agent: Option<&str>,
) -> String {
    // JSON keeps the parts unambiguous whatever characters they contain.
    json!([protocol_version, cursor, private_agent]).to_string()
}

/// The result is private to one authorization context (2026-07-28 `cacheScope`).
pub fn is_private(result: &Value) -> bool {
    result.get("cacheScope").and_then(Value::as_str) == Some("private")
}

/// How long to keep a result: the configured TTL, shortened by `ttlMs`.
/// `None`: do not cache.
pub fn entry_ttl_ms(result: &Value, configured_ms: u64) -> Option<u64> {
    let ttl = match result.get("ttlMs").and_then(Value::as_u64) {
        Some(server) => server.min(configured_ms),
        None => configured_ms,
    };
    (ttl > 0).then_some(ttl)
}

/// The entry to store for an upstream's unfiltered `result` of the page
/// (`protocol_version`, `cursor`) asked by `agent_id`; `None` when it must
/// not be cached (a TTL of 0, or private with no agent to keep it for).
pub fn entry_for(
    result: &Value,
    protocol_version: &str,
    cursor: Option<&str>,
    agent_id: Option<&str>,
    form: ReplyForm,
    configured_ttl_ms: u64,
    now_ms: u64,
) -> Option<CacheEntry> {
    let ttl = entry_ttl_ms(result, configured_ttl_ms)?;
    let private_agent = if is_private(result) {
        Some(agent_id?)
    } else {
        None
    };
    Some(CacheEntry {
        key: entry_key(protocol_version, cursor, private_agent),
        stored_at_ms: now_ms,
        expires_at_ms: now_ms.saturating_add(ttl),
        result: result.clone(),
        form,
    })
}

/// How an answer to a `tools/list` POST travels: a JSON body or one SSE
/// `message` event. Streamable HTTP lets the server pick either; clients
/// and conformance checks notice when the gateway answers in another form
/// than the server would have, so the cache remembers the upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyForm {
    /// Also what entries stored before the form was recorded read as.
    #[default]
    Json,
    Sse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    pub key: String,
    pub stored_at_ms: u64,
    pub expires_at_ms: u64,
    pub result: Value,
    /// The form the upstream answered in.
    #[serde(default)]
    pub form: ReplyForm,
}

/// One upstream's cached pages (stored as JSON in shared data).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheDoc {
    pub generation: u64,
    pub entries: Vec<CacheEntry>,
}

/// Bounds of one upstream's cache document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl SharedDoc for CacheDoc {}

impl CacheDoc {
    /// A fresh entry for `key`.
    pub fn lookup(&self, key: &str, now_ms: u64) -> Option<&CacheEntry> {
        self.entries
            .iter()
            .find(|e| e.key == key && e.expires_at_ms > now_ms)
    }

    /// Store an entry (replacing one with the same key), dropping expired
    /// ones and then the oldest until the limits hold. Returns the bytes to
    /// store, or `None` if the entry alone is over the limit.
    pub fn insert(
        &mut self,
        entry: CacheEntry,
        now_ms: u64,
        limits: CacheLimits,
    ) -> Option<Vec<u8>> {
        self.entries
            .retain(|e| e.expires_at_ms > now_ms && e.key != entry.key);
        self.entries.push(entry);
        loop {
            if self.entries.len() <= limits.max_entries.max(1) {
                let bytes = self.to_bytes();
                if bytes.len() <= limits.max_bytes {
                    return Some(bytes);
                }
            }
            if self.entries.len() <= 1 {
                self.entries.clear();
                return None;
            }
            // Oldest first: entries are appended in store order.
            self.entries.remove(0);
        }
    }

    /// The entry that answers a page request: the shared one first, then
    /// the caller's private one (`cacheScope: private`).
    pub fn find(
        &self,
        protocol_version: &str,
        cursor: Option<&str>,
        agent_id: Option<&str>,
        now_ms: u64,
    ) -> Option<&CacheEntry> {
        self.lookup(&entry_key(protocol_version, cursor, None), now_ms)
            .or_else(|| {
                let private = entry_key(protocol_version, cursor, Some(agent_id?));
                self.lookup(&private, now_ms)
            })
    }

    /// Store `entry` unless the list changed since `generation` was read
    /// (the answer may predate the change): the bytes to write, if any.
    pub fn store_since(
        &mut self,
        generation: u64,
        entry: CacheEntry,
        now_ms: u64,
        limits: CacheLimits,
    ) -> Option<Vec<u8>> {
        if self.generation != generation {
            return None;
        }
        self.insert(entry, now_ms, limits)
    }

    /// `notifications/tools/list_changed`: forget everything.
    pub fn invalidate(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.entries.clear();
    }
}

/// The answer to a `tools/list` request served from the cache: the cached
/// result filtered for this agent, the request's own `id`, and `ttlMs`
/// lowered by the entry's age.
pub fn cached_response(
    entry: &CacheEntry,
    id: &Value,
    view: &AgentView<'_>,
    now_ms: u64,
) -> String {
    let mut result = match &entry.result {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    filter_result(&mut result, view, &[TargetKind::Tool]);
    if let Some(ttl) = result.get("ttlMs").and_then(Value::as_u64) {
        let age = now_ms.saturating_sub(entry.stored_at_ms);
        result.insert("ttlMs".into(), Value::from(ttl.saturating_sub(age)));
    }
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// The form of a locally served answer: the upstream's (`upstream`), unless
/// the client's `Accept` takes only the other one. MCP clients send both
/// `application/json` and `text/event-stream` and must take either; a
/// client naming one (or refusing one with `q=0`) gets that one.
pub fn reply_form(accept: Option<&str>, upstream: ReplyForm) -> ReplyForm {
    let Some(accept) = accept else {
        return upstream;
    };
    let (mut json, mut sse) = (false, false);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            continue;
        }
        match media.as_str() {
            "*/*" => (json, sse) = (true, true),
            "application/json" | "application/*" => json = true,
            "text/event-stream" | "text/*" => sse = true,
            _ => {}
        }
    }
    match (json, sse) {
        (true, false) => ReplyForm::Json,
        (false, true) => ReplyForm::Sse,
        // Both, or neither (a client that names neither gets what the
        // upstream would have sent it).
        _ => upstream,
    }
}

/// One SSE `message` event carrying `json`.
pub fn sse_message(json: &str) -> String {
    format!("event: message\ndata: {json}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_found_shared_first_then_private() {
        let limits = CacheLimits {
            max_entries: 8,
            max_bytes: 1 << 20,
        };
        let public = json!({"tools": [{"name": "a"}]});
        let private = json!({"tools": [{"name": "b"}], "cacheScope": "private"});
        let mut doc = CacheDoc::default();
        let mine = entry_for(&private, "v", None, Some("ag"), ReplyForm::Sse, 1000, 0).unwrap();
        doc.store_since(0, mine, 0, limits).unwrap();
        assert_eq!(doc.find("v", None, Some("ag"), 1).unwrap().result, private);
        assert!(doc.find("v", None, Some("other"), 1).is_none());
        assert!(doc.find("v", None, None, 1).is_none());
        let shared = entry_for(&public, "v", None, Some("ag"), ReplyForm::Json, 1000, 0).unwrap();
        doc.store_since(0, shared, 0, limits).unwrap();
        assert_eq!(doc.find("v", None, Some("ag"), 1).unwrap().result, public);
        // expired
        assert!(doc.find("v", None, None, 1000).is_none());
        // private without an agent, or a TTL of 0: not cached
        assert!(entry_for(&private, "v", None, None, ReplyForm::Json, 1000, 0).is_none());
        assert!(entry_for(
            &json!({"ttlMs": 0}),
            "v",
            None,
            None,
            ReplyForm::Json,
            1000,
            0
        )
        .is_none());
        // a list change between lookup and store voids the store
        let generation = doc.generation;
        doc.invalidate();
        let late = entry_for(&public, "v", None, None, ReplyForm::Json, 1000, 0).unwrap();
        assert!(doc.store_since(generation, late, 0, limits).is_none());
    }
    use crate::tool_acl::rules::Agent;

    use crate::tool_acl::rules::tests::recipe as acl;

    const TOOLS: &[TargetKind] = &[TargetKind::Tool];

    fn agent(id: &str) -> Option<Agent<'_>> {
        Some(Agent { id, name: "" })
    }

    const ALL: &[&str] = &[
        "search_patterns",
        "classify_content",
        "read_config",
        "execute_code",
        "write_file",
        "generate_video",
        "render_scene",
        "read_template",
        "delete_scene",
        "deploy_application",
    ];

    fn list_response(id: Value) -> String {
        let tools: Vec<Value> = ALL
            .iter()
            .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
            .collect();
        json!({"jsonrpc":"2.0","id":id,"result":{"tools":tools,"nextCursor":"page-2","ttlMs":60000}}).to_string()
    }

    fn names(v: &Value) -> Vec<String> {
        v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn each_recipe_agent_sees_only_its_tools() {
        let acl = acl();
        let body = list_response(json!(1));
        for (who, expected) in [
            (
                "sentinel-1",
                vec!["search_patterns", "classify_content", "read_config"],
            ),
            (
                "alchemy-1",
                vec!["generate_video", "render_scene", "read_template"],
            ),
            ("admin-1", ALL.to_vec()),
            ("intern-1", vec![]),
        ] {
            let out =
                filter_payload(body.as_bytes(), &acl.view(agent(who)), TOOLS, &[json!(1)]).unwrap();
            let v: Value = serde_json::from_str(out.rewritten.as_deref().unwrap()).unwrap();
            assert_eq!(names(&v), expected, "{who}");
            assert_eq!(v["result"]["nextCursor"], "page-2", "pagination kept");
            assert_eq!(v["id"], 1);
            assert_eq!(out.removed, ALL.len() - expected.len());
            // the cache gets the unfiltered page
            assert_eq!(out.unfiltered.len(), 1);
            assert_eq!(
                out.unfiltered[0].1["tools"].as_array().unwrap().len(),
                ALL.len()
            );
        }
        let none = filter_payload(body.as_bytes(), &acl.view(None), TOOLS, &[]).unwrap();
        let v: Value = serde_json::from_str(none.rewritten.as_deref().unwrap()).unwrap();
        assert!(names(&v).is_empty());
        assert!(none.unfiltered.is_empty(), "id not requested: not cached");
    }

    #[test]
    fn batches_nameless_tools_and_odd_shapes() {
        let acl = acl();
        let view = acl.view(agent("sentinel-1"));
        let body = json!([
            {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_config"},{"name":"execute_code"},{"title":"no name"},{"name":7}]}},
            {"jsonrpc":"2.0","id":2,"result":{"tools":{"name":"execute_code"}}},
            {"jsonrpc":"2.0","id":3,"result":{"content":[]}}
        ])
        .to_string();
        let out = filter_payload(body.as_bytes(), &view, TOOLS, &[]).unwrap();
        let v: Value = serde_json::from_str(out.rewritten.as_deref().unwrap()).unwrap();
        assert_eq!(v[0]["result"]["tools"], json!([{"name":"read_config"}]));
        assert_eq!(v[1]["result"]["tools"], json!([]));
        assert_eq!(v[2]["result"]["content"], json!([]));
        assert!(filter_payload(b"not json", &view, TOOLS, &[]).is_err());
    }

    #[test]
    fn other_payloads_are_left_alone_and_list_changed_is_seen() {
        let acl = acl();
        let view = acl.view(agent("sentinel-1"));
        let call =
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"tools"}]}}"#;
        assert_eq!(
            filter_payload(call, &view, TOOLS, &[]).unwrap(),
            Filtered::default()
        );
        let changed = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
        let out = filter_payload(changed, &view, TOOLS, &[]).unwrap();
        assert!(out.list_changed);
        assert!(out.rewritten.is_none());
        assert!(may_concern_lists(std::str::from_utf8(changed).unwrap()));
        assert!(may_concern_lists(r#"{"result":{"\u0074ools":[]}}"#));
        assert!(!may_concern_lists(r#"{"method":"notifications/progress"}"#));
        // escaped keys are still found once parsed
        let sneaky =
            br#"{"jsonrpc":"2.0","id":1,"result":{"\u0074ools":[{"name":"execute_code"}]}}"#;
        let out = filter_payload(sneaky, &view, TOOLS, &[]).unwrap();
        assert!(out.rewritten.unwrap().contains("\"tools\":[]"));
    }

    #[test]
    fn resource_and_prompt_lists_are_filtered_when_governed() {
        let config = crate::config::load::<
            crate::tool_acl::config::ToolAclSpec,
            crate::tool_acl::config::ToolAclConfig,
        >(
            br#"{"accessRules": [{"agentPattern": "sentinel-*", "allowedTools": ["read_config"],
                 "allowedResources": ["config://*"], "allowedPrompts": ["summarize_*"]}],
                 "applyTo": {"methods": ["tools/call", "resources/read", "prompts/get"]}}"#,
        )
        .unwrap();
        let view = config.acl.view(agent("sentinel-1"));
        let body = json!([
            {"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"config://a"},{"uri":"file:///etc/passwd"},{"name":"no uri"}],"nextCursor":"c"}},
            {"jsonrpc":"2.0","id":2,"result":{"prompts":[{"name":"summarize_text"},{"name":"draft_email"}]}}
        ])
        .to_string();
        let all = [TargetKind::Tool, TargetKind::Resource, TargetKind::Prompt];
        let out = filter_payload(body.as_bytes(), &view, &all, &[json!(1)]).unwrap();
        let v: Value = serde_json::from_str(out.rewritten.as_deref().unwrap()).unwrap();
        assert_eq!(v[0]["result"]["resources"], json!([{"uri":"config://a"}]));
        assert_eq!(v[0]["result"]["nextCursor"], "c");
        assert_eq!(
            v[1]["result"]["prompts"],
            json!([{"name":"summarize_text"}])
        );
        assert_eq!(out.removed, 3);
        assert!(out.unfiltered.is_empty(), "only tool lists are cached");
        // a kind the ACL does not govern is left alone
        let tools_only = filter_payload(body.as_bytes(), &view, TOOLS, &[]).unwrap();
        assert_eq!(tools_only, Filtered::default());
        assert!(may_concern_lists(r#"{"result":{"prompts":[]}}"#));
    }

    #[test]
    fn cacheable_requests() {
        assert_eq!(cacheable_params(None), Some(None));
        assert_eq!(cacheable_params(Some(&json!({}))), Some(None));
        assert_eq!(
            cacheable_params(Some(&json!({"cursor":"c2","_meta":{"progressToken":1}}))),
            Some(Some("c2".into()))
        );
        assert_eq!(cacheable_params(Some(&json!({"cursor":3}))), None);
        assert_eq!(cacheable_params(Some(&json!({"filter":"x"}))), None);
        assert_eq!(cacheable_params(Some(&json!([1]))), None);
        assert_ne!(
            entry_key("2025-11-25", None, None),
            entry_key("2025-11-25", Some(""), None)
        );
        assert_ne!(
            entry_key("a", Some("b"), None),
            entry_key("a", None, Some("b"))
        );
    }

    #[test]
    fn ttl_and_scope() {
        assert_eq!(entry_ttl_ms(&json!({"tools":[]}), 300_000), Some(300_000));
        assert_eq!(entry_ttl_ms(&json!({"ttlMs": 1000}), 300_000), Some(1000));
        assert_eq!(
            entry_ttl_ms(&json!({"ttlMs": 900_000}), 300_000),
            Some(300_000)
        );
        assert_eq!(entry_ttl_ms(&json!({"ttlMs": 0}), 300_000), None);
        assert_eq!(entry_ttl_ms(&json!({}), 0), None);
        assert!(is_private(&json!({"cacheScope":"private"})));
        assert!(!is_private(&json!({"cacheScope":"public"})));
        assert!(!is_private(&json!({})));
    }

    fn entry(key: &str, at: u64, ttl: u64, size: usize) -> CacheEntry {
        CacheEntry {
            key: key.into(),
            stored_at_ms: at,
            expires_at_ms: at + ttl,
            result: json!({"tools":[{"name":"x".repeat(size)}]}),
            form: ReplyForm::Json,
        }
    }

    #[test]
    fn cache_doc_lookup_expiry_and_bounds() {
        let limits = CacheLimits {
            max_entries: 2,
            max_bytes: 10_000,
        };
        let mut doc = CacheDoc::default();
        assert!(doc.insert(entry("a", 0, 100, 1), 0, limits).is_some());
        assert!(doc.lookup("a", 50).is_some());
        assert!(doc.lookup("a", 100).is_none(), "expired at its deadline");
        assert!(doc.lookup("b", 50).is_none());
        doc.insert(entry("b", 10, 100, 1), 10, limits);
        doc.insert(entry("c", 20, 100, 1), 20, limits);
        assert_eq!(doc.entries.len(), 2);
        assert!(doc.lookup("a", 30).is_none(), "oldest evicted");
        // replacing keeps one entry per key
        doc.insert(entry("c", 30, 100, 2), 30, limits);
        assert_eq!(doc.entries.iter().filter(|e| e.key == "c").count(), 1);
        // byte bound
        let small = CacheLimits {
            max_entries: 10,
            max_bytes: 300,
        };
        let mut doc = CacheDoc::default();
        assert!(doc.insert(entry("big", 0, 100, 1000), 0, small).is_none());
        assert!(doc.entries.is_empty());
        doc.insert(entry("a", 0, 100, 60), 0, small).unwrap();
        let bytes = doc.insert(entry("b", 1, 100, 60), 1, small).unwrap();
        assert!(bytes.len() <= 300);
        assert_eq!(doc.entries.len(), 1);
        // round trip + invalidation
        let back = CacheDoc::from_bytes(Some(&bytes));
        assert_eq!(back, doc);
        let mut inv = back.clone();
        inv.invalidate();
        assert_eq!(inv.generation, back.generation + 1);
        assert!(inv.entries.is_empty());
        assert_eq!(CacheDoc::from_bytes(Some(b"garbage")), CacheDoc::default());
        assert_eq!(CacheDoc::from_bytes(None), CacheDoc::default());
    }

    #[test]
    fn cached_answers_use_the_request_id_and_the_agent_view() {
        let acl = acl();
        let full: Value = serde_json::from_str(&list_response(json!(1))).unwrap();
        let e = CacheEntry {
            key: "k".into(),
            stored_at_ms: 1000,
            expires_at_ms: 301_000,
            result: full["result"].clone(),
            form: ReplyForm::Sse,
        };
        let s = cached_response(&e, &json!("abc"), &acl.view(agent("sentinel-9")), 11_000);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["id"], "abc");
        assert_eq!(
            names(&v),
            vec!["search_patterns", "classify_content", "read_config"]
        );
        assert_eq!(v["result"]["ttlMs"], 50_000, "age subtracted");
        assert_eq!(v["result"]["nextCursor"], "page-2");
        let a = cached_response(&e, &json!(5), &acl.view(agent("alchemy-9")), 11_000);
        assert!(!a.contains("search_patterns"), "{a}");
        // the cached entry itself is untouched
        assert_eq!(e.result["tools"].as_array().unwrap().len(), ALL.len());
    }

    #[test]
    fn answers_take_the_upstreams_form_unless_the_client_takes_only_one() {
        use ReplyForm::{Json, Sse};
        for upstream in [Json, Sse] {
            // what MCP clients send: either is fine, so the upstream's form
            assert_eq!(
                reply_form(Some("application/json, text/event-stream"), upstream),
                upstream
            );
            assert_eq!(reply_form(Some("*/*"), upstream), upstream);
            assert_eq!(reply_form(None, upstream), upstream);
            assert_eq!(reply_form(Some("text/html"), upstream), upstream);
            assert_eq!(reply_form(Some("text/event-stream"), upstream), Sse);
            assert_eq!(
                reply_form(Some("Text/Event-Stream; charset=utf-8"), upstream),
                Sse
            );
            assert_eq!(reply_form(Some("text/*"), upstream), Sse);
            assert_eq!(reply_form(Some("application/json"), upstream), Json);
            assert_eq!(reply_form(Some("application/*"), upstream), Json);
            assert_eq!(
                reply_form(Some("application/json, text/event-stream;q=0"), upstream),
                Json
            );
            assert_eq!(
                reply_form(Some("application/json; q=0, text/event-stream"), upstream),
                Sse
            );
        }
        assert_eq!(sse_message("{}"), "event: message\ndata: {}\n\n");
        // entries stored before forms were recorded read as JSON
        let old = r#"{"key":"k","storedAtMs":1,"expiresAtMs":2,"result":{}}"#;
        let e: CacheEntry = serde_json::from_str(old).unwrap();
        assert_eq!(e.form, Json);
        let sse = CacheEntry { form: Sse, ..e };
        let back: CacheEntry = serde_json::from_str(&serde_json::to_string(&sse).unwrap()).unwrap();
        assert_eq!(back.form, Sse);
    }
}
