//! Task isolation: which verified agent created each task.
//!
//! The gateway reads task ids from the agent's answers to sends and streams
//! (JSON and SSE, both bindings, every version: [`task_ids_in`]) and
//! remembers the caller as the task's owner. Later requests about a task
//! (get, cancel, subscribe, push config, a send continuing it) by any other
//! agent get the protocol's task-not-found error, and `ListTasks` answers
//! are cut down to the caller's own tasks ([`filter_list`]).
//!
//! Memory is bounded and shared by every Envoy worker: the table is split
//! into [`SHARDS`] shared-data entries by a hash of the task id, each a
//! small JSON list of `(task, owner, expiresAtMs)` holding at most
//! `maxTasks / SHARDS` entries. Writes are compare-and-swap updates of one
//! shard; expired entries are dropped on write, and a full shard drops the
//! entry closest to expiry. A task the table no longer (or never) knew is
//! treated as nobody's: see `docs/a2a.md` for why the gateway refuses it.

use crate::shared_doc::SharedDoc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Number of shared-data entries the table is split into.
pub const SHARDS: u64 = 256;
/// Shared-data key prefix (a shard's key ends with its number).
pub const KEY_PREFIX: &str = "gw_a2a_tasks.v1.";
/// Longest task id remembered (a longer one is never recorded, so it
/// cannot be used to blow up a shard; the a2a-sdk's ids are UUIDs).
pub const MAX_TASK_ID_BYTES: usize = 256;

/// FNV-1a, stable across workers and builds.
fn hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The shared-data key of the shard holding `task_id`.
pub fn shard_key(task_id: &str) -> String {
    format!("{KEY_PREFIX}{}", hash(task_id) % SHARDS)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(rename = "t")]
    pub task: String,
    #[serde(rename = "o")]
    pub owner: String,
    #[serde(rename = "e")]
    pub expires_at_ms: u64,
}

/// One shard of the ownership table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    entries: Vec<Entry>,
}

impl SharedDoc for Shard {}

impl Shard {
    /// The owner of `task_id`, if known and not expired.
    pub fn owner(&self, task_id: &str, now_ms: u64) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.task == task_id && e.expires_at_ms > now_ms)
            .map(|e| e.owner.as_str())
    }

    /// Record `owner` for `task_id` unless the task is already known (the
    /// first agent seen with a task keeps it). Returns whether the shard
    /// changed.
    pub fn record(
        &mut self,
        task_id: &str,
        owner: &str,
        now_ms: u64,
        ttl_ms: u64,
        max_entries: usize,
    ) -> bool {
        if task_id.is_empty() || task_id.len() > MAX_TASK_ID_BYTES || max_entries == 0 {
            return false;
        }
        if self.owner(task_id, now_ms).is_some() {
            return false;
        }
        self.entries
            .retain(|e| e.expires_at_ms > now_ms && e.task != task_id);
        while self.entries.len() >= max_entries {
            // Full: drop the entry closest to expiry (the oldest).
            let Some((i, _)) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.expires_at_ms)
            else {
                break;
            };
            self.entries.remove(i);
        }
        self.entries.push(Entry {
            task: task_id.to_string(),
            owner: owner.to_string(),
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        });
        true
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Entries per shard for a table of `max_tasks`.
pub fn per_shard(max_tasks: usize) -> usize {
    let shards = usize::try_from(SHARDS).unwrap_or(256);
    max_tasks.div_ceil(shards).max(1)
}

/// The object an answer carries: a JSON-RPC response's `result` (or
/// nothing, for an error), a REST body as it is.
fn payload(v: &Value) -> Option<&Value> {
    if v.get("jsonrpc").is_some() {
        return v.get("result");
    }
    Some(v)
}

/// Task ids in one answer of a send or stream (a JSON body, or one SSE
/// event's data): 1.0 `{"task": {"id"}}`, `{"statusUpdate": {"taskId"}}`,
/// `{"artifactUpdate": {"taskId"}}`, `{"message": {"taskId"}}`; 0.3
/// `{"kind": "task", "id"}`, `{"kind": "status-update", "taskId"}`, ...
pub fn task_ids_in(answer: &Value) -> Vec<String> {
    let Some(p) = payload(answer) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str) {
            if !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        }
    };
    push(p.get("task").and_then(|t| t.get("id")));
    for member in ["statusUpdate", "artifactUpdate", "message"] {
        push(p.get(member).and_then(|m| m.get("taskId")));
    }
    match p.get("kind").and_then(Value::as_str) {
        Some("task") => push(p.get("id")),
        Some("status-update" | "artifact-update" | "message") => push(p.get("taskId")),
        _ => {}
    }
    out
}

/// What filtering a list answer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    pub body: String,
    pub removed: usize,
}

/// Cut a `ListTasks` / `tasks/list` answer (JSON-RPC `result`, or the REST
/// body) down to the tasks `visible` accepts. `totalSize`, when present,
/// is lowered by what was removed. `None`: not a task list (an error, or
/// not JSON); the caller decides what to do with it.
pub fn filter_list(body: &[u8], mut visible: impl FnMut(&str) -> bool) -> Option<Filtered> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let is_rpc = v.get("jsonrpc").is_some();
    let list = if is_rpc { v.get_mut("result")? } else { &mut v };
    let tasks = match list {
        // 0.3 implementations answered a bare array.
        Value::Array(a) => a,
        Value::Object(o) => o.get_mut("tasks")?.as_array_mut()?,
        _ => return None,
    };
    let before = tasks.len();
    tasks.retain(|t| {
        t.get("id")
            .and_then(Value::as_str)
            .is_some_and(&mut visible)
    });
    let removed = before - tasks.len();
    if let Value::Object(o) = list {
        if let Some(total) = o.get("totalSize").and_then(Value::as_u64) {
            let kept = total.saturating_sub(removed as u64);
            o.insert("totalSize".into(), Value::from(kept));
        }
    }
    Some(Filtered {
        body: v.to_string(),
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_owner_keeps_the_task() {
        let mut s = Shard::default();
        assert!(s.record("t1", "sentinel-1", 0, 1000, 4));
        assert!(!s.record("t1", "alchemy-1", 10, 1000, 4));
        assert_eq!(s.owner("t1", 10), Some("sentinel-1"));
        assert_eq!(s.owner("t2", 10), None);
        let back = Shard::from_bytes(Some(&s.to_bytes()));
        assert_eq!(back, s);
        assert_eq!(Shard::from_bytes(Some(b"junk")), Shard::default());
    }

    #[test]
    fn expiry_and_bound() {
        let mut s = Shard::default();
        s.record("t1", "a", 0, 100, 2);
        assert_eq!(s.owner("t1", 99), Some("a"));
        assert_eq!(s.owner("t1", 100), None);
        // Expired: a new owner may take it (the id was reused upstream).
        assert!(s.record("t1", "b", 100, 100, 2));
        assert_eq!(s.owner("t1", 150), Some("b"));
        s.record("t2", "a", 110, 100, 2);
        s.record("t3", "a", 120, 100, 2);
        assert_eq!(s.len(), 2);
        // The oldest went.
        assert_eq!(s.owner("t1", 150), None);
        assert_eq!(s.owner("t3", 150), Some("a"));
        assert!(!s.record("", "a", 0, 1, 2));
        assert!(!s.record(&"x".repeat(MAX_TASK_ID_BYTES + 1), "a", 0, 1, 2));
        assert_eq!(per_shard(50_000), 196);
        assert_eq!(per_shard(1), 1);
    }

    #[test]
    fn shard_keys_are_stable_and_spread() {
        assert_eq!(shard_key("abc"), shard_key("abc"));
        let keys: std::collections::HashSet<String> =
            (0..1000).map(|i| shard_key(&format!("task-{i}"))).collect();
        assert!(keys.len() > 200, "{}", keys.len());
        assert!(keys.iter().all(|k| k.starts_with(KEY_PREFIX)));
    }

    #[test]
    fn task_ids_of_every_binding_and_version() {
        let cases = [
            // 1.0 JSON-RPC send / stream events
            (
                json!({"jsonrpc": "2.0", "id": 1, "result": {"task": {"id": "a"}}}),
                vec!["a"],
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "result": {"statusUpdate": {"taskId": "b"}}}),
                vec!["b"],
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "result": {"artifactUpdate": {"taskId": "c"}}}),
                vec!["c"],
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "result": {"message": {"taskId": "d"}}}),
                vec!["d"],
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "result": {"message": {"messageId": "m"}}}),
                vec![],
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -1}}),
                vec![],
            ),
            // REST bodies and stream events
            (json!({"task": {"id": "e", "status": {}}}), vec!["e"]),
            (json!({"statusUpdate": {"taskId": "f"}}), vec!["f"]),
            // 0.3
            (
                json!({"jsonrpc": "2.0", "id": 1, "result": {"kind": "task", "id": "g"}}),
                vec!["g"],
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "result": {"kind": "status-update", "taskId": "h"}}),
                vec!["h"],
            ),
            (json!({"kind": "artifact-update", "taskId": "i"}), vec!["i"]),
            (json!({"kind": "message", "taskId": "j"}), vec!["j"]),
        ];
        for (answer, want) in cases {
            assert_eq!(task_ids_in(&answer), want, "{answer}");
        }
    }

    #[test]
    fn lists_are_cut_to_visible_tasks() {
        let mine = |id: &str| id.starts_with("mine");
        let rest = br#"{"tasks":[{"id":"mine-1"},{"id":"theirs"},{"id":"mine-2"},{"x":1}],"totalSize":4,"pageSize":50}"#;
        let f = filter_list(rest, mine).unwrap();
        assert_eq!(f.removed, 2);
        let v: Value = serde_json::from_str(&f.body).unwrap();
        assert_eq!(v["tasks"], json!([{"id": "mine-1"}, {"id": "mine-2"}]));
        assert_eq!(v["totalSize"], 2);
        assert_eq!(v["pageSize"], 50);
        let rpc = br#"{"jsonrpc":"2.0","id":3,"result":{"tasks":[{"id":"theirs"}]}}"#;
        let v: Value = serde_json::from_str(&filter_list(rpc, mine).unwrap().body).unwrap();
        assert_eq!(v["result"]["tasks"], json!([]));
        assert_eq!(v["id"], 3);
        let bare = br#"{"jsonrpc":"2.0","id":3,"result":[{"id":"mine-3"},{"id":"theirs"}]}"#;
        let v: Value = serde_json::from_str(&filter_list(bare, mine).unwrap().body).unwrap();
        assert_eq!(v["result"], json!([{"id": "mine-3"}]));
        assert!(filter_list(br#"{"jsonrpc":"2.0","id":3,"error":{}}"#, mine).is_none());
        assert!(filter_list(b"not json", mine).is_none());
    }
}
