//! The audit sender's delivery state machine: batching, flush timing,
//! retry with backoff, a bounded buffer and counted drops.
//!
//! Pure and clock-free: the singleton adapter feeds it the time and the
//! outcome of each POST, so every rule here is unit-tested on the host.
//!
//! Rules:
//! - a batch leaves when `batch_size` events wait, or when the oldest
//!   waiting event has waited `flush_interval_ms`, whichever comes first;
//! - one batch is in flight at a time, so the collector sees events in
//!   order and a slow collector slows delivery, never traffic;
//! - a failed batch (connect failure, timeout, 5xx, 408, 429) goes back to
//!   the front of the buffer and is retried after an exponential backoff
//!   (`initial * 2^(n-1)`, capped, with jitter in [50 %, 100 %]);
//! - a batch the collector refuses for its content (400, 413, 422) is
//!   split in two halves, sent one after the other before anything else,
//!   until the halves are accepted; a single event refused that way is
//!   dropped and counted. A 413 (too large for the collector) thus costs
//!   a few more POSTs, not 50 events, and one bad event costs itself
//!   only (found in about log2(batch) POSTs);
//! - a batch refused for any other 4xx (401, 403, 404, ...: the request,
//!   not its events, is wrong, so splitting cannot help) is dropped and
//!   counted: retrying it could never succeed and would block the rest;
//! - at most `max_buffered` events are held (waiting plus in flight); more
//!   are dropped on arrival and counted.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub max_buffered: usize,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

/// Counters, exported as Envoy stats by the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchStats {
    /// Events accepted into the buffer.
    pub queued: u64,
    /// Events the collector acknowledged.
    pub sent: u64,
    /// Events put back for another attempt after a failed batch.
    pub retried: u64,
    /// Events lost: buffer full, or refused by the collector.
    pub dropped: u64,
    pub batches_sent: u64,
    pub batches_failed: u64,
    /// Batches split in two after the collector refused their content.
    pub batches_split: u64,
    /// Of `dropped`: single events the collector refused (400, 413, 422).
    pub events_refused: u64,
}

/// How a POST ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again later (network error, timeout, 5xx, 408, 429).
    Retry,
    /// The collector refused what the batch holds (400, 413, 422): split it.
    Refused,
    /// The collector refused the batch for good (other 4xx).
    Rejected,
}

impl Outcome {
    /// Classify an HTTP status (0 = no response: dispatch or connect failure).
    pub fn from_status(status: u32) -> Self {
        match status {
            200..=299 => Outcome::Delivered,
            408 | 429 => Outcome::Retry,
            400 | 413 | 422 => Outcome::Refused,
            400..=499 => Outcome::Rejected,
            _ => Outcome::Retry,
        }
    }
}

#[derive(Debug)]
struct InFlight {
    token: u64,
    events: Vec<(u64, String)>,
}

/// A batch to POST now. The adapter encodes `events` and reports back
/// with [`BatchSender::complete`] quoting `token`.
#[derive(Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    pub token: u64,
    pub events: Vec<&'a str>,
}

#[derive(Debug)]
pub struct BatchSender {
    policy: BatchPolicy,
    /// (enqueue time ms, event JSON), oldest first.
    waiting: VecDeque<(u64, String)>,
    /// Sizes of the batches the front of `waiting` must go out as, first
    /// first: the halves of refused batches (empty in normal operation).
    splits: VecDeque<usize>,
    in_flight: Option<InFlight>,
    next_token: u64,
    consecutive_failures: u32,
    retry_at_ms: u64,
    rng: u64,
    stats: BatchStats,
}

impl BatchSender {
    pub fn new(policy: BatchPolicy, seed: u64) -> Self {
        Self {
            policy,
            waiting: VecDeque::new(),
            splits: VecDeque::new(),
            in_flight: None,
            next_token: 1,
            consecutive_failures: 0,
            retry_at_ms: 0,
            rng: seed | 1,
            stats: BatchStats::default(),
        }
    }

    pub fn policy(&self) -> BatchPolicy {
        self.policy
    }

    /// Take a new configuration (the singleton's `on_configure` may run
    /// again); buffered events are kept, the excess over a smaller bound is
    /// dropped from the newest end.
    pub fn set_policy(&mut self, policy: BatchPolicy) {
        self.policy = policy;
        while self.buffered() > policy.max_buffered && self.waiting.pop_back().is_some() {
            self.stats.dropped += 1;
        }
    }

    pub fn stats(&self) -> BatchStats {
        self.stats
    }

    /// Events held: waiting plus in flight.
    pub fn buffered(&self) -> usize {
        self.waiting.len() + self.in_flight.as_ref().map_or(0, |f| f.events.len())
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Offer one event; false if the buffer is full (dropped and counted).
    pub fn offer(&mut self, now_ms: u64, event: String) -> bool {
        if self.buffered() >= self.policy.max_buffered {
            self.stats.dropped += 1;
            return false;
        }
        self.waiting.push_back((now_ms, event));
        self.stats.queued += 1;
        true
    }

    /// Give up the waiting events (not the one in flight) to another sender:
    /// they are no longer counted as queued here.
    pub fn hand_over(&mut self) -> Vec<String> {
        self.splits.clear();
        let events: Vec<String> = self.waiting.drain(..).map(|(_, e)| e).collect();
        self.stats.queued = self.stats.queued.saturating_sub(events.len() as u64);
        events
    }

    /// Whether a batch should leave now.
    pub fn due(&self, now_ms: u64) -> bool {
        if self.in_flight.is_some() || now_ms < self.retry_at_ms {
            return false;
        }
        match self.waiting.front() {
            None => false,
            Some((oldest, _)) => {
                !self.splits.is_empty()
                    || self.waiting.len() >= self.policy.batch_size
                    || now_ms.saturating_sub(*oldest) >= self.policy.flush_interval_ms
            }
        }
    }

    /// When `due` may next become true without new events (for tick
    /// scheduling and tests); `None` if nothing waits.
    pub fn next_due_ms(&self) -> Option<u64> {
        let (oldest, _) = self.waiting.front()?;
        let by_age = if self.waiting.len() >= self.policy.batch_size || !self.splits.is_empty() {
            0
        } else {
            oldest.saturating_add(self.policy.flush_interval_ms)
        };
        Some(by_age.max(self.retry_at_ms))
    }

    /// Start a batch if one is due.
    pub fn poll(&mut self, now_ms: u64) -> Option<Batch<'_>> {
        if !self.due(now_ms) {
            return None;
        }
        let n = match self.splits.pop_front() {
            Some(split) => split.min(self.policy.batch_size),
            None => self.policy.batch_size,
        }
        .min(self.waiting.len())
        .max(1);
        let events: Vec<(u64, String)> = self.waiting.drain(..n).collect();
        let token = self.next_token;
        self.next_token += 1;
        let flight = self.in_flight.insert(InFlight { token, events });
        Some(Batch {
            token,
            events: flight.events.iter().map(|(_, e)| e.as_str()).collect(),
        })
    }

    /// The POST of batch `token` ended. Unknown tokens are ignored (a stale
    /// callback after a reconfiguration).
    pub fn complete(&mut self, token: u64, outcome: Outcome, now_ms: u64) {
        let Some(flight) = self.in_flight.take_if(|f| f.token == token) else {
            return;
        };
        let n = flight.events.len() as u64;
        match outcome {
            Outcome::Delivered => {
                self.stats.sent += n;
                self.stats.batches_sent += 1;
                self.consecutive_failures = 0;
                self.retry_at_ms = 0;
            }
            Outcome::Refused if flight.events.len() > 1 => {
                // Both halves go next, in order, before any other event.
                let len = flight.events.len();
                let first = len.div_ceil(2);
                self.splits.push_front(len - first);
                self.splits.push_front(first);
                self.stats.retried += n;
                self.stats.batches_failed += 1;
                self.stats.batches_split += 1;
                self.retry_at_ms = 0;
                for event in flight.events.into_iter().rev() {
                    self.waiting.push_front(event);
                }
            }
            Outcome::Refused | Outcome::Rejected => {
                if outcome == Outcome::Refused {
                    self.stats.events_refused += n;
                }
                self.stats.dropped += n;
                self.stats.batches_failed += 1;
                self.consecutive_failures = 0;
                self.retry_at_ms = 0;
            }
            Outcome::Retry => {
                self.stats.retried += n;
                self.stats.batches_failed += 1;
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.retry_at_ms = now_ms.saturating_add(self.backoff_ms());
                // The same events go again as the same batch.
                self.splits.push_front(flight.events.len());
                for event in flight.events.into_iter().rev() {
                    self.waiting.push_front(event);
                }
            }
        }
    }

    /// Backoff after the current run of failures, with jitter in [50 %, 100 %].
    fn backoff_ms(&mut self) -> u64 {
        let exp = self.consecutive_failures.saturating_sub(1).min(32);
        let full = self
            .policy
            .initial_backoff_ms
            .saturating_mul(1u64 << exp)
            .min(self.policy.max_backoff_ms);
        // xorshift64: cheap, deterministic per seed, good enough for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = full / 2;
        half + self.rng % (full - half + 1)
    }
}

/// The recipe's HTTP JSON batch: `{"events":[...]}`. Events are already
/// JSON, so they are joined, not re-serialized.
pub fn encode_json_batch(events: &[&str]) -> Vec<u8> {
    let len = events.iter().map(|e| e.len() + 1).sum::<usize>() + 12;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(b"{\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(event.as_bytes());
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_batch_is_valid_json() {
        let body = encode_json_batch(&[r#"{"a":1}"#, r#"{"b":"x"}"#]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({"events":[{"a":1},{"b":"x"}]}));
        let empty: serde_json::Value = serde_json::from_slice(&encode_json_batch(&[])).unwrap();
        assert_eq!(empty, serde_json::json!({"events":[]}));
    }

    fn policy() -> BatchPolicy {
        BatchPolicy {
            batch_size: 3,
            flush_interval_ms: 1000,
            max_buffered: 7,
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
        }
    }

    fn owned(batch: Option<Batch<'_>>) -> Option<(u64, Vec<String>)> {
        batch.map(|b| (b.token, b.events.into_iter().map(String::from).collect()))
    }

    #[test]
    fn full_batch_leaves_at_once_partial_after_the_interval() {
        let mut s = BatchSender::new(policy(), 1);
        for i in 0..4 {
            assert!(s.offer(10, format!("e{i}")));
        }
        let (t, events) = owned(s.poll(10)).unwrap();
        assert_eq!(events, ["e0", "e1", "e2"]);
        assert!(s.poll(10).is_none(), "one batch in flight at a time");
        s.complete(t, Outcome::Delivered, 20);
        assert!(s.poll(20).is_none(), "e3 waits for the interval");
        assert_eq!(s.next_due_ms(), Some(1010));
        assert!(s.poll(1009).is_none());
        let (t, events) = owned(s.poll(1010)).unwrap();
        assert_eq!(events, ["e3"]);
        s.complete(t, Outcome::Delivered, 1011);
        let st = s.stats();
        assert_eq!(
            (st.queued, st.sent, st.batches_sent, st.dropped),
            (4, 4, 2, 0)
        );
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn interval_counts_from_the_oldest_waiting_event() {
        let mut s = BatchSender::new(policy(), 1);
        s.offer(0, "a".into());
        s.offer(900, "b".into());
        assert!(!s.due(999));
        assert_eq!(owned(s.poll(1000)).unwrap().1, ["a", "b"]);
    }

    #[test]
    fn failures_retry_in_order_with_growing_capped_backoff() {
        let mut s = BatchSender::new(policy(), 7);
        for i in 0..3 {
            s.offer(0, format!("e{i}"));
        }
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let (t, events) = owned(s.poll(now)).unwrap();
            assert_eq!(events, ["e0", "e1", "e2"], "same batch, same order");
            s.complete(t, Outcome::from_status(503), now);
            let next = s.next_due_ms().unwrap();
            waits.push(next - now);
            assert!(s.poll(next - 1).is_none(), "no retry before the backoff");
            now = next;
        }
        // 100, 200, 400, 800, 1000, 1000 with jitter in [50%, 100%]
        for (wait, full) in waits.iter().zip([100, 200, 400, 800, 1000, 1000]) {
            assert!(*wait >= full / 2 && *wait <= full, "{waits:?}");
        }
        let (t, _) = owned(s.poll(now)).unwrap();
        s.complete(t, Outcome::Delivered, now);
        let st = s.stats();
        assert_eq!((st.sent, st.retried, st.batches_failed), (3, 18, 6));
        // success resets the backoff
        s.offer(now, "x".into());
        assert_eq!(s.next_due_ms(), Some(now + 1000));
    }

    #[test]
    fn bounded_buffer_counts_drops_and_delivers_the_rest_once() {
        let mut s = BatchSender::new(policy(), 1);
        let (mut accepted, mut dropped) = (0, 0);
        for i in 0..10 {
            if s.offer(0, format!("e{i}")) {
                accepted += 1
            } else {
                dropped += 1
            }
        }
        assert_eq!((accepted, dropped), (7, 3));
        // in-flight events still count against the bound
        let (t, _) = owned(s.poll(0)).unwrap();
        assert!(!s.offer(0, "late".into()));
        s.complete(t, Outcome::Retry, 0);
        let mut delivered = Vec::new();
        let mut now = 0;
        while s.buffered() > 0 {
            now += 2000;
            if let Some((t, events)) = owned(s.poll(now)) {
                delivered.extend(events);
                s.complete(t, Outcome::Delivered, now);
            }
        }
        let want: Vec<String> = (0..7).map(|i| format!("e{i}")).collect();
        assert_eq!(
            delivered, want,
            "each buffered event exactly once, in order"
        );
        assert_eq!(s.stats().dropped, 4);
    }

    /// A collector that refuses (`status`) any batch `refuses` says no to;
    /// returns what it accepted, in order, and the POSTs it took.
    fn deliver_all(
        s: &mut BatchSender,
        status: u32,
        refuses: impl Fn(&[String]) -> bool,
    ) -> (Vec<String>, usize) {
        let (mut got, mut posts, mut now) = (Vec::new(), 0, 0);
        while s.buffered() > 0 {
            now += 2000;
            if let Some((t, events)) = owned(s.poll(now)) {
                posts += 1;
                if refuses(&events) {
                    s.complete(t, Outcome::from_status(status), now);
                } else {
                    got.extend(events);
                    s.complete(t, Outcome::Delivered, now);
                }
            }
        }
        (got, posts)
    }

    #[test]
    fn a_batch_too_large_is_halved_until_it_fits() {
        let mut s = BatchSender::new(
            BatchPolicy {
                batch_size: 50,
                max_buffered: 500,
                ..policy()
            },
            1,
        );
        let all: Vec<String> = (0..120).map(|i| format!("e{i:03}")).collect();
        for e in &all {
            s.offer(0, e.clone());
        }
        // at most 12 events per POST
        let (got, posts) = deliver_all(&mut s, 413, |b| b.len() > 12);
        assert_eq!(got, all, "every event once, in order");
        let st = s.stats();
        assert_eq!((st.sent, st.dropped, st.events_refused), (120, 0, 0));
        assert!(st.batches_split >= 3, "{st:?}");
        assert!(posts < 40, "{posts} POSTs");
    }

    #[test]
    fn one_bad_event_costs_itself_only() {
        let mut s = BatchSender::new(
            BatchPolicy {
                batch_size: 50,
                max_buffered: 500,
                ..policy()
            },
            1,
        );
        let all: Vec<String> = (0..50).map(|i| format!("e{i:02}")).collect();
        for e in &all {
            s.offer(0, e.clone());
        }
        let (got, posts) = deliver_all(&mut s, 400, |b| b.iter().any(|e| e == "e17"));
        let want: Vec<String> = all.iter().filter(|e| *e != "e17").cloned().collect();
        assert_eq!(got, want);
        let st = s.stats();
        assert_eq!((st.sent, st.dropped, st.events_refused), (49, 1, 1));
        assert!(posts <= 2 * 6 + 1, "{posts} POSTs");
    }

    #[test]
    fn a_retry_after_a_split_resends_the_same_half() {
        let mut s = BatchSender::new(policy(), 1);
        for i in 0..3 {
            s.offer(0, format!("e{i}"));
        }
        let (t, _) = owned(s.poll(0)).unwrap();
        s.complete(t, Outcome::from_status(413), 0);
        let (t, half) = owned(s.poll(0)).unwrap();
        assert_eq!(half, ["e0", "e1"]);
        s.complete(t, Outcome::from_status(503), 0);
        s.offer(0, "e3".into());
        let at = s.next_due_ms().unwrap();
        assert_eq!(owned(s.poll(at)).unwrap().1, ["e0", "e1"]);
    }

    #[test]
    fn rejected_batches_are_dropped_not_retried() {
        let mut s = BatchSender::new(policy(), 1);
        for i in 0..3 {
            s.offer(0, format!("e{i}"));
        }
        let (t, _) = owned(s.poll(0)).unwrap();
        s.complete(t, Outcome::from_status(401), 0);
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.stats().dropped, 3);
        assert_eq!(s.stats().batches_failed, 1);
    }

    #[test]
    fn hand_over_keeps_the_batch_in_flight() {
        let mut s = BatchSender::new(policy(), 1);
        for i in 0..5 {
            s.offer(0, format!("e{i}"));
        }
        let (t, _) = owned(s.poll(0)).unwrap();
        assert_eq!(s.hand_over(), ["e3", "e4"]);
        assert_eq!(s.stats().queued, 3);
        s.complete(t, Outcome::Delivered, 0);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn stale_tokens_are_ignored() {
        let mut s = BatchSender::new(policy(), 1);
        for i in 0..3 {
            s.offer(0, format!("e{i}"));
        }
        let (t, _) = owned(s.poll(0)).unwrap();
        s.complete(t + 99, Outcome::Delivered, 0);
        assert!(s.in_flight());
        s.complete(t, Outcome::Delivered, 0);
        assert!(!s.in_flight());
    }

    #[test]
    fn status_classes() {
        for (status, want) in [
            (200, Outcome::Delivered),
            (204, Outcome::Delivered),
            (0, Outcome::Retry),
            (503, Outcome::Retry),
            (504, Outcome::Retry),
            (429, Outcome::Retry),
            (408, Outcome::Retry),
            (400, Outcome::Refused),
            (413, Outcome::Refused),
            (422, Outcome::Refused),
            (401, Outcome::Rejected),
            (403, Outcome::Rejected),
            (404, Outcome::Rejected),
            (302, Outcome::Retry),
        ] {
            assert_eq!(Outcome::from_status(status), want, "{status}");
        }
    }

    #[test]
    fn shrinking_the_buffer_drops_the_newest() {
        let mut s = BatchSender::new(policy(), 1);
        for i in 0..7 {
            s.offer(0, format!("e{i}"));
        }
        s.set_policy(BatchPolicy {
            max_buffered: 4,
            ..policy()
        });
        assert_eq!(s.buffered(), 4);
        assert_eq!(s.stats().dropped, 3);
        assert_eq!(owned(s.poll(0)).unwrap().1, ["e0", "e1", "e2"]);
    }
}
