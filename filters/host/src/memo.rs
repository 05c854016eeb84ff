//! What one request's stages already read from or wrote to the host, kept
//! for the next stage: in the one-module chain (`filters/gateway`) the
//! request headers are read once for all stages, and filter state one
//! stage sets is read back by the next without a host round trip (each
//! data-returning host call costs a few µs: docs/benchmarks.md).
//!
//! The chain installs its request's memo around every call into a stage
//! ([`with_memo`]); the helpers in [`crate::headers`] and [`crate::state`]
//! consult it. Standalone filters have no memo and always ask the host.
//! Writes always go to the host too: Envoy, its access log and anything
//! after the chain see exactly what they would see without the memo.

use std::cell::RefCell;

#[derive(Debug, Default)]
pub struct RequestMemo {
    /// The request headers as the stages have left them.
    request_headers: Option<Vec<(String, String)>>,
    /// Filter state set by a stage of this request (`wasm.<key>`).
    state: Vec<(String, Vec<u8>)>,
}

thread_local! {
    static ACTIVE: RefCell<Option<RequestMemo>> = const { RefCell::new(None) };
}

/// Run `f` with `memo` as the current request's memo.
pub fn with_memo<T>(memo: &mut RequestMemo, f: impl FnOnce() -> T) -> T {
    ACTIVE.with(|a| *a.borrow_mut() = Some(std::mem::take(memo)));
    let out = f();
    *memo = ACTIVE.with(|a| a.borrow_mut().take()).unwrap_or_default();
    out
}

fn active<T>(f: impl FnOnce(&mut RequestMemo) -> T) -> Option<T> {
    ACTIVE.with(|a| a.borrow_mut().as_mut().map(f))
}

/// `f` of the request headers: from the memo, else read with `read` (once,
/// then kept). None when no memo is installed.
pub(crate) fn with_request_headers<T>(
    read: impl FnOnce() -> Vec<(String, String)>,
    f: impl FnOnce(&[(String, String)]) -> T,
) -> Option<T> {
    active(|m| {
        let headers = m.request_headers.get_or_insert_with(read);
        f(headers)
    })
}

/// The request headers (a copy; see [`with_request_headers`]).
pub(crate) fn request_headers(
    read: impl FnOnce() -> Vec<(String, String)>,
) -> Option<Vec<(String, String)>> {
    with_request_headers(read, <[(String, String)]>::to_vec)
}

/// A request header was replaced (`Some`) or removed (`None`).
pub(crate) fn request_header_changed(name: &str, value: Option<&str>) {
    active(|m| {
        if let Some(headers) = m.request_headers.as_mut() {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            if let Some(value) = value {
                headers.push((name.to_ascii_lowercase(), value.to_string()));
            }
        }
    });
}

/// Filter state set by a stage of this request (None: not set through us).
pub(crate) fn state(key: &str) -> Option<Vec<u8>> {
    active(|m| {
        m.state
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    })
    .flatten()
}

pub(crate) fn set_state(key: &str, value: &[u8]) {
    active(|m| {
        m.state.retain(|(k, _)| k != key);
        m.state.push((key.to_string(), value.to_vec()));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_memo_nothing_is_kept() {
        assert_eq!(request_headers(Vec::new), None);
        set_state("k", b"v");
        assert_eq!(state("k"), None);
    }

    #[test]
    fn headers_are_read_once_and_follow_changes() {
        let mut memo = RequestMemo::default();
        let reads = std::cell::Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            vec![(":path".to_string(), "/mcp".to_string())]
        };
        with_memo(&mut memo, || {
            assert_eq!(request_headers(read).unwrap().len(), 1);
            assert_eq!(request_headers(read).unwrap().len(), 1);
            request_header_changed("X-Verified-Agent-Id", Some("a-1"));
            request_header_changed(":path", None);
        });
        assert_eq!(reads.get(), 1);
        with_memo(&mut memo, || {
            let headers = request_headers(read).unwrap();
            assert_eq!(headers, [("x-verified-agent-id".into(), "a-1".into())]);
        });
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn state_set_by_a_stage_is_read_back() {
        let mut memo = RequestMemo::default();
        with_memo(&mut memo, || set_state("gw_identity", b"{}"));
        with_memo(&mut memo, || {
            assert_eq!(state("gw_identity").as_deref(), Some(&b"{}"[..]));
            assert_eq!(state("other"), None);
        });
    }
}
