//! The `tools/list` cache in Envoy shared data: one document per upstream
//! cluster (a bounded key space), read and written with CAS so that every
//! worker sees one cache. Policy (keys, TTLs, bounds) is in
//! `gw_core::tool_acl::tools_list`.

use gw_core::shared_doc::SharedDoc;
use gw_core::tool_acl::config::CacheConfig;
use gw_core::tool_acl::tools_list::{self, CacheDoc, CacheEntry, ReplyForm};
use gw_host::port::Host;
use gw_host::shared_data;
use serde_json::Value;

const CAS_ATTEMPTS: usize = 8;

/// What a cache miss remembers to store the upstream's answer.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub shared_key: String,
    pub id: Value,
    pub protocol_version: String,
    pub cursor: Option<String>,
    /// Generation seen at lookup: a list-changed in between voids the store.
    pub generation: u64,
}

/// The upstream cluster the request is routed to. Cluster (or route) names
/// come from the configuration, never from the client, so the cache's key
/// space stays bounded.
pub(crate) fn upstream(h: &mut dyn Host) -> Option<String> {
    gw_host::state::property_string(h, &["xds", "cluster_name"])
        .or_else(|| gw_host::state::property_string(h, &["route_name"]))
        .filter(|s| !s.is_empty())
}

pub(crate) fn shared_key(upstream: &str) -> String {
    format!("gw_tool_acl.tools_list.v1|{upstream}")
}

/// A fresh entry for this request (`CacheDoc::find`) and the document's
/// generation.
pub(crate) fn lookup(
    h: &mut dyn Host,
    shared_key: &str,
    protocol_version: &str,
    cursor: Option<&str>,
    agent_id: Option<&str>,
    now_ms: u64,
) -> (Option<CacheEntry>, u64) {
    let (bytes, _) = shared_data::get(h, shared_key);
    let doc = CacheDoc::from_bytes(bytes.as_deref());
    let found = doc
        .find(protocol_version, cursor, agent_id, now_ms)
        .cloned();
    (found, doc.generation)
}

/// Store the upstream's unfiltered result and the form it came in.
/// Returns whether it was stored.
pub(crate) fn store(
    h: &mut dyn Host,
    plan: &Plan,
    result: &Value,
    form: ReplyForm,
    agent_id: Option<&str>,
    config: &CacheConfig,
    now_ms: u64,
) -> bool {
    let Some(entry) = tools_list::entry_for(
        result,
        &plan.protocol_version,
        plan.cursor.as_deref(),
        agent_id,
        form,
        config.ttl_ms,
        now_ms,
    ) else {
        return false;
    };
    shared_data::update(h, &plan.shared_key, CAS_ATTEMPTS, |current| {
        CacheDoc::from_bytes(current).store_since(
            plan.generation,
            entry.clone(),
            now_ms,
            config.limits,
        )
    })
}

/// `notifications/tools/list_changed` from this upstream.
pub(crate) fn invalidate(h: &mut dyn Host, shared_key: &str) -> bool {
    shared_data::update(h, shared_key, CAS_ATTEMPTS, |current| {
        let mut doc = CacheDoc::from_bytes(current);
        doc.invalidate();
        Some(doc.to_bytes())
    })
}
