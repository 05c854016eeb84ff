//! Windows in Envoy shared data, exact across the workers of one Envoy.
//!
//! Every read-modify-write of a slot is a compare-and-swap loop: read the
//! slot with its CAS token, decide on that snapshot, write back only if no
//! other worker wrote in between, otherwise start again from a fresh read.
//! Slots are created once, before traffic (see [`ensure_slots`]), because
//! Envoy ignores CAS when a key does not exist yet.

use crate::metrics::{Counter, Metrics};
use gw_core::rate_limit::config::{LocalStore, RateLimitConfig};
use gw_core::rate_limit::plan::Charge;
use gw_core::rate_limit::sliding_window::WindowState;
use gw_core::rate_limit::window_table::{self, SlotDecision};
use gw_host::abi;
use proxy_wasm::types::Status;

/// Give up after this many lost races on one slot (never seen in practice:
/// it would take other workers writing the same slot continuously).
const MAX_CAS_ATTEMPTS: u32 = 64;

/// Create the slots that do not exist yet. Called from `on_configure`, which
/// Envoy runs on the main thread when it loads the filter, before any worker
/// takes traffic; later calls (workers, reloads) find every slot present and
/// write nothing, so existing windows are never clobbered.
pub fn ensure_slots(store: &LocalStore) -> Result<u32, Status> {
    let mut created = 0;
    for slot in 0..store.slots {
        let key = window_table::slot_key(slot);
        let (_, cas) = abi::get_shared_data(&key)?;
        if cas.is_none() {
            abi::set_shared_data(&key, Some(window_table::EMPTY_SLOT), None)?;
            created += 1;
        }
    }
    Ok(created)
}

/// Run `f` on a slot's value under a CAS loop. `f` returns its result and,
/// when the slot must change, the new value.
fn update<T>(
    key: &str,
    metrics: &Metrics,
    mut f: impl FnMut(&[u8]) -> (T, Option<Vec<u8>>),
) -> Result<T, String> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) =
            abi::get_shared_data(key).map_err(|s| format!("reading {key}: {s:?}"))?;
        let (out, write) = f(value.as_deref().unwrap_or(&[]));
        let Some(new) = write else {
            return Ok(out);
        };
        if cas.is_none() {
            // Not pre-created (slots grew on a reload?): an unconditional
            // create may race with another worker's; say so.
            log::warn!("rate_limit: creating missing slot {key}");
        }
        match abi::set_shared_data(key, Some(&new), cas) {
            Ok(()) => return Ok(out),
            Err(Status::CasMismatch) => metrics.inc(Counter::CasRetries),
            Err(s) => return Err(format!("writing {key}: {s:?}")),
        }
    }
    Err(format!(
        "{key}: gave up after {MAX_CAS_ATTEMPTS} CAS conflicts"
    ))
}

/// The outcome of a request's charges.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub admitted: bool,
    /// Milliseconds until the whole request would fit (max over charges).
    pub retry_after_ms: u64,
    /// Index of the charge that frees last (names the limit in the reply).
    pub binding: usize,
    /// Per charge, its windows after the decision.
    pub windows: Vec<Vec<WindowState>>,
    pub table_full: bool,
}

enum Step {
    Admitted(Vec<WindowState>),
    Refused(u64, Vec<WindowState>),
    Full(u64),
}

fn step(decision: SlotDecision) -> (Step, Option<Vec<u8>>) {
    match decision {
        SlotDecision::Admitted { verdict, value } => (Step::Admitted(verdict.windows), Some(value)),
        SlotDecision::Refused { verdict } => {
            (Step::Refused(verdict.retry_after_ms, verdict.windows), None)
        }
        SlotDecision::Full { retry_after_ms } => (Step::Full(retry_after_ms), None),
    }
}

/// Admit all charges or none: charges are taken in order; if one is refused,
/// those already taken are given back and the rest are only looked at (to
/// compute the Retry-After of the whole request).
pub fn decide(
    config: &RateLimitConfig,
    charges: &[Charge],
    now: u64,
    metrics: &Metrics,
) -> Result<Outcome, String> {
    let store = config.local;
    let mut taken: Vec<usize> = Vec::new();
    let mut windows: Vec<Vec<WindowState>> = vec![Vec::new(); charges.len()];
    let mut retry = vec![0u64; charges.len()];
    let mut refused = false;
    let mut table_full = false;
    for (i, charge) in charges.iter().enumerate() {
        let Some(limit) = config.limits.get(charge.limit) else {
            continue;
        };
        let key = window_table::slot_key(charge.id.slot(store.slots));
        let peek_only = refused;
        let result = update(&key, metrics, |value| {
            let (decision, problem) = window_table::admit(
                value,
                &charge.id,
                &limit.policy,
                now,
                charge.slots,
                store.keys_per_slot,
            );
            if let Some(problem) = problem {
                log::warn!("rate_limit: slot {key} reset: {problem}");
                metrics.inc(Counter::StoreErrors);
            }
            let (step, write) = step(decision);
            (step, if peek_only { None } else { write })
        })?;
        let slot = windows.get_mut(i);
        match result {
            Step::Admitted(w) => {
                if let Some(slot) = slot {
                    *slot = w;
                }
                if !peek_only {
                    taken.push(i);
                }
            }
            Step::Refused(ms, w) => {
                if let Some(slot) = slot {
                    *slot = w;
                }
                if let Some(r) = retry.get_mut(i) {
                    *r = ms;
                }
                refused = true;
            }
            Step::Full(ms) => {
                if let Some(r) = retry.get_mut(i) {
                    *r = ms;
                }
                refused = true;
                table_full = true;
            }
        }
    }
    if refused {
        for &i in &taken {
            let (Some(charge), Some(w)) = (charges.get(i), windows.get_mut(i)) else {
                continue;
            };
            let Some(limit) = config.limits.get(charge.limit) else {
                continue;
            };
            let key = window_table::slot_key(charge.id.slot(store.slots));
            update(&key, metrics, |value| {
                (
                    (),
                    window_table::release(value, &charge.id, &limit.policy, now, charge.slots, now),
                )
            })?;
            for state in w.iter_mut() {
                state.remaining =
                    (state.remaining + u64::from(charge.slots)).min(state.window.quota);
            }
        }
    }
    let (binding, retry_after_ms) = retry
        .iter()
        .copied()
        .enumerate()
        .max_by_key(|&(_, ms)| ms)
        .unwrap_or((0, 0));
    Ok(Outcome {
        admitted: !refused,
        retry_after_ms,
        binding,
        windows,
        table_full,
    })
}

/// Drop expired records from `count` slots starting at `start`; returns how
/// many records were reclaimed. Best effort: a lost CAS race means another
/// worker just rewrote (and so already swept) the slot.
pub fn sweep(store: &LocalStore, start: u32, count: u32, now: u64) -> u64 {
    let mut reclaimed = 0;
    for i in 0..count.min(store.slots) {
        let key = window_table::slot_key((start + i) % store.slots);
        let Ok((Some(value), Some(cas))) = abi::get_shared_data(&key) else {
            continue;
        };
        let Some(swept) = window_table::sweep(&value, now) else {
            continue;
        };
        let before = window_table::occupancy(&value, 0).0;
        let after = window_table::occupancy(&swept, 0).0;
        if abi::set_shared_data(&key, Some(&swept), Some(cas)).is_ok() {
            reclaimed += (before - after) as u64;
        }
    }
    reclaimed
}
