//! How the audit sender delivers to its [`Destination`]: the batching
//! policy, how often it must wake up, what a POST carries, and which of the
//! two senders Envoy starts delivers. The sender adapter
//! (`filters/audit-sender/src/sender.rs`) only moves these through the host.

use crate::audit::batch::{encode_json_batch, BatchPolicy};
use crate::audit::config::{Destination, DestinationType};
use crate::audit::otlp;

/// `user-agent` of every POST.
pub const USER_AGENT: &str = "gw-audit/0.1";

impl Destination {
    /// The batch sender's policy for this destination.
    pub fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy {
            batch_size: self.batch_size,
            flush_interval_ms: self.flush_interval_ms,
            max_buffered: self.max_buffered_events,
            initial_backoff_ms: self.initial_backoff_ms,
            max_backoff_ms: self.max_backoff_ms,
        }
    }

    /// Tick often enough to honour the flush interval and the first
    /// backoff (a fifth of one, half of the other), never faster than 10 ms
    /// nor slower than 1 s.
    pub fn tick_period_ms(&self) -> u64 {
        (self.flush_interval_ms / 5)
            .min(self.initial_backoff_ms / 2)
            .clamp(10, 1000)
    }

    /// The body of one POST: the recipe's `{"events":[...]}` or OTLP logs.
    pub fn encode(&self, events: &[&str], now_unix_ms: u64) -> Vec<u8> {
        match self.kind {
            DestinationType::Http => encode_json_batch(events),
            DestinationType::Otlp => otlp::encode_logs(events, &self.service_name, now_unix_ms),
        }
    }

    /// Headers of one POST: the upstream's, our user agent, then the
    /// configured ones (validated at load: none of ours can be overridden).
    pub fn post_headers(&self) -> Vec<(&str, &str)> {
        let mut headers = self.upstream.post_headers("application/json");
        headers.push(("user-agent", USER_AGENT));
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        headers
    }
}

/// Envoy configures a singleton service twice (the base VM and its
/// main-thread clone), and both tick: exactly one must deliver. Each sender
/// writes its `token` into the leader key when it starts, so the last one
/// started leads. A sender still leads while the key holds its token, or
/// holds nothing (shared data unreadable: better twice than never).
pub fn still_leading(current: Option<&[u8]>, token: &str) -> bool {
    current.is_none_or(|value| value == token.as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::config::{AuditConfig, AuditConfigSpec};
    use crate::config::load;

    fn destination(yaml: &str) -> Destination {
        load::<AuditConfigSpec, AuditConfig>(yaml.as_bytes())
            .unwrap()
            .destination
    }

    #[test]
    fn policy_and_tick_follow_the_destination() {
        let d = destination("logDestination: {batchSize: 7, flushIntervalMs: 1000, retry: {initialBackoffMs: 100}}\n");
        let p = d.batch_policy();
        assert_eq!(
            (p.batch_size, p.flush_interval_ms, p.initial_backoff_ms),
            (7, 1000, 100)
        );
        assert_eq!(d.tick_period_ms(), 50);
        let slow = destination("logDestination: {flushIntervalMs: 3600000, retry: {initialBackoffMs: 60000, maxBackoffMs: 60000}}\n");
        assert_eq!(slow.tick_period_ms(), 1000);
        let fast = destination("logDestination: {flushIntervalMs: 10}\n");
        assert_eq!(fast.tick_period_ms(), 10);
    }

    #[test]
    fn body_by_destination_type() {
        let http = destination("");
        assert_eq!(http.encode(&[r#"{"a":1}"#], 0), br#"{"events":[{"a":1}]}"#);
        let otlp = destination("logDestination: {type: otlp, url: 'http://otel:4318/v1/logs'}\n");
        let body = String::from_utf8(otlp.encode(&[r#"{"a":1}"#], 0)).unwrap();
        assert!(body.contains("resourceLogs"), "{body}");
    }

    #[test]
    fn headers_of_a_post() {
        let d = destination(
            "logDestination: {url: 'https://c:8443/in?x=1', headers: {Authorization: Bearer t}}\n",
        );
        assert_eq!(
            d.post_headers(),
            [
                (":method", "POST"),
                (":path", "/in?x=1"),
                (":authority", "c:8443"),
                ("content-type", "application/json"),
                ("user-agent", USER_AGENT),
                ("authorization", "Bearer t"),
            ]
        );
    }

    #[test]
    fn the_last_sender_started_leads() {
        assert!(still_leading(Some(b"b"), "b"));
        assert!(!still_leading(Some(b"b"), "a"));
        assert!(still_leading(None, "a"));
    }
}
