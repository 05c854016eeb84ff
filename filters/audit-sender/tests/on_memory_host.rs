//! The audit sender on the in-memory host: events the filters queued go to
//! the collector in batches, as the destination says; a failed POST is
//! retried after the backoff; a sender that lost the lead hands its events
//! back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use gw_audit_sender::Sender;
use gw_core::audit::config::{AuditConfig, AuditConfigSpec, Destination};
use gw_core::audit::outbox::{Outbox, QUEUE_NAME};
use gw_core::config::load;
use gw_host::memory::MemoryHost;
use gw_host::port::Host;
use proxy_wasm::types::MapType;
use std::time::Duration;

fn destination() -> Destination {
    let yaml = "role: sender\nlogDestination:\n  url: http://collector:9000/v1/events?k=1\n  cluster: audit_collector\n  batchSize: 2\n  flushIntervalMs: 1000\n  retry: {initialBackoffMs: 100, maxBackoffMs: 100}\n  headers: {x-collector-token: t}\n";
    load::<AuditConfigSpec, AuditConfig>(yaml.as_bytes())
        .unwrap()
        .destination
}

/// What a worker's filters put on the queue: one frame of `events`.
fn queue_events(h: &mut MemoryHost, events: &[&str]) -> u32 {
    let mut outbox = Outbox::new(events.len());
    for e in events {
        outbox.push(e);
    }
    let (frame, _) = outbox.take().unwrap();
    let id = h.resolve_queue("gw_audit", QUEUE_NAME).unwrap().unwrap();
    h.enqueue(id, frame.as_bytes()).unwrap();
    id
}

fn answer(h: &mut MemoryHost, sender: &mut Sender, status: &str) {
    let token = h.callouts.last().unwrap().token;
    h.set_headers(MapType::HttpCallResponseHeaders, &[(":status", status)]);
    sender.on_http_call_response(h, token);
}

#[test]
fn a_full_batch_is_posted_to_the_collector() {
    let mut h = MemoryHost::new();
    let mut sender = Sender::start(&mut h, destination()).unwrap();
    assert!(h.tick.is_some(), "the sender ticks");
    let queue = queue_events(&mut h, &[r#"{"n":1}"#, r#"{"n":2}"#]);
    sender.on_queue_ready(&mut h, queue);
    assert_eq!(h.callouts.len(), 1, "batchSize 2: sent at once");
    let call = &h.callouts[0];
    assert_eq!(call.upstream, "audit_collector");
    let header = |name: &str| {
        call.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header(":method"), Some("POST"));
    assert_eq!(header(":path"), Some("/v1/events?k=1"));
    assert_eq!(header(":authority"), Some("collector:9000"));
    assert_eq!(header("x-collector-token"), Some("t"));
    let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["events"], serde_json::json!([{"n": 1}, {"n": 2}]));
    answer(&mut h, &mut sender, "200");
    assert_eq!(h.metric("gw.audit.events_sent"), 2);
    assert_eq!(h.metric("gw.audit.batches_sent"), 1);
}

#[test]
fn a_failed_post_is_retried_after_the_backoff() {
    let mut h = MemoryHost::new();
    let mut sender = Sender::start(&mut h, destination()).unwrap();
    let queue = queue_events(&mut h, &[r#"{"n":1}"#, r#"{"n":2}"#]);
    sender.on_queue_ready(&mut h, queue);
    answer(&mut h, &mut sender, "503");
    assert_eq!(h.metric("gw.audit.events_retried"), 2);
    sender.on_tick(&mut h);
    assert_eq!(h.callouts.len(), 1, "not before the backoff");
    h.clock += Duration::from_secs(1);
    sender.on_tick(&mut h);
    assert_eq!(h.callouts.len(), 2, "retried");
    assert_eq!(h.callouts[1].body, h.callouts[0].body);
    answer(&mut h, &mut sender, "200");
    assert_eq!(h.metric("gw.audit.events_sent"), 2);
}

#[test]
fn a_sender_that_lost_the_lead_hands_its_events_back() {
    let mut h = MemoryHost::new();
    let mut first = Sender::start(&mut h, destination()).unwrap();
    // Envoy's second copy of the singleton starts later: it leads now
    h.clock += Duration::from_millis(1);
    let mut second = Sender::start(&mut h, destination()).unwrap();
    let queue = queue_events(&mut h, &[r#"{"n":1}"#, r#"{"n":2}"#]);
    first.on_queue_ready(&mut h, queue);
    assert!(h.callouts.is_empty(), "only the leader delivers");
    // the queue is left to the leader, which drains and sends it
    second.on_queue_ready(&mut h, queue);
    assert_eq!(h.callouts.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&h.callouts[0].body).unwrap();
    assert_eq!(body["events"], serde_json::json!([{"n": 1}, {"n": 2}]));
}
