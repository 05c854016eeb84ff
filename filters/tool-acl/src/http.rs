//! One request through the tool ACL.
//!
//! Request: headers are checked (content type, encoding, declared size)
//! and passed on, or held too with `holdRequestHeaders`; the body is held
//! (`Pause`) until complete, so nothing of it reaches the upstream before
//! the decision. Then: parse once (or reuse
//! the facts an earlier filter published), refuse what cannot be judged,
//! decide every governed message, answer a cacheable `tools/list` locally.
//!
//! Response: a JSON answer to a `tools/list` is buffered (bounded) and
//! rewritten; every SSE stream under an MCP endpoint is rewritten event by
//! event as it passes (tool lists filtered, `list_changed` seen).
//! The answer side is `gw_tool_lists::ListAnswers`'s (`filters/tool-lists`).

use crate::Metrics;
use gw_a2a_acl::{A2aStage, Outbox};
use gw_core::filter_state::decision;
use gw_core::protocol::operation::Operation;
use gw_core::protocol::request_facts::VerifiedIdentity;
use gw_core::tool_acl::config::ToolAclConfig;
use gw_core::tool_acl::denial::jsonrpc_error_response;
use gw_core::tool_acl::legacy_sse;
use gw_core::tool_acl::request_guard::{self, Refusal};
use gw_core::tool_acl::versions::VersionRefusal;
use gw_host::filter::Filter;
use gw_host::port::Host;
use gw_host::{reply, state};
use gw_tool_lists::{IdentityMemo, ListAnswers, ListRequest};
use proxy_wasm::types::Action;
use serde_json::{json, Value};
use std::rc::Rc;

/// JSON-RPC "internal error", for responses the gateway cannot filter.
pub(crate) use gw_core::protocol::jsonrpc::codes::INTERNAL_ERROR;

pub(crate) struct ToolAclHttp {
    pub(crate) config: Option<Rc<ToolAclConfig>>,
    pub(crate) metrics: Rc<Metrics>,
    /// The request is under an MCP endpoint.
    pub(crate) governed: bool,
    /// The request has a body to inspect.
    pub(crate) inspect_body: bool,
    /// The recipe per-operation path's operation (`/mcp/tools/call`): picks
    /// the denial format in `auto` mode.
    pub(crate) path_operation: Option<Operation>,
    pub(crate) identity: IdentityMemo,
    /// The answer side: lists filtered, the cache (`gw_tool_lists`).
    pub(crate) lists: ListAnswers,
    /// The 2024-11-05 transport's session, when this is a POST to its
    /// messages URL (`legacy_sse`): answers go to the GET stream.
    pub(crate) legacy_session: Option<String>,
    /// Request headers the body phase needs (Envoy makes request headers
    /// readable only during `on_http_request_headers` once it continued).
    pub(crate) headers: RequestHeaders,
    /// An A2A request (`a2a:` configured): the A2A stage handles it whole.
    pub(crate) a2a: Option<A2aStage>,
    /// Task owners waiting for the root's tick (shared with the root).
    pub(crate) outbox: Outbox,
}

#[derive(Default)]
pub(crate) struct RequestHeaders {
    pub(crate) mcp_method: Option<String>,
    pub(crate) mcp_name: Option<String>,
    pub(crate) protocol_version: Option<String>,
    pub(crate) accept: Option<String>,
}

impl ToolAclHttp {
    pub(crate) fn new(
        config: Option<Rc<ToolAclConfig>>,
        metrics: Rc<Metrics>,
        outbox: Outbox,
    ) -> Self {
        let lists = ListAnswers::new(metrics.lists());
        Self {
            config,
            metrics,
            governed: false,
            inspect_body: false,
            path_operation: None,
            identity: IdentityMemo::default(),
            lists,
            headers: RequestHeaders::default(),
            legacy_session: None,
            a2a: None,
            outbox,
        }
    }

    /// The verified identity from filter state (never from a header).
    pub(crate) fn identity(&mut self, h: &mut dyn Host) -> Option<&VerifiedIdentity> {
        self.identity.get(h, self.metrics.no_identity)
    }

    pub(crate) fn refuse(&self, h: &mut dyn Host, refusal: &Refusal, id: Option<&Value>) -> Action {
        self.metrics.bad_request.inc(h);
        state::set_decision(h, decision::BAD_REQUEST);
        let body = jsonrpc_error_response(
            id,
            json!({"code": refusal.jsonrpc_code, "message": refusal.message}),
        );
        reply::send(
            h,
            u32::from(refusal.http_status),
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        Action::Pause
    }

    /// Version pinning: the protocol's error, before the upstream.
    pub(crate) fn refuse_version(
        &self,
        h: &mut dyn Host,
        refusal: VersionRefusal,
        id: Option<&Value>,
    ) -> Action {
        self.metrics.version_refused.inc(h);
        self.metrics.bad_request.inc(h);
        state::set_decision(h, decision::BAD_REQUEST);
        let body = jsonrpc_error_response(id, refusal.error);
        reply::send(
            h,
            u32::from(refusal.http_status),
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        Action::Pause
    }

    pub(crate) fn fail_closed(&self, h: &mut dyn Host) -> Action {
        self.refuse(
            h,
            &Refusal::new(500, INTERNAL_ERROR, "tool ACL is not configured"),
            None,
        )
    }
}

impl Filter for ToolAclHttp {
    fn call_response(
        &mut self,
        h: &mut dyn Host,
        token: u32,
        _: usize,
        body_size: usize,
        _: usize,
    ) {
        // Only the A2A stage calls out (the task owner store, Redis).
        if let Some(a2a) = self.a2a.as_mut() {
            a2a.on_call_response(h, token, body_size);
        }
    }

    fn request_headers(&mut self, h: &mut dyn Host, _: usize, end_of_stream: bool) -> Action {
        self.metrics.requests.inc(h);
        let Some(config) = self.config.clone() else {
            return self.fail_closed(h);
        };
        // One host call for every header we need. Repeated headers are
        // joined, so a second Content-Encoding or Mcp-Name cannot hide
        // behind a first one that looks fine.
        let all = gw_host::headers::request_headers(h);
        let header = |name: &str| gw_core::protocol::http::joined_header(&all, name);
        if let Some((stage, action)) = A2aStage::start(
            h,
            &config,
            self.metrics.a2a(),
            &self.outbox,
            &all,
            end_of_stream,
        ) {
            self.a2a = Some(stage);
            return action;
        }
        let path = header(":path").unwrap_or_default();
        let canonical = request_guard::canonical_path(&path);
        let Some(endpoint) = config
            .endpoints
            .iter()
            .find(|e| request_guard::is_under(&canonical, e))
        else {
            return Action::Continue;
        };
        self.governed = true;
        self.legacy_session = legacy_sse::session_of(&path);
        self.path_operation = request_guard::path_operation(&canonical, endpoint);
        self.metrics.inspected.inc(h);
        // Tool lists in the answer are filtered here, so the answer must
        // be readable: ask the upstream for an uncompressed one (an answer
        // compressed anyway is refused, never passed on unfiltered).
        if header("accept-encoding").is_some() {
            gw_host::headers::remove_request_header(h, "accept-encoding");
        }
        // Version pinning. A header is judged now, whatever the request; a
        // request without one is judged as 2025-03-26 (what servers must
        // assume), except an `initialize`, known only once the body is read.
        let protocol_version = header("mcp-protocol-version");
        if let Err(r) = config
            .protocol_versions
            .check_header(protocol_version.as_deref(), !end_of_stream)
        {
            return self.refuse_version(h, r, None);
        }
        if end_of_stream {
            // No body (GET of the SSE stream, DELETE of a session): nothing
            // names a tool; the response side still filters SSE streams.
            self.lists.set_stream_path(path);
            return Action::Continue;
        }
        if let Err(r) = request_guard::check_content_encoding(header("content-encoding").as_deref())
        {
            return self.refuse(h, &r, None);
        }
        if let Err(r) = request_guard::check_content_type(header("content-type").as_deref()) {
            return self.refuse(h, &r, None);
        }
        if let Some(declared) =
            header("content-length").and_then(|v| v.trim().parse::<usize>().ok())
        {
            if let Err(r) = request_guard::check_body_size(declared, config.max_body_bytes) {
                return self.refuse(h, &r, None);
            }
        }
        self.headers = RequestHeaders {
            mcp_method: header("mcp-method"),
            mcp_name: header("mcp-name"),
            protocol_version,
            accept: header("accept"),
        };
        self.inspect_body = true;
        if config.hold_request_headers {
            // StopIteration (with allow_on_headers_stop_iteration): the body
            // callbacks still run, and the Continue that ends them releases
            // headers and body together.
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn request_body(&mut self, h: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(a2a) = self.a2a.as_mut() {
            return a2a.on_request_body(h, body_size, end_of_stream);
        }
        if !self.inspect_body {
            return Action::Continue;
        }
        let Some(config) = self.config.clone() else {
            return self.fail_closed(h);
        };
        if let Err(r) = request_guard::check_body_size(body_size, config.max_body_bytes) {
            self.inspect_body = false;
            return self.refuse(h, &r, None);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.inspect_body = false;
        let body = gw_host::body::request_body(h, body_size);
        let (facts, parsed) = match gw_host::body::inspect_request(h, &body) {
            Ok(found) => found,
            Err(e) => {
                return self.refuse(h, &Refusal::new(400, e.jsonrpc_code(), e.to_string()), None);
            }
        };
        let single_id = facts.single().and_then(|m| m.id.clone());
        let shape = request_guard::check_shape(
            config.batches,
            self.headers.mcp_method.as_deref(),
            self.headers.mcp_name.as_deref(),
            &facts,
        );
        if let Err(r) = shape {
            return self.refuse(h, &r, single_id.as_ref());
        }
        let has_version = self.headers.protocol_version.is_some();
        let versions =
            config
                .protocol_versions
                .check_body(has_version, &facts, parsed.as_ref(), &body);
        if let Err(r) = versions {
            return self.refuse_version(h, r, single_id.as_ref());
        }
        if let Some(action) = self.authorize(h, &config, &facts, body.len()) {
            return action;
        }
        self.metrics.allowed.inc(h);
        // The last use of these headers: moved, not copied.
        let request = ListRequest {
            facts: &facts,
            parsed,
            body: &body,
            protocol_version: self.headers.protocol_version.take(),
            accept: self.headers.accept.take(),
            legacy: self.legacy_session.is_some(),
        };
        let who = &mut self.identity;
        self.lists.prepare(h, &config, who, request)
    }

    fn response_headers(&mut self, h: &mut dyn Host, _: usize, _end_of_stream: bool) -> Action {
        if let Some(a2a) = self.a2a.as_mut() {
            return a2a.on_response_headers(h);
        }
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        if !self.governed || config.filtered_lists().is_empty() {
            return Action::Continue;
        }
        self.lists.on_response_headers(h, &config)
    }

    fn response_body(&mut self, h: &mut dyn Host, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(a2a) = self.a2a.as_mut() {
            return a2a.on_response_body(h, body_size, end_of_stream);
        }
        let Some(config) = self.config.clone() else {
            return Action::Continue;
        };
        let who = &mut self.identity;
        self.lists
            .on_response_body(h, &config, who, body_size, end_of_stream)
    }
}
