//! Commands for webdis, the HTTP front of Redis that every Redis-backed
//! store of the gateway reaches through Envoy's `dispatch_http_call` (the
//! rate limiter's windows, `rate_limit::redis`; the A2A task owners,
//! `a2a_acl::owner_store`). A command is its name and arguments as path
//! segments, sent as the body of a POST.

use std::fmt::Write as _;

/// Append `/segment`, percent-encoded: keys, agent ids and task ids are the
/// client's or the identity's, so anything but unreserved characters is
/// escaped (a `/` or `%` in a task id must not split or alter the command).
pub fn push_segment(out: &mut String, segment: &str) {
    out.push('/');
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped() {
        let mut out = String::from("EVAL");
        push_segment(&mut out, "return 1");
        push_segment(&mut out, "t/1%2F?x");
        push_segment(&mut out, "a-b_c.d~");
        assert_eq!(out, "EVAL/return%201/t%2F1%252F%3Fx/a-b_c.d~");
    }
}
