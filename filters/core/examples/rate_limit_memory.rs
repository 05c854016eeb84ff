//! Host benchmark of the local window store: how many bytes 100,000 agents
//! take in the shared-data slots, how full the fullest slot gets (the bytes
//! a request copies), and what one decision costs on the host.
//!
//!     cargo run --release -p gw-core --example rate_limit_memory [agents] [slots] [keys_per_slot]
//!
//! Prints numbers; asserts nothing. `scripts/bench_rate_limit_memory.py`
//! measures the same inside a running Envoy.

use gw_core::rate_limit::sliding_window::WindowPolicy;
use gw_core::rate_limit::window_table::{self, KeyId, SlotAnswer};
use std::time::Instant;

fn arg(n: usize, default: u32) -> u32 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let agents = arg(1, 100_000);
    let slots = arg(2, 16_384);
    let keys_per_slot = arg(3, 32);
    // The recipe's tools/call limit: 60/min + burst 10 (log up to 120 entries).
    let policy = WindowPolicy::new(60, 60, 10);
    println!(
        "{agents} agents, {slots} slots x {keys_per_slot} keys/slot (bound {}), policy 60/60s burst 10",
        u64::from(slots) * u64::from(keys_per_slot)
    );
    println!(
        "{:>22} {:>14} {:>12} {:>16} {:>14} {:>12} {:>12}",
        "admissions/agent",
        "payload bytes",
        "bytes/agent",
        "max slot bytes",
        "max keys/slot",
        "refused",
        "ns/decision"
    );
    for per_agent in [1u32, 10, 70, 120] {
        let mut table: Vec<Vec<u8>> = vec![window_table::EMPTY_SLOT.to_vec(); slots as usize];
        let mut refused = 0u64;
        let mut decisions = 0u64;
        let start_ns = Instant::now();
        let t0 = 1_764_000_000_000u64;
        // Spread one agent's admissions over its windows as a real agent
        // would: 70 within 60 s, then the rest in the next minute (rule 2).
        for round in 0..per_agent {
            let now = t0 + u64::from(round) * 900;
            for a in 0..agents {
                let id = KeyId::of("tools/call", &format!("agent-{a}"));
                let Some(slot) = table.get_mut(id.slot(slots) as usize) else {
                    continue;
                };
                let (decision, _) = window_table::admit(slot, &id, &policy, now, 1, keys_per_slot);
                decisions += 1;
                match decision {
                    SlotAnswer::Admitted { value, .. } => *slot = value,
                    _ => refused += 1,
                }
            }
        }
        let elapsed = start_ns.elapsed();
        let now = t0 + u64::from(per_agent) * 900;
        let total: usize = table.iter().map(Vec::len).sum();
        let max_slot = table.iter().map(Vec::len).max().unwrap_or(0);
        let max_keys = table
            .iter()
            .map(|v| window_table::occupancy(v, now).0)
            .max()
            .unwrap_or(0);
        println!(
            "{:>22} {:>14} {:>12.1} {:>16} {:>14} {:>12} {:>12.0}",
            per_agent,
            total,
            total as f64 / f64::from(agents),
            max_slot,
            max_keys,
            refused,
            elapsed.as_nanos() as f64 / decisions as f64
        );
    }
    println!(
        "record = {} bytes + 4 per admission kept; a slot read/written per decision is the fullest slot above at worst",
        window_table::record_size(0)
    );
}
