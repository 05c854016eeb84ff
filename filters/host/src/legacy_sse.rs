//! The 2024-11-05 HTTP+SSE transport: a refusal decided on a POST delivered
//! on the session's GET stream (policy and the why in
//! `gw_core::tool_acl::legacy_sse`). Shared by every filter that refuses
//! messages (tool ACL, rate limit): each keeps its own table under its own
//! shared-data key, because shared data is per `vm_id` and the four-module
//! deployment gives each filter its own VM; each filter watches the GET
//! stream for the answers it owes.

use crate::port::Host;
use crate::{body, clock, response, shared_data};
use gw_core::protocol::sse::SseEvent;
use gw_core::shared_doc::SharedDoc;
use gw_core::tool_acl::legacy_sse::{self, Pending, PendingDenials};
use gw_core::tool_acl::sse_rewrite::{self, Overflow, RawEvent, SseRewriter};
use serde_json::Value;

/// CAS attempts on the shared table.
const ATTEMPTS: usize = 8;
/// Events larger than this on a GET stream pass unexamined (no answer to a
/// ping is that large).
const MAX_WATCHED_EVENT: usize = 64 * 1024;

/// Remember `answer` for the answer to `id` on `session`'s stream and turn
/// the buffered request body (`body_len` bytes, complete) into a `ping` with
/// that id, so the upstream runs nothing and answers on the stream. `false`
/// when either step failed: the caller then refuses in the POST's own
/// response (the body is unchanged if storing failed).
pub fn defer_refusal(
    h: &mut dyn Host,
    key: &str,
    session: String,
    id: &Value,
    answer: Value,
    body_len: usize,
) -> bool {
    let now = clock::now_ms(h);
    let pending = Pending {
        session,
        id: id.clone(),
        answer,
        expires_at_ms: now.saturating_add(legacy_sse::PENDING_TTL_MS),
    };
    let stored = shared_data::update(h, key, ATTEMPTS, |current| {
        let mut table = PendingDenials::from_bytes(current);
        table.add(pending.clone(), now);
        Some(table.to_bytes())
    });
    if !stored {
        return false;
    }
    let ping = legacy_sse::ping_in_place_of(id, body_len);
    if let Err(status) = body::replace_request_body(h, body_len, &ping) {
        log::warn!("cannot replace a refused 2024-11-05 message: {status:?}");
        return false;
    }
    true
}

/// The refusal owed for this event's answer on `session`'s stream, taken
/// from the table (`None` for any other event).
pub fn take_refusal(h: &mut dyn Host, key: &str, session: &str, data: &str) -> Option<Value> {
    let id = legacy_sse::answer_id(data)?;
    let now = clock::now_ms(h);
    let (bytes, _) = shared_data::get(h, key);
    let found = PendingDenials::from_bytes(bytes.as_deref()).take(session, &id, now)?;
    let removed = shared_data::update(h, key, ATTEMPTS, |current| {
        let mut table = PendingDenials::from_bytes(current);
        table.take(session, &id, now)?;
        Some(table.to_bytes())
    });
    if !removed {
        log::debug!("pending 2024-11-05 refusal already taken or not removable");
    }
    Some(found)
}

/// `event` with its data replaced by `answer`, serialized.
pub fn replaced(event: SseEvent, answer: &Value) -> Vec<u8> {
    sse_rewrite::serialize_event(&SseEvent {
        data: answer.to_string(),
        ..event
    })
}

/// Watches one SSE response for a filter that does not otherwise read
/// streams: learns the session from the first event (`endpoint`), puts the
/// filter's refusals in place of the answers they replace, and stops
/// looking at a stream whose first event is anything else (a Streamable
/// HTTP stream) so it costs nothing further.
pub struct StreamWatch {
    key: &'static str,
    rewriter: SseRewriter,
    session: Option<String>,
    /// Still reading events (until the first one, or for ever on a
    /// 2024-11-05 stream).
    active: bool,
}

impl StreamWatch {
    pub fn new(key: &'static str) -> Self {
        Self {
            key,
            rewriter: SseRewriter::with_overflow(MAX_WATCHED_EVENT, Overflow::PassThrough),
            session: None,
            active: true,
        }
    }

    /// One response body callback: rewrites the chunk in place when an
    /// answer was replaced.
    pub fn on_body(&mut self, h: &mut dyn Host, body_size: usize, end_of_stream: bool) {
        if !self.active {
            return;
        }
        let chunk = response::body(h, body_size);
        let key = self.key;
        let mut session = self.session.take();
        let mut first_seen = session.is_some();
        let mut stop = false;
        let mut out = self.rewriter.feed(&chunk, |raw| {
            let RawEvent::Complete(bytes) = raw else {
                return None;
            };
            let event = sse_rewrite::parse_event(bytes)?;
            if !first_seen {
                first_seen = true;
                if event.event.as_deref() == Some("endpoint") {
                    session = legacy_sse::session_of(&event.data);
                }
                stop = session.is_none();
                return None;
            }
            let own = session.as_deref()?;
            let answer = take_refusal(h, key, own, &event.data)?;
            Some(replaced(event, &answer))
        });
        self.session = session;
        // Before the first event nothing is decided: keep reading.
        if stop {
            // Not a 2024-11-05 stream: what is held back goes on now, the
            // rest passes unread.
            self.active = false;
            out.extend(self.rewriter.take_pending());
        } else if end_of_stream {
            self.active = false;
            self.rewriter.finish();
        }
        if out != chunk {
            response::replace_body(h, body_size, &out);
        }
    }
}
