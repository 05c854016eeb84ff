//! The ACL's verdict on every governed message of a request body, applied
//! (its shape and protocol versions are checked in core first:
//! `request_guard::check_shape`, `ProtocolVersions::check_body`).

use crate::http::ToolAclHttp;
use gw_core::filter_state::decision;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::tool_acl::authorize::{self, Verdict};
use gw_core::tool_acl::config::ToolAclConfig;
use gw_host::port::Host;
use gw_host::{reply, state};
use proxy_wasm::types::Action;

impl ToolAclHttp {
    /// Apply the ACL's verdict; `Some` when the request was answered.
    pub(crate) fn authorize(
        &mut self,
        h: &mut dyn Host,
        config: &ToolAclConfig,
        facts: &RequestFacts,
        body_len: usize,
    ) -> Option<Action> {
        let on_operation_path = self.path_operation.is_some();
        let verdict = authorize::authorize(
            config,
            facts,
            || self.identity(h).cloned(),
            on_operation_path,
        );
        match verdict {
            Verdict::Allow => None,
            Verdict::Refuse { refusal, id } => Some(self.refuse(h, &refusal, id.as_ref())),
            Verdict::Deny { reply, first } => {
                log::info!(
                    "tool_acl: denied {} `{}` for agent `{}` ({})",
                    first.method,
                    first.tool_name,
                    first.agent_id,
                    first.reason
                );
                self.metrics.denied.inc(h);
                state::set_decision(h, decision::TOOL_DENIED);
                if let Some(action) =
                    self.deny_on_legacy_stream(h, config, facts, &reply.body, body_len)
                {
                    return Some(action);
                }
                reply::send_local(h, &reply);
                Some(Action::Pause)
            }
        }
    }
}
