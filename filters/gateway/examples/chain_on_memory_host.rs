//! Per-request cost of our own code for one proxied `tools/call`: the whole
//! one-module chain as shipped (envoy/gateway.yaml) driven on the
//! in-memory host, callback by callback as Envoy drives it for
//! scripts/bench_chain.py (headers, body, empty end of stream, response
//! likewise, log, done). The in-memory host's calls are cheap copies, so
//! this is what runs inside the Wasm VM (natively compiled here), plus a
//! little. Also prints the host calls per request. Asserts nothing.
//!
//! Run: `cargo run --release -p gw-gateway --example chain_on_memory_host`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use gw_host::filter::FilterRoot;
use gw_host::memory::MemoryHost;
use gw_host::port::Host;
use proxy_wasm::types::{BufferType, MapType};
use std::hint::black_box;
use std::time::Instant;

#[path = "../tests/shipped/mod.rs"]
mod shipped;
use shipped::{load_request, shipped_configuration, BODY, RESULT};

fn request(host: &mut MemoryHost, root: &dyn FilterRoot, id: u32) {
    load_request(host);
    let mut f = root.new_filter(id);
    f.request_headers(host, 10, false);
    f.request_body(host, BODY.len(), false);
    f.request_body(host, BODY.len(), true);
    host.set_headers(
        MapType::HttpResponseHeaders,
        &[(":status", "200"), ("content-type", "application/json")],
    );
    f.response_headers(host, 2, false);
    host.set_body(BufferType::HttpResponseBody, RESULT.as_bytes());
    f.response_body(host, RESULT.len(), false);
    host.set_body(BufferType::HttpResponseBody, b"");
    f.response_body(host, 0, true);
    f.log(host);
    f.done(host);
}

fn main() {
    let mut host = MemoryHost::new();
    let queue = host.register_queue("gw_audit_events").unwrap();
    let mut root = gw_gateway::new_filter_root();
    assert!(root.configure(&mut host, shipped_configuration().as_bytes()));
    let n: u32 = 20_000;
    for round in 0..5 {
        let start = Instant::now();
        for i in 0..n {
            // a minute apart every 60 requests: the demo key's 60/min limit
            // never refuses (a refused request is not the typical one)
            host.clock += std::time::Duration::from_millis(1_100);
            request(&mut host, root.as_ref(), black_box(i + 2));
            if i % 50 == 0 {
                root.done(&mut host); // the worker's audit outbox
                while host.dequeue(queue).ok().flatten().is_some() {}
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
        if round == 0 {
            host.reset_calls();
            request(&mut host, root.as_ref(), 1);
            println!("host calls per request: {}", host.total_calls());
        }
        println!("round {round}: {ns:8.0} ns per tools/call through the chain (in-memory host)");
    }
    let _ = black_box(host.metric("gw.rate_limit.admitted"));
}
