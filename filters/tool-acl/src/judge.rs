//! Judging a request body: its shape (batches, Mcp-* headers), its
//! protocol versions, and the ACL's verdict on every governed message.

use crate::http::ToolAclHttp;
use gw_core::filter_state::decision;
use gw_core::protocol::jsonrpc;
use gw_core::protocol::operation::Operation;
use gw_core::protocol::request_facts::RequestFacts;
use gw_core::tool_acl::authorize::{self, Verdict};
use gw_core::tool_acl::config::{BatchPolicy, ToolAclConfig};
use gw_core::tool_acl::request_guard::{self, Refusal, INVALID_REQUEST};
use gw_core::tool_acl::versions::VersionRefusal;
use gw_host::port::Host;
use gw_host::{reply, state};
use proxy_wasm::types::Action;

impl ToolAclHttp {
    /// Everything but the ACL itself: batches, Mcp-* headers. (A recipe
    /// per-operation path does not have to agree with the body's method: the
    /// ACL judges the body, which is what the server executes.)
    pub(crate) fn check_shape(
        &self,
        config: &ToolAclConfig,
        facts: &RequestFacts,
    ) -> Result<(), Refusal> {
        if facts.batch && config.batches == BatchPolicy::Reject {
            return Err(Refusal::new(
                400,
                INVALID_REQUEST,
                "JSON-RPC batches are not accepted",
            ));
        }
        request_guard::check_mcp_headers(
            self.headers.mcp_method.as_deref(),
            self.headers.mcp_name.as_deref(),
            facts,
        )
    }

    /// Version pinning of a request with a body: without a header, only an
    /// `initialize` may leave it out; every `initialize` must ask for a
    /// listed revision.
    pub(crate) fn check_versions(
        &self,
        config: &ToolAclConfig,
        facts: &RequestFacts,
        parsed: Option<&jsonrpc::JsonRpcBody>,
        body: &[u8],
    ) -> Result<(), VersionRefusal> {
        let is_initialize = |op: Option<Operation>| op == Some(Operation::McpInitialize);
        let initializing = facts.single().is_some_and(|m| is_initialize(m.operation()));
        if self.headers.protocol_version.is_none() {
            config.protocol_versions.check_header(None, initializing)?;
        }
        if !facts.messages.iter().any(|m| is_initialize(m.operation())) {
            return Ok(());
        }
        // The facts carry no params; an earlier filter may have parsed the
        // body already, then parse it again (initialize is rare and small).
        let reparsed;
        let parsed = match parsed {
            Some(p) => p,
            None => match jsonrpc::parse(body) {
                Ok(p) => {
                    reparsed = p;
                    &reparsed
                }
                // The earlier filter parsed it strictly, so this cannot
                // happen; fail closed as an initialize naming no version.
                Err(_) => return config.protocol_versions.check_initialize(None),
            },
        };
        for m in parsed.messages() {
            if m.method() == Some("initialize") {
                config.protocol_versions.check_initialize(m.params())?;
            }
        }
        Ok(())
    }

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
