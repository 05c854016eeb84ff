//! Rewriting a Server-Sent Events stream event by event, as it passes.
//!
//! [`crate::protocol::sse::SseParser`] turns a stream into events; a filter that must
//! change some events (drop tools from a `tools/list` result) also has to
//! forward every other byte unchanged, comments and `id:`-only events
//! included, without holding the stream back. [`SseRewriter`] splits the
//! stream into raw events (up to and including their blank line), hands each
//! complete one to a callback that may replace it, and keeps only the
//! unfinished tail of the last chunk. Memory is bounded by the largest event
//! (`max_event_bytes`); a bigger event is either withheld and reported as
//! [`RawEvent::Oversized`] so the caller can fail closed, or streamed through
//! unexamined ([`Overflow::PassThrough`]) where no rewrite could be needed.

use crate::protocol::sse::{SseEvent, SseParser};

/// One event of the stream, as the callback sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum RawEvent<'a> {
    /// The event's bytes, including the blank line that ended it.
    Complete(&'a [u8]),
    /// An event over the size limit; its bytes were discarded.
    Oversized,
}

/// What happens to an event larger than `max_event_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop it and report [`RawEvent::Oversized`].
    Withhold,
    /// Forward it unexamined as it arrives.
    PassThrough,
}

#[derive(Debug)]
pub struct SseRewriter {
    pending: Vec<u8>,
    /// Bytes on the current line (0 at a line start).
    line_len: usize,
    /// The last byte was CR: an LF right after it ends the same line.
    prev_cr: bool,
    oversized: bool,
    max_event_bytes: usize,
    overflow: Overflow,
    /// Bytes to forward before the current chunk's processed output
    /// (pending bytes flushed when an event overflowed in pass-through).
    flushed: Vec<u8>,
}

impl SseRewriter {
    pub fn new(max_event_bytes: usize) -> Self {
        Self::with_overflow(max_event_bytes, Overflow::Withhold)
    }

    pub fn with_overflow(max_event_bytes: usize, overflow: Overflow) -> Self {
        Self {
            pending: Vec::new(),
            line_len: 0,
            prev_cr: false,
            oversized: false,
            max_event_bytes,
            overflow,
            flushed: Vec::new(),
        }
    }

    /// Feed a chunk; returns the bytes to forward now. `on_event` returns
    /// `Some(bytes)` to replace an event, `None` to forward it unchanged
    /// (an oversized event is dropped when it returns `None`).
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(RawEvent<'_>) -> Option<Vec<u8>>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len());
        for &b in chunk {
            if self.prev_cr && b == b'\n' {
                // Second half of a CRLF whose CR ended the line; if that CR
                // also ended an event, the LF goes out right behind it.
                self.prev_cr = false;
                if self.pending.is_empty() && !self.oversized && self.flushed.is_empty() {
                    out.push(b);
                } else {
                    self.push(b);
                }
                continue;
            }
            self.prev_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                self.push(b);
                let blank = self.line_len == 0;
                self.line_len = 0;
                if blank {
                    self.end_event(&mut out, &mut on_event);
                }
            } else {
                self.line_len += 1;
                self.push(b);
            }
        }
        out.append(&mut self.flushed);
        out
    }

    /// Stop rewriting: the bytes held back (an unfinished event) to forward
    /// as they are; the stream's remaining bytes then pass unread.
    pub fn take_pending(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.flushed);
        out.append(&mut self.pending);
        self.oversized = false;
        self.line_len = 0;
        out
    }

    /// The stream ended: an unfinished event is discarded, as clients do.
    pub fn finish(&mut self) {
        self.pending.clear();
        self.oversized = false;
        self.line_len = 0;
    }

    fn push(&mut self, b: u8) {
        if self.oversized {
            if self.overflow == Overflow::PassThrough {
                self.flushed.push(b);
            }
            return;
        }
        if self.pending.len() >= self.max_event_bytes {
            self.oversized = true;
            let pending = std::mem::take(&mut self.pending);
            if self.overflow == Overflow::PassThrough {
                self.flushed = pending;
                self.flushed.push(b);
            }
            return;
        }
        self.pending.push(b);
    }

    fn end_event(
        &mut self,
        out: &mut Vec<u8>,
        on_event: &mut impl FnMut(RawEvent<'_>) -> Option<Vec<u8>>,
    ) {
        if self.oversized {
            self.oversized = false;
            if self.overflow == Overflow::PassThrough {
                out.append(&mut self.flushed);
                return;
            }
            if let Some(replacement) = on_event(RawEvent::Oversized) {
                out.extend_from_slice(&replacement);
            }
            return;
        }
        let raw = std::mem::take(&mut self.pending);
        match on_event(RawEvent::Complete(&raw)) {
            Some(replacement) => out.extend_from_slice(&replacement),
            None => out.extend_from_slice(&raw),
        }
    }
}

/// Parse one raw event (as handed to the callback) into its fields.
pub fn parse_event(raw: &[u8]) -> Option<SseEvent> {
    let mut parser = SseParser::new(raw.len().saturating_add(1));
    let mut event = None;
    parser.feed(raw, |e| event = Some(e));
    event
}

/// Serialize an event (LF line ends, one `data:` line per data line).
pub fn serialize_event(event: &SseEvent) -> Vec<u8> {
    let mut out = String::new();
    if let Some(name) = &event.event {
        out.push_str("event: ");
        out.push_str(name);
        out.push('\n');
    }
    if let Some(id) = &event.id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if let Some(retry) = event.retry {
        out.push_str(&format!("retry: {retry}\n"));
    }
    for line in event.data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper_data(raw: RawEvent<'_>) -> Option<Vec<u8>> {
        match raw {
            RawEvent::Complete(bytes) => {
                let mut e = parse_event(bytes)?;
                if !e.data.contains("tools") {
                    return None;
                }
                e.data = e.data.to_uppercase();
                Some(serialize_event(&e))
            }
            RawEvent::Oversized => Some(b"data: too big\n\n".to_vec()),
        }
    }

    fn run(stream: &[u8], split: usize, max: usize) -> Vec<u8> {
        let mut r = SseRewriter::new(max);
        let (a, b) = stream.split_at(split);
        let mut out = r.feed(a, upper_data);
        out.extend(r.feed(b, upper_data));
        r.finish();
        out
    }

    #[test]
    fn a_rewriter_stopped_mid_event_loses_no_byte() {
        let stream = b"event: endpoint\ndata: /m?session_id=1\n\ndata: {\"a\":";
        for split in 0..=stream.len() {
            let mut r = SseRewriter::new(1024);
            let (a, b) = stream.split_at(split);
            let mut out = r.feed(a, |_| None);
            out.extend(r.take_pending());
            out.extend_from_slice(b);
            assert_eq!(out, stream, "split {split}");
        }
    }

    #[test]
    fn untouched_events_pass_byte_for_byte_at_every_split() {
        let streams: [&[u8]; 3] = [
            b": comment\n\nid: 1\n\nevent: message\ndata: {\"a\":1}\n\n",
            b"id: 1\r\ndata: x\r\n\r\n: c\r\n\r\n",
            b"data: x\r\rdata: y\r\r",
        ];
        for stream in streams {
            for split in 0..=stream.len() {
                assert_eq!(run(stream, split, 1024), stream, "split {split}");
            }
        }
    }

    #[test]
    fn matching_events_are_replaced_others_kept() {
        let stream =
            b"event: message\ndata: progress\n\nevent: message\nid: 7\ndata: {\"tools\":[]}\n\n";
        for split in 0..=stream.len() {
            let out = run(stream, split, 1024);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "event: message\ndata: progress\n\nevent: message\nid: 7\ndata: {\"TOOLS\":[]}\n\n",
                "split {split}"
            );
        }
    }

    #[test]
    fn crlf_and_cr_events_are_found() {
        for stream in [
            &b"data: {\"tools\":1}\r\n\r\n"[..],
            &b"data: {\"tools\":1}\r\r"[..],
        ] {
            for split in 0..=stream.len() {
                let out = String::from_utf8(run(stream, split, 1024)).unwrap();
                assert!(out.contains("TOOLS"), "split {split}: {out:?}");
            }
        }
    }

    #[test]
    fn nothing_is_forwarded_before_the_event_ends() {
        let mut r = SseRewriter::new(1024);
        assert!(r.feed(b"data: {\"tools\"", upper_data).is_empty());
        assert_eq!(r.feed(b":[]}\n\n", upper_data), b"data: {\"TOOLS\":[]}\n\n");
    }

    #[test]
    fn oversized_events_are_withheld_and_reported() {
        let stream = b"data: 0123456789012345678901234567890123456789\n\ndata: ok\n\n";
        let out = run(stream, 10, 16);
        assert_eq!(out, b"data: too big\n\ndata: ok\n\n");
        // dropped when the callback has no replacement
        let mut r = SseRewriter::new(16);
        let out = r.feed(stream, |e| match e {
            RawEvent::Complete(_) => None,
            RawEvent::Oversized => None,
        });
        assert_eq!(out, b"data: ok\n\n");
    }

    #[test]
    fn oversized_events_can_stream_through_unexamined() {
        let stream =
            b"data: {\"tools\":\"0123456789012345678901234567890\"}\r\n\r\ndata: {\"tools\":1}\n\n";
        for split in 0..=stream.len() {
            let mut r = SseRewriter::with_overflow(24, Overflow::PassThrough);
            let (a, b) = stream.split_at(split);
            let mut out = r.feed(a, upper_data);
            out.extend(r.feed(b, upper_data));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "data: {\"tools\":\"0123456789012345678901234567890\"}\r\n\r\ndata: {\"TOOLS\":1}\n\n",
                "split {split}"
            );
        }
        // memory stays bounded: the big event is forwarded as it arrives
        let mut r = SseRewriter::with_overflow(16, Overflow::PassThrough);
        let out = r.feed(b"data: 0123456789012345678901234", upper_data);
        assert_eq!(out, b"data: 0123456789012345678901234");
    }

    #[test]
    fn unfinished_tail_is_dropped_at_finish() {
        let mut r = SseRewriter::new(1024);
        assert!(r.feed(b"data: {\"tools\":[1]}\n", upper_data).is_empty());
        r.finish();
        assert!(r.feed(b"data: x\n\n", upper_data) == b"data: x\n\n");
    }

    #[test]
    fn serialize_round_trips() {
        let e = SseEvent {
            event: Some("message".into()),
            data: "a\nb".into(),
            id: Some("3".into()),
            retry: Some(10),
        };
        assert_eq!(parse_event(&serialize_event(&e)), Some(e));
    }
}
