//! All-or-nothing admission of a request's charges against the local
//! window table, over any store of slots with compare-and-swap (Envoy
//! shared data in the filter, [`MemorySlots`] in tests).
//!
//! Every read-modify-write of a slot is a compare-and-swap loop: read the
//! slot with its CAS token, decide on that snapshot, write back only if no
//! other worker wrote in between, otherwise start again from a fresh read.
//! Slots are created once, before traffic (see [`ensure_slots`]), because
//! Envoy ignores CAS when a key does not exist yet.
//!
//! A request's charges are taken in order; if one is refused, those already
//! taken are given back and the rest are only looked at, to compute the
//! Retry-After of the whole request.

use crate::rate_limit::bill::Charge;
use crate::rate_limit::config::{LocalStore, RateLimitConfig};
use crate::rate_limit::sliding_window::WindowState;
use crate::rate_limit::window_table::{self, SlotAnswer};

/// Give up after this many lost races on one slot (never seen in practice:
/// it would take other workers writing the same slot continuously).
pub const MAX_CAS_ATTEMPTS: u32 = 64;

/// Why a slot write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Another writer got there first: read again.
    CasMismatch,
    /// Anything else the store answered.
    Failed(String),
}

/// Something worth counting or logging that happened in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// A compare-and-swap lost a race and was retried.
    CasRetry,
    /// A slot that could not be decoded was reset.
    SlotReset { key: String, problem: String },
    /// A slot was not pre-created (slots grew on a reload?): its
    /// unconditional creation may race with another worker's.
    MissingSlot { key: String },
}

/// Slots of the window table with compare-and-swap.
pub trait SlotStore {
    /// A slot's value and CAS token (`(None, None)` when absent).
    fn read(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), String>;
    /// Write a slot; with `cas`, only if nobody wrote since that token.
    fn write(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError>;
    /// Count an event (metrics); nothing by default.
    fn note(&mut self, _event: StoreEvent) {}
}

/// Create the slots that do not exist yet; returns how many. Called from
/// the root's configuration, which Envoy runs on the main thread before any
/// worker takes traffic; later calls (workers, reloads) find every slot
/// present and write nothing, so existing windows are never clobbered.
pub fn ensure_slots(slots: &mut dyn SlotStore, store: &LocalStore) -> Result<u32, String> {
    let mut created = 0;
    for slot in 0..store.slots {
        let key = window_table::slot_key(slot);
        let (_, cas) = slots.read(&key)?;
        if cas.is_none() {
            slots
                .write(&key, window_table::EMPTY_SLOT, None)
                .map_err(|e| format!("creating {key}: {e:?}"))?;
            created += 1;
        }
    }
    Ok(created)
}

/// Run `f` on a slot's value under a CAS loop. `f` returns its result and,
/// when the slot must change, the new value.
fn update<T>(
    slots: &mut dyn SlotStore,
    key: &str,
    mut f: impl FnMut(&[u8], &mut dyn SlotStore) -> (T, Option<Vec<u8>>),
) -> Result<T, String> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = slots.read(key).map_err(|s| format!("reading {key}: {s}"))?;
        let (out, write) = f(value.as_deref().unwrap_or(&[]), slots);
        let Some(new) = write else {
            return Ok(out);
        };
        if cas.is_none() {
            slots.note(StoreEvent::MissingSlot {
                key: key.to_string(),
            });
        }
        match slots.write(key, &new, cas) {
            Ok(()) => return Ok(out),
            Err(WriteError::CasMismatch) => slots.note(StoreEvent::CasRetry),
            Err(WriteError::Failed(s)) => return Err(format!("writing {key}: {s}")),
        }
    }
    Err(format!(
        "{key}: gave up after {MAX_CAS_ATTEMPTS} CAS conflicts"
    ))
}

/// The outcome of a request's charges.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub admitted: bool,
    /// Milliseconds until the whole request would fit (max over charges;
    /// `u64::MAX` when a charge can never fit its window).
    pub retry_after_ms: u64,
    /// Index of the charge that frees last (names the limit in the reply).
    pub binding: usize,
    /// Per charge, its windows after the decision.
    pub windows: Vec<Vec<WindowState>>,
    /// A charge's key was new and its slot had no room.
    pub table_full: bool,
}

enum Step {
    Admitted(Vec<WindowState>),
    Refused(u64, Vec<WindowState>),
    Full(u64),
}

fn step(decision: SlotAnswer) -> (Step, Option<Vec<u8>>) {
    match decision {
        SlotAnswer::Admitted { answer, value } => (Step::Admitted(answer.windows), Some(value)),
        SlotAnswer::Refused { answer } => {
            (Step::Refused(answer.retry_after_ms, answer.windows), None)
        }
        SlotAnswer::Full { retry_after_ms } => (Step::Full(retry_after_ms), None),
    }
}

/// Admit all of `charges` or none (see the module doc).
pub fn decide(
    slots: &mut dyn SlotStore,
    config: &RateLimitConfig,
    charges: &[Charge],
    now: u64,
) -> Result<Admission, String> {
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
        let result = update(slots, &key, |value, slots| {
            let (decision, problem) = window_table::admit(
                value,
                &charge.id,
                &limit.policy,
                now,
                charge.slots,
                store.keys_per_slot,
            );
            if let Some(problem) = problem {
                slots.note(StoreEvent::SlotReset {
                    key: key.clone(),
                    problem: problem.to_string(),
                });
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
            update(slots, &key, |value, _| {
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
    Ok(Admission {
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
pub fn sweep(
    slots: &mut dyn SlotStore,
    store: &LocalStore,
    start: u32,
    count: u32,
    now: u64,
) -> u64 {
    let mut reclaimed = 0;
    for i in 0..count.min(store.slots) {
        let key = window_table::slot_key((start + i) % store.slots);
        let Ok((Some(value), Some(cas))) = slots.read(&key) else {
            continue;
        };
        let Some(swept) = window_table::sweep(&value, now) else {
            continue;
        };
        let before = window_table::occupancy(&value, 0).0;
        let after = window_table::occupancy(&swept, 0).0;
        if slots.write(&key, &swept, Some(cas)).is_ok() {
            reclaimed += (before - after) as u64;
        }
    }
    reclaimed
}

/// Where a VM's background sweep stands. Every tick sweeps the next
/// `slots / SWEEP_PASS_TICKS` slots (rounded up), so each VM passes over the
/// whole table every `SWEEP_PASS_TICKS` ticks and expired windows are
/// reclaimed even for agents that never return; each VM starts somewhere
/// else (`seed`) so the VMs share the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepCursor(u32);

/// Ticks for one VM's full pass over the table.
pub const SWEEP_PASS_TICKS: u32 = 60;

impl SweepCursor {
    pub fn start(store: &LocalStore, seed: u64) -> Self {
        Self((seed % u64::from(store.slots.max(1))) as u32)
    }

    /// Sweep this tick's share of the table; returns the records reclaimed.
    pub fn tick(&mut self, slots: &mut dyn SlotStore, store: &LocalStore, now: u64) -> u64 {
        let batch = store.slots.div_ceil(SWEEP_PASS_TICKS);
        let reclaimed = sweep(slots, store, self.0, batch, now);
        self.0 = (self.0 + batch) % store.slots.max(1);
        reclaimed
    }
}

/// Slots in memory, with the same CAS rule as Envoy's shared data: a write
/// with a token succeeds only if nobody wrote since it was read. For tests
/// and host-side benchmarks.
#[derive(Default)]
pub struct MemorySlots {
    slots: std::collections::HashMap<String, (Vec<u8>, u32)>,
    version: u32,
    /// Events noted, in order.
    pub events: Vec<StoreEvent>,
    /// Called before every write: lets a test play another worker that
    /// writes the slot in between (returns the value it writes, if any).
    #[allow(clippy::type_complexity)]
    pub interloper: Option<Box<dyn FnMut(&str) -> Option<Vec<u8>>>>,
}

impl MemorySlots {
    fn put(&mut self, key: &str, value: Vec<u8>) {
        self.version = self.version.wrapping_add(1).max(1);
        self.slots.insert(key.to_string(), (value, self.version));
    }
}

impl SlotStore for MemorySlots {
    fn read(&mut self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), String> {
        Ok(match self.slots.get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn write(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        if let Some(meddle) = self.interloper.as_mut() {
            if let Some(theirs) = meddle(key) {
                self.put(key, theirs);
            }
        }
        if let (Some(cas), Some((_, current))) = (cas, self.slots.get(key)) {
            if cas != *current {
                return Err(WriteError::CasMismatch);
            }
        }
        self.put(key, value.to_vec());
        Ok(())
    }

    fn note(&mut self, event: StoreEvent) {
        self.events.push(event);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_passes_over_the_whole_table_in_its_ticks() {
        let store = LocalStore {
            slots: 120,
            keys_per_slot: 4,
        };
        let mut slots = MemorySlots::default();
        let mut cursor = SweepCursor::start(&store, 1_000_010);
        assert_eq!(cursor, SweepCursor(50));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..SWEEP_PASS_TICKS {
            let before = cursor.0;
            cursor.tick(&mut slots, &store, 0);
            seen.insert(before);
        }
        assert_eq!(cursor, SweepCursor(50), "one pass, back where it began");
        assert_eq!(seen.len(), 60, "2 slots a tick");
        assert_eq!(
            SweepCursor::start(
                &LocalStore {
                    slots: 0,
                    keys_per_slot: 1
                },
                7
            ),
            SweepCursor(0)
        );
    }
    use crate::protocol::request_facts::{RequestFacts, VerifiedIdentity};
    use crate::rate_limit::bill::{bill, Bill, OperationCall};

    /// Two limits on one operation: a roomy one first, a tight one second.
    const TWO_LIMITS: &str = r#"
limits:
  - name: roomy
    path: /mcp/tools/call
    maxRequests: 10
    windowSeconds: 60
  - name: tight
    path: /mcp/tools/call
    maxRequests: 2
    windowSeconds: 60
"#;

    fn charges(config: &RateLimitConfig, n: usize) -> Vec<Charge> {
        let one = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#;
        let body = format!("[{}]", vec![one; n].join(","));
        let body = if n == 1 { one.to_string() } else { body };
        let (_, facts) = RequestFacts::inspect(body.as_bytes()).unwrap();
        let identity = VerifiedIdentity {
            agent_id: "a-1".into(),
            ..Default::default()
        };
        match bill(config, Some(&identity), &OperationCall::from_facts(&facts)) {
            Bill::Charges { charges, .. } => charges,
            other => panic!("{other:?}"),
        }
    }

    fn remaining(a: &Admission) -> Vec<u64> {
        a.windows
            .iter()
            .map(|w| w.iter().map(|s| s.remaining).min().unwrap_or(0))
            .collect()
    }

    #[test]
    fn a_refused_charge_gives_back_those_already_taken() {
        let config = RateLimitConfig::load(TWO_LIMITS.as_bytes()).unwrap();
        let mut slots = MemorySlots::default();
        ensure_slots(&mut slots, &config.local).unwrap();
        let now = 1_000_000;
        let first = decide(&mut slots, &config, &charges(&config, 2), now).unwrap();
        assert!(first.admitted);
        assert_eq!(remaining(&first), [8, 0]);
        // one more: the roomy limit would take it, the tight one refuses,
        // so the roomy one must not keep it
        let refused = decide(&mut slots, &config, &charges(&config, 1), now).unwrap();
        assert!(!refused.admitted);
        assert_eq!(refused.binding, 1, "the tight limit decides");
        assert!(refused.retry_after_ms > 0);
        assert_eq!(remaining(&refused), [8, 0]);
        // the roomy window still holds exactly the first two
        let peek = decide(&mut slots, &config, &charges(&config, 1), now).unwrap();
        assert_eq!(remaining(&peek), [8, 0]);
        assert!(!peek.table_full);
    }

    #[test]
    fn a_lost_race_is_retried_on_a_fresh_read() {
        let config = RateLimitConfig::load(TWO_LIMITS.as_bytes()).unwrap();
        let mut slots = MemorySlots::default();
        ensure_slots(&mut slots, &config.local).unwrap();
        let c = charges(&config, 1);
        // Another worker admits the same request between our read and our
        // write, once per slot.
        let mut other = MemorySlots::default();
        ensure_slots(&mut other, &config.local).unwrap();
        let theirs = decide(&mut other, &config, &c, 5).unwrap();
        assert!(theirs.admitted);
        let mut written: Vec<(String, Vec<u8>)> = c
            .iter()
            .map(|ch| {
                let key = window_table::slot_key(ch.id.slot(config.local.slots));
                let (v, _) = other.read(&key).unwrap();
                (key, v.unwrap())
            })
            .collect();
        slots.interloper = Some(Box::new(move |key: &str| {
            let i = written.iter().position(|(k, _)| k == key)?;
            Some(written.swap_remove(i).1)
        }));
        let ours = decide(&mut slots, &config, &c, 5).unwrap();
        assert!(ours.admitted);
        // both admissions counted: nothing lost to the race
        assert_eq!(remaining(&ours), [8, 0]);
        assert!(slots.events.contains(&StoreEvent::CasRetry));
    }

    #[test]
    fn a_batch_over_a_window_never_fits() {
        let config = RateLimitConfig::load(TWO_LIMITS.as_bytes()).unwrap();
        let mut slots = MemorySlots::default();
        ensure_slots(&mut slots, &config.local).unwrap();
        let a = decide(&mut slots, &config, &charges(&config, 3), 7).unwrap();
        assert!(!a.admitted);
        assert_eq!(a.binding, 1);
        assert_eq!(remaining(&a)[0], 10, "nothing taken");
    }

    #[test]
    fn slots_are_created_once() {
        let config = RateLimitConfig::load(TWO_LIMITS.as_bytes()).unwrap();
        let mut slots = MemorySlots::default();
        let created = ensure_slots(&mut slots, &config.local).unwrap();
        assert_eq!(created, config.local.slots);
        assert_eq!(ensure_slots(&mut slots, &config.local).unwrap(), 0);
    }

    #[test]
    fn sweep_reclaims_expired_records() {
        let config = RateLimitConfig::load(TWO_LIMITS.as_bytes()).unwrap();
        let mut slots = MemorySlots::default();
        ensure_slots(&mut slots, &config.local).unwrap();
        decide(&mut slots, &config, &charges(&config, 1), 1_000).unwrap();
        let all = config.local.slots;
        assert_eq!(sweep(&mut slots, &config.local, 0, all, 2_000), 0);
        let later = 1_000 + 10 * 60_000;
        assert_eq!(sweep(&mut slots, &config.local, 0, all, later), 2);
    }
}
