//! The two stores on the in-memory host, without the request state machine
//! (`filters/rate-limit/tests/on_memory_host.rs` drives them through it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use gw_core::config::load;
use gw_core::rate_limit::admission;
use gw_core::rate_limit::bill::{self, Bill, OperationCall};
use gw_core::rate_limit::config::{RateLimitConfig, RateLimitConfigSpec};
use gw_host::memory::MemoryHost;
use gw_host::metrics::Counter;
use gw_rate_limit_store::{RedisCall, RedisOutcome, SharedSlots, SlotCounters};
use proxy_wasm::types::{BufferType, MapType};

const CONFIG: &str = r#"
limits:
  - path: /mcp/tools/call
    maxRequests: 1
    windowSeconds: 60
localStore: { slots: 8, keysPerSlot: 4 }
redisStore:
  cluster: webdis
"#;

fn config() -> RateLimitConfig {
    load::<RateLimitConfigSpec, RateLimitConfig>(CONFIG.as_bytes()).unwrap()
}

fn counters(h: &mut MemoryHost) -> SlotCounters {
    SlotCounters {
        cas_retries: Counter::define(h, "t.cas_retries"),
        store_errors: Counter::define(h, "t.store_errors"),
    }
}

fn charges(config: &RateLimitConfig) -> (String, Vec<bill::Charge>) {
    let calls = OperationCall::from_request("GET", "/mcp/tools/call");
    match bill::bill(config, None, &calls) {
        Bill::Charges { agent_id, charges } => (agent_id, charges),
        _ => panic!("an anonymous tools/call is charged"),
    }
}

#[test]
fn slots_are_created_once_and_decided_over() {
    let config = config();
    let mut h = MemoryHost::new();
    let c = counters(&mut h);
    SharedSlots::open(&mut h, &config.local, c).unwrap();
    assert_eq!(h.shared.len(), 8);
    let before = h.shared.clone();
    SharedSlots::open(&mut h, &config.local, c).unwrap();
    assert_eq!(h.shared, before, "a second VM keeps the slots it finds");

    let (_, charges) = charges(&config);
    let now = 1_700_000_000_000;
    let mut slots = SharedSlots {
        host: &mut h,
        counters: c,
    };
    assert!(
        admission::decide(&mut slots, &config, &charges, now)
            .unwrap()
            .admitted
    );
    assert!(
        !admission::decide(&mut slots, &config, &charges, now)
            .unwrap()
            .admitted
    );

    let mut cursor = SharedSlots::open(&mut h, &config.local, c).unwrap();
    h.clock += std::time::Duration::from_secs(180);
    let reclaimed: u64 = (0..60)
        .map(|_| SharedSlots::sweep(&mut h, &mut cursor, &config.local, c))
        .sum();
    assert_eq!(reclaimed, 1, "the expired window is dropped");
}

#[test]
fn a_redis_call_waits_for_its_own_answer_only() {
    let config = config();
    let store = config.redis.as_ref().unwrap();
    let mut h = MemoryHost::new();
    let (agent, charges) = charges(&config);
    let RedisOutcome::Waiting(call) =
        RedisCall::dispatch(&mut h, &config, store, agent, charges, "n1".into())
    else {
        panic!("the call is in flight");
    };
    assert_eq!(h.callouts.len(), 1);
    assert_eq!(h.callouts[0].upstream, "webdis");
    let token = h.callouts[0].token;

    let RedisOutcome::Waiting(call) = call.answered(&mut h, &config, store, token + 1, 0) else {
        panic!("another call's answer changes nothing");
    };
    let body = br#"{"EVALSHA":[0,5000,1700000000000,1,1699999999000,0,0]}"#;
    h.set_headers(MapType::HttpCallResponseHeaders, &[(":status", "200")]);
    h.set_body(BufferType::HttpCallResponseBody, body);
    match call.answered(&mut h, &config, store, token, body.len()) {
        RedisOutcome::Decided { admission, .. } => {
            assert!(!admission.admitted);
            assert_eq!(admission.retry_after_ms, 5000);
        }
        _ => panic!("Redis decided"),
    }
}
