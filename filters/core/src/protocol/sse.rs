//! Incremental Server-Sent Events parser (WHATWG HTML "event stream
//! interpretation"), fed with response body chunks as they pass through.
//!
//! The filters never buffer an SSE response: each chunk is forwarded at once
//! and also fed here, and complete events come out as soon as their blank
//! line arrives. Lines may end in LF, CRLF or CR, and a CRLF may be split
//! across two chunks. A single event larger than `max_event_bytes` is
//! dropped (and counted) rather than growing memory without bound.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// `event:` field; `None` means the default type `message`.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
    /// `id:` field of this event, if it had one.
    pub id: Option<String>,
    pub retry: Option<u64>,
}

#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    /// Bytes seen on the current line, even while skipping an oversized event.
    line_len: usize,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    /// The previous chunk ended in CR: a leading LF belongs to that line end.
    after_cr: bool,
    /// Bytes of the current event so far (line + data).
    pending_bytes: usize,
    /// The current event overflowed: skip it until its blank line.
    skipping: bool,
    max_event_bytes: usize,
    oversized_events: u64,
    last_event_id: Option<String>,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            line_len: 0,
            data: Vec::new(),
            has_data: false,
            event: None,
            id: None,
            retry: None,
            after_cr: false,
            pending_bytes: 0,
            skipping: false,
            max_event_bytes,
            oversized_events: 0,
            last_event_id: None,
        }
    }

    /// Events that were dropped because they exceeded `max_event_bytes`.
    pub fn oversized_events(&self) -> u64 {
        self.oversized_events
    }

    /// The stream's last event id (what a client would resume from).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Feed one body chunk; `emit` receives each event completed by it.
    pub fn feed(&mut self, chunk: &[u8], mut emit: impl FnMut(SseEvent)) {
        let mut rest = chunk;
        // An empty chunk (Envoy sends them, e.g. with end_of_stream) must not
        // forget a CR that ended the previous one.
        if rest.is_empty() {
            return;
        }
        if self.after_cr {
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
            self.after_cr = false;
        }
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.append_line(rest);
                    return;
                }
                Some(pos) => {
                    let (part, tail) = rest.split_at(pos);
                    self.append_line(part);
                    let was_cr = tail.first() == Some(&b'\r');
                    rest = tail.get(1..).unwrap_or(&[]);
                    if was_cr {
                        match rest.first() {
                            Some(b'\n') => rest = rest.get(1..).unwrap_or(&[]),
                            None => self.after_cr = true,
                            Some(_) => {}
                        }
                    }
                    self.end_line(&mut emit);
                }
            }
        }
    }

    /// The stream ended. Per the spec an event without its blank line is
    /// discarded; we do the same.
    pub fn finish(&mut self) {
        self.reset_event();
        self.line.clear();
        self.line_len = 0;
    }

    fn append_line(&mut self, bytes: &[u8]) {
        self.line_len += bytes.len();
        if self.skipping {
            return;
        }
        self.pending_bytes += bytes.len();
        if self.pending_bytes > self.max_event_bytes {
            self.skipping = true;
            self.oversized_events += 1;
            self.line.clear();
            self.data.clear();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, emit: &mut impl FnMut(SseEvent)) {
        let blank = std::mem::take(&mut self.line_len) == 0;
        if self.skipping {
            // A blank line ends the oversized event; anything else is still part of it.
            if blank {
                self.reset_event();
            }
            self.line.clear();
            return;
        }
        if blank {
            self.dispatch(emit);
            return;
        }
        let line = std::mem::take(&mut self.line);
        self.process_field(&line);
    }

    fn process_field(&mut self, line: &[u8]) {
        if line.first() == Some(&b':') {
            return; // comment
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (name, value) = line.split_at(colon);
                let value = value.get(1..).unwrap_or(&[]);
                (name, value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                let id = String::from_utf8_lossy(value).into_owned();
                self.last_event_id = Some(id.clone());
                self.id = Some(id);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, emit: &mut impl FnMut(SseEvent)) {
        if self.has_data {
            emit(SseEvent {
                event: self.event.take(),
                data: String::from_utf8_lossy(&self.data).into_owned(),
                id: self.id.take(),
                retry: self.retry.take(),
            });
        }
        self.reset_event();
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.has_data = false;
        self.event = None;
        self.id = None;
        self.retry = None;
        self.pending_bytes = 0;
        self.skipping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new(1 << 20);
        let mut events = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |e| events.push(e));
        }
        events
    }

    #[test]
    fn mcp_result_after_progress_notifications() {
        let stream = b"event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"isError\":false}}\n\n";
        let events = parse_chunks(&[stream]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id.as_deref(), Some("1"));
        assert_eq!(events[1].event.as_deref(), Some("message"));
        assert!(events[1].data.contains("\"id\":7"));
    }

    #[test]
    fn every_line_ending_and_every_split_point() {
        let lf = b"data: a\ndata: b\n\n: comment\ndata:c\n\n".to_vec();
        let crlf = b"data: a\r\ndata: b\r\n\r\n: comment\r\ndata:c\r\n\r\n".to_vec();
        let cr = b"data: a\rdata: b\r\r: comment\rdata:c\r\r".to_vec();
        for stream in [lf, crlf, cr] {
            for split in 0..=stream.len() {
                let (a, b) = stream.split_at(split);
                let events = parse_chunks(&[a, b]);
                let data: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
                assert_eq!(
                    data,
                    ["a\nb", "c"],
                    "split at {split} of {:?}",
                    String::from_utf8_lossy(&stream)
                );
            }
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(parse_chunks(&bytes).len(), 2);
        }
    }

    #[test]
    fn empty_chunk_between_cr_and_lf_keeps_the_line_ending_whole() {
        // Found by the chunking property test: "\r" | "" | "\n" read as two
        // line ends, i.e. a blank line that dispatched a phantom event.
        let events = parse_chunks(&[b"data:\r", b"", b"\nx: y\r\n"]);
        assert_eq!(events, vec![]);
    }

    #[test]
    fn priming_event_with_empty_data_and_id() {
        let events = parse_chunks(&[b"id: prime-0\ndata:\n\n"]);
        assert_eq!(
            events,
            vec![SseEvent {
                data: String::new(),
                id: Some("prime-0".into()),
                ..Default::default()
            }]
        );
    }

    #[test]
    fn id_without_data_updates_last_event_id_only() {
        let mut p = SseParser::new(1024);
        let mut n = 0;
        p.feed(b"id: 42\n\nretry: 100\n\n", |_| n += 1);
        assert_eq!(n, 0);
        assert_eq!(p.last_event_id(), Some("42"));
    }

    #[test]
    fn retry_and_unknown_fields() {
        let events = parse_chunks(&[b"retry: 3000\nfoo: bar\ndata\n\n"]);
        assert_eq!(events[0].retry, Some(3000));
        assert_eq!(events[0].data, "");
    }

    #[test]
    fn oversized_event_is_dropped_and_the_stream_recovers() {
        let mut p = SseParser::new(16);
        let mut events = Vec::new();
        p.feed(b"data: 0123456789012345678901234\n", |e| events.push(e));
        p.feed(b"data: more\n\ndata: ok\n\n", |e| events.push(e));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "ok");
        assert_eq!(p.oversized_events(), 1);
    }

    #[test]
    fn unfinished_event_is_discarded_at_end() {
        let mut p = SseParser::new(1024);
        let mut n = 0;
        p.feed(b"data: partial", |_| n += 1);
        p.finish();
        assert_eq!(n, 0);
    }
}
