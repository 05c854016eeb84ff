//! How the rate limiter reads a request before any window is charged:
//! which requests it skips, how a body that names no message is billed,
//! which unreadable bodies it refuses, and which answers may carry the
//! refusals it deferred (the adapter, `filters/rate-limit`, only fetches
//! the bytes these rules look at).

use crate::filter_state::decision;
use crate::protocol::a2a;

/// The tool ACL already denied this 2024-11-05 message (its decision in
/// filter state) and forwards a `ping` in its place: a denied call does not
/// use the tool's window. On Streamable HTTP a denied call never reaches
/// the rate limiter, so only that transport is concerned (and the decision
/// is read, a host call, only there).
pub fn denied_in_transit<D: AsRef<[u8]>>(
    legacy_transport: bool,
    decision_state: impl FnOnce() -> Option<D>,
) -> bool {
    legacy_transport
        && decision_state().is_some_and(|d| d.as_ref() == decision::TOOL_DENIED.as_bytes())
}

/// An empty body names no message: the request is billed by its HTTP
/// method and path (`OperationCall::from_request`), like a bodiless one.
pub fn billed_by_path(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// What becomes of a body that is not strict JSON-RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// Where JSON-RPC is expected: it could hide a counted operation from
    /// us (duplicate keys, ...), so it is refused.
    Refuse,
    /// Another upstream's POST (or the A2A REST binding): nothing here that
    /// we count; it passes untouched.
    Pass,
}

impl Unreadable {
    pub fn at(path: &str) -> Self {
        if a2a::jsonrpc_only(path) {
            Unreadable::Refuse
        } else {
            Unreadable::Pass
        }
    }
}

/// A GET stream may be a 2024-11-05 session's, where deferred refusals are
/// delivered in place of the answers they replace (the watch stops after
/// its first event when it is not). The content type is read, a host call,
/// only for an open GET.
pub fn may_carry_deferred_refusals<S: AsRef<str>>(
    http_method: &str,
    end_of_stream: bool,
    content_type: impl FnOnce() -> Option<S>,
) -> bool {
    !end_of_stream
        && http_method == "GET"
        && content_type().is_some_and(|v| v.as_ref().trim_start().starts_with("text/event-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_denied_legacy_message_is_spared() {
        let denied = || Some(decision::TOOL_DENIED);
        assert!(denied_in_transit(true, denied));
        assert!(!denied_in_transit(false, denied), "Streamable HTTP");
        assert!(!denied_in_transit(true, || None::<&str>));
        assert!(!denied_in_transit(true, || Some(decision::RATE_LIMITED)));
        let mut read = false;
        denied_in_transit(false, || {
            read = true;
            denied()
        });
        assert!(!read, "no host call off the 2024-11-05 transport");
    }

    #[test]
    fn an_empty_body_is_billed_by_its_path() {
        assert!(billed_by_path(b""));
        assert!(billed_by_path(b" \r\n\t"));
        assert!(!billed_by_path(b"{}"));
    }

    #[test]
    fn unreadable_bodies_are_refused_only_where_jsonrpc_is_expected() {
        assert_eq!(Unreadable::at("/mcp"), Unreadable::Refuse);
        assert_eq!(Unreadable::at("/mcp/tools/call?x=1"), Unreadable::Refuse);
        assert_eq!(Unreadable::at("/a2a"), Unreadable::Refuse);
        assert_eq!(Unreadable::at("/a2a/rest/message:send"), Unreadable::Pass);
        assert_eq!(Unreadable::at("/other"), Unreadable::Pass);
    }

    #[test]
    fn only_open_get_event_streams_are_watched() {
        let sse = || Some(" text/event-stream; charset=utf-8");
        assert!(may_carry_deferred_refusals("GET", false, sse));
        assert!(!may_carry_deferred_refusals("GET", true, sse));
        assert!(!may_carry_deferred_refusals("POST", false, sse));
        assert!(!may_carry_deferred_refusals("GET", false, || Some(
            "application/json"
        )));
        assert!(!may_carry_deferred_refusals("GET", false, || None::<&str>));
    }
}
