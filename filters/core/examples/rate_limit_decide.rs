//! Host benchmark of one rate-limit decision as the filter makes it: decode
//! the shared-data slot, decide, re-encode the slot (what `local_store`
//! writes back with CAS). Across limits (10, 10,000 and 1,000,000 per 60 s,
//! burst = M / 6 as in the recipe's 60 + 10) and two agents: a quiet one (one
//! request every 10 s) and a busy one (requests as fast as its limit lets
//! it, or one per millisecond when that is slower). The slot also holds 16
//! other live keys, as a table shared by many agents does.
//!
//!     cargo run --release -p gw-core --example rate_limit_decide
//!
//! Prints numbers; asserts nothing. ./dev bench puts the output in BENCHMARKS.md.

use gw_core::rate_limit::sliding_window::WindowPolicy;
use gw_core::rate_limit::window_table::{self, KeyId, SlotAnswer};
use std::time::Instant;

/// Neighbours sharing the slot (other agents hashed to it).
const NEIGHBOURS: u32 = 16;

fn run(policy: &WindowPolicy, step_ms: u64, decisions: u32) -> (f64, usize, u32) {
    let t0 = 1_764_000_000_000u64;
    let mut slot = window_table::EMPTY_SLOT.to_vec();
    // Neighbours under a 7-day window, so that they stay live all run long.
    let long = WindowPolicy::new(1_000, 7 * 24 * 3600, 0);
    for k in 0..NEIGHBOURS {
        let id = KeyId::of("tools/call", &format!("neighbour-{k}"));
        if let (SlotAnswer::Admitted { value, .. }, _) =
            window_table::admit(&slot, &id, &long, t0, 1, 64)
        {
            slot = value;
        }
    }
    let id = KeyId::of("tools/call", "the-agent");
    let mut now = t0;
    // Fill the history first (two windows of traffic), unmeasured.
    let fill = (2 * policy.window_ms / step_ms.max(1)).min(4_000_000);
    let admit = |slot: &mut Vec<u8>, now: u64| -> bool {
        match window_table::admit(slot, &id, policy, now, 1, 64).0 {
            SlotAnswer::Admitted { value, .. } => {
                *slot = value;
                true
            }
            _ => false,
        }
    };
    for _ in 0..fill {
        now += step_ms;
        admit(&mut slot, now);
    }
    let mut admitted = 0u32;
    let start = Instant::now();
    for _ in 0..decisions {
        now += step_ms;
        if admit(&mut slot, now) {
            admitted += 1;
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(decisions);
    (ns, slot.len(), admitted)
}

fn main() {
    println!(
        "{:>10} {:>8} {:>7} {:>10} {:>12} {:>11} {:>10}",
        "maxRequests", "window", "burst", "agent", "ns/decision", "slot bytes", "admitted"
    );
    for m in [10u32, 10_000, 1_000_000] {
        let policy = WindowPolicy::new(m, 60, m / 6);
        // busy: at the limit's rate (at least 1 ms apart)
        let busy_step = (policy.window_ms / u64::from(m)).max(1);
        for (label, step) in [("quiet", 10_000u64), ("busy", busy_step)] {
            let n = 20_000;
            let (ns, bytes, admitted) = run(&policy, step, n);
            println!(
                "{m:>10} {:>7}s {:>7} {label:>10} {ns:>12.0} {bytes:>11} {:>9.0}%",
                60,
                m / 6,
                f64::from(admitted) * 100.0 / f64::from(n)
            );
        }
    }
    println!(
        "(slot bytes: the whole shared-data value read and written per decision, {NEIGHBOURS} other live keys included)"
    );
}
