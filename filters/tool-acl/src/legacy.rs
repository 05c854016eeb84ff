//! Denials on the 2024-11-05 HTTP+SSE transport: the client reads answers
//! only from its GET stream, so a denial goes there, in place of the
//! answer to a `ping` forwarded instead of the denied message
//! (`gw_core::tool_acl::legacy_sse`). Pending denials wait in one bounded
//! shared-data table for all sessions.

use crate::http::ToolAclHttp;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::tool_acl::config::ToolAclConfig;
use gw_core::tool_acl::legacy_sse;
use gw_host::port::Host;
use proxy_wasm::types::Action;
use serde_json::Value;

/// Shared data: denials on the 2024-11-05 transport waiting for their
/// stream (one bounded table for all sessions, `legacy_sse::MAX_PENDING`).
const LEGACY_PENDING_KEY: &str = "gw_tool_acl.legacy_sse_pending.v1";

impl ToolAclHttp {
    /// 2024-11-05 transport: the client reads answers only from its GET
    /// stream, so a denial in this POST's response would never be read.
    /// Forward a `ping` with the same id instead (nothing runs upstream) and
    /// leave the denial for the GET stream to put in place of the ping's
    /// answer (`legacy_sse`). `None`: not that transport (or a batch, a
    /// notification), answer here as usual.
    pub(crate) fn deny_on_legacy_stream(
        &self,
        h: &mut dyn Host,
        config: &ToolAclConfig,
        facts: &RequestFacts,
        reply_body: &str,
        body_len: usize,
    ) -> Option<Action> {
        let session = self.legacy_session.clone()?;
        let id = facts.single()?.id.clone()?;
        let answer = legacy_sse::denial_answer(reply_body, &id, config.denial.jsonrpc_code);
        let now = gw_host::clock::now_ms(h);
        let pending = legacy_sse::Pending {
            session,
            id: id.clone(),
            answer,
            expires_at_ms: now.saturating_add(legacy_sse::PENDING_TTL_MS),
        };
        let stored = gw_host::shared_data::update(h, LEGACY_PENDING_KEY, 8, |current| {
            let mut table = legacy_sse::PendingDenials::from_bytes(current);
            table.add(pending.clone(), now);
            Some(table.to_bytes())
        });
        if !stored {
            // Cannot promise the stream an answer: refuse here after all.
            return None;
        }
        let ping = legacy_sse::ping_in_place_of(&id, body_len);
        if gw_host::body::replace_request_body(h, body_len, &ping).is_err() {
            log::warn!("tool_acl: cannot replace a denied 2024-11-05 message; refusing in place");
            return None;
        }
        Some(Action::Continue)
    }

    /// On a 2024-11-05 GET stream: the denial waiting for this answer, if any.
    pub(crate) fn legacy_denial_for(&self, h: &mut dyn Host, data: &str) -> Option<Value> {
        let session = self.stream_session.as_deref()?;
        let id = legacy_sse::answer_id(data)?;
        let now = gw_host::clock::now_ms(h);
        let (bytes, _) = gw_host::shared_data::get(h, LEGACY_PENDING_KEY);
        let mut table = legacy_sse::PendingDenials::from_bytes(bytes.as_deref());
        let found = table.take(session, &id, now)?;
        let removed = gw_host::shared_data::update(h, LEGACY_PENDING_KEY, 8, |current| {
            let mut table = legacy_sse::PendingDenials::from_bytes(current);
            table.take(session, &id, now)?;
            Some(table.to_bytes())
        });
        if !removed {
            log::debug!("tool_acl: pending 2024-11-05 denial already taken or not removable");
        }
        Some(found)
    }
}
