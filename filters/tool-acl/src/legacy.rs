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
use gw_tool_lists::LEGACY_PENDING_KEY;
use proxy_wasm::types::Action;

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
        gw_host::legacy_sse::defer_refusal(h, LEGACY_PENDING_KEY, session, &id, answer, body_len)
            .then_some(Action::Continue)
    }
}
