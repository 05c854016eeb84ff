//! A worker's outbox: events collected on the request path and handed to
//! the sender in frames, so that the shared queue (and the wake-up of the
//! sender on Envoy's main thread that every enqueue costs) is paid once per
//! frame instead of once per request.
//!
//! A frame is events joined by `\n`. An event is one line of compact JSON
//! (serde_json escapes every control character inside strings), so the
//! separator cannot occur inside an event.

/// Name of the shared queue between the HTTP filters (they enqueue
/// frames) and the sender (it registers and drains it).
pub const QUEUE_NAME: &str = "gw_audit_events";

/// Events waiting to be enqueued, bounded by `max_events`.
#[derive(Debug)]
pub struct Outbox {
    frame: String,
    events: usize,
    max_events: usize,
}

impl Outbox {
    pub fn new(max_events: usize) -> Self {
        Self {
            frame: String::new(),
            events: 0,
            max_events: max_events.max(1),
        }
    }

    /// Add one event; returns true when the outbox is full and should be
    /// flushed now.
    pub fn push(&mut self, event: &str) -> bool {
        if !self.frame.is_empty() {
            self.frame.push('\n');
        }
        self.frame.push_str(event);
        self.events += 1;
        self.events >= self.max_events
    }

    /// The events waiting.
    pub fn len(&self) -> usize {
        self.events
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Take the frame (None when empty) and how many events it holds.
    pub fn take(&mut self) -> Option<(String, usize)> {
        if self.events == 0 {
            return None;
        }
        let events = std::mem::take(&mut self.events);
        Some((std::mem::take(&mut self.frame), events))
    }
}

/// The events of a frame (an empty line is not an event).
pub fn frame_events(frame: &str) -> impl Iterator<Item = &str> {
    frame.split('\n').filter(|e| !e.is_empty())
}

/// How long a worker may hold events before enqueueing them: a tenth of
/// the destination's flush interval, between 20 ms and 250 ms (negligible
/// next to the interval, and at 1,000 requests/s a frame of ~50-250 events).
pub fn hold_ms(flush_interval_ms: u64) -> u64 {
    (flush_interval_ms / 10).clamp(20, 250)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_round_trip_events_with_newlines_inside_strings() {
        let events = [
            json!({"a": "line one\nline two\r\n"}).to_string(),
            json!({"b": 2}).to_string(),
        ];
        let mut outbox = Outbox::new(10);
        for e in &events {
            assert!(!outbox.push(e));
        }
        let (frame, n) = outbox.take().unwrap();
        assert_eq!(n, 2);
        assert_eq!(frame_events(&frame).collect::<Vec<_>>(), events);
        assert!(outbox.take().is_none() && outbox.is_empty());
    }

    #[test]
    fn full_at_max_events() {
        let mut outbox = Outbox::new(2);
        assert!(!outbox.push("{}"));
        assert!(outbox.push("{}"));
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.take().unwrap().1, 2);
        assert!(!outbox.push("{}"));
    }

    #[test]
    fn hold_is_a_tenth_of_the_interval_within_bounds() {
        assert_eq!(hold_ms(5000), 250);
        assert_eq!(hold_ms(1500), 150);
        assert_eq!(hold_ms(100), 20);
    }
}
