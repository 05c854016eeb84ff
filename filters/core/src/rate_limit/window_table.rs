//! The local window store: every tracked key's admission log, packed into a
//! fixed number of shared-data entries ("slots").
//!
//! Envoy's shared data has no delete and no TTL, and a key created by two
//! workers at once can lose one write (CAS is ignored on creation). So the
//! filter never creates keys per agent: it pre-creates `slots` entries once
//! and hashes every (limit, key) pair into one of them. A slot holds the
//! records of the keys that hash to it; each write of a slot drops the records
//! that have expired (reclamation), and a slot holds at most `keys_per_slot`
//! live records, which bounds the tracked keys to `slots × keys_per_slot`.
//! A new key arriving at a full slot is refused ([`SlotAnswer::Full`]):
//! live windows are never evicted, so a full table can never let an agent
//! exceed its limit.
//!
//! Keys are identified by the first 128 bits of SHA-256(limit name, key):
//! fixed size whatever the agent id, no raw ids in memory, and distinct keys
//! never share a record (a collision needs ~2^64 keys).
//!
//! Slot encoding (little endian): `format: u8 = 2`, then records
//! `id: [u8; 16] | expires_ms: u64 | base_ms: u64 | words: u16 | words × u32`.
//! The words are the key's history (`sliding_window::Admissions`), as
//! offsets from `base_ms` (ascending):
//! - exact policies (1 ms buckets, at most 128 admissions): one offset per
//!   admission, so a quiet key costs 38 bytes and the recipe's 60 + 10 per
//!   minute at most 34 + 4 × 120;
//! - bucketed policies (larger quotas): `(offset, admitted)` pairs, one per
//!   bucket, at most 129 pairs (34 + 8 × 129 bytes) whatever the quota, so
//!   a busy agent's record is no bigger than that.
//!
//! (Format 1 is read as garbage: a module upgrade starts windows afresh
//! once.)

use crate::rate_limit::sliding_window::{self, Admissions, WindowAnswer, WindowPolicy};
use sha2::{Digest, Sha256};

const FORMAT: u8 = 2;
/// An empty slot, as written when the slot is created.
pub const EMPTY_SLOT: &[u8] = &[FORMAT];
const HEADER: usize = 16 + 8 + 8 + 2;

/// Identity of one (limit, key) window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    pub fn of(limit_name: &str, key: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(limit_name.as_bytes());
        hasher.update([0u8]);
        hasher.update(key.as_bytes());
        let digest = hasher.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(digest.get(..16).unwrap_or(&[0u8; 16]));
        Self(id)
    }

    /// Which slot of a table with `slots` slots holds this key.
    pub fn slot(&self, slots: u32) -> u32 {
        let mut head = [0u8; 8];
        head.copy_from_slice(self.0.get(..8).unwrap_or(&[0u8; 8]));
        (u64::from_le_bytes(head) % u64::from(slots.max(1))) as u32
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Shared-data key of a slot.
pub fn slot_key(slot: u32) -> String {
    format!("gw_rate_limit/v1/{slot}")
}

/// Outcome of [`admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAnswer {
    /// Admitted: write `value` back (compare-and-swap).
    Admitted {
        answer: WindowAnswer,
        value: Vec<u8>,
    },
    /// The window is full; nothing to write.
    Refused { answer: WindowAnswer },
    /// The key is new and its slot already holds `keys_per_slot` live
    /// records: refused until the soonest of them expires.
    Full { retry_after_ms: u64 },
}

struct Record<'a> {
    id: &'a [u8],
    expires_ms: u64,
    bytes: &'a [u8],
}

impl Record<'_> {
    /// The history, read the way `policy` wrote it (see the module doc).
    fn history(&self, policy: &WindowPolicy) -> Vec<Admissions> {
        let base = read_u64(self.bytes, 24);
        let mut words = self
            .bytes
            .get(HEADER..)
            .unwrap_or(&[])
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or([0; 4])));
        let mut history: Vec<Admissions> = Vec::new();
        if policy.bucket_ms() > 1 {
            while let (Some(offset), Some(count)) = (words.next(), words.next()) {
                history.push(Admissions {
                    start_ms: base + u64::from(offset),
                    count,
                });
            }
        } else {
            for offset in words {
                let start_ms = base + u64::from(offset);
                match history.last_mut() {
                    Some(last) if last.start_ms == start_ms => last.count += 1,
                    _ => history.push(Admissions { start_ms, count: 1 }),
                }
            }
        }
        history
    }
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        buf.copy_from_slice(src);
    }
    u64::from_le_bytes(buf)
}

/// The records of a slot value. An empty value is an empty slot; a value
/// that does not decode (unknown format, truncated) is treated as empty and
/// reported, so one bad slot cannot wedge its keys forever.
fn records(value: &[u8]) -> Result<Vec<Record<'_>>, String> {
    let Some((&format, mut rest)) = value.split_first() else {
        return Ok(Vec::new());
    };
    if format != FORMAT {
        return Err(format!("unknown slot format {format}"));
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let count = match rest.get(32..34).and_then(|c| <[u8; 2]>::try_from(c).ok()) {
            Some(c) => usize::from(u16::from_le_bytes(c)),
            None => return Err("truncated record header".into()),
        };
        let len = HEADER + 4 * count;
        let Some(bytes) = rest.get(..len) else {
            return Err("truncated record".into());
        };
        out.push(Record {
            id: bytes.get(..16).unwrap_or(&[]),
            expires_ms: read_u64(bytes, 16),
            bytes,
        });
        rest = rest.get(len..).unwrap_or(&[]);
    }
    Ok(out)
}

fn encode_record(out: &mut Vec<u8>, id: &KeyId, history: &[Admissions], policy: &WindowPolicy) {
    let Some(base) = history.first().map(|a| a.start_ms) else {
        return;
    };
    // Offsets are u32 milliseconds: config validation keeps windows short
    // enough (2W ≤ 14 days < 49 days) that they always fit. A policy bounds
    // the words far below u16::MAX (at most 258).
    let offset = |a: &Admissions| u32::try_from(a.start_ms - base).unwrap_or(u32::MAX);
    let bucketed = policy.bucket_ms() > 1;
    let words: usize = if bucketed {
        2 * history.len()
    } else {
        history.iter().map(|a| a.count as usize).sum()
    };
    let words = words.min(usize::from(u16::MAX));
    out.reserve(HEADER + 4 * words);
    out.extend_from_slice(&id.0);
    out.extend_from_slice(&sliding_window::expires_at(history, policy).to_le_bytes());
    out.extend_from_slice(&base.to_le_bytes());
    out.extend_from_slice(&(words as u16).to_le_bytes());
    let mut left = words;
    for a in history {
        let (word, times) = if bucketed {
            (offset(a), 1)
        } else {
            (offset(a), a.count as usize)
        };
        for _ in 0..times.min(left) {
            out.extend_from_slice(&word.to_le_bytes());
        }
        left = left.saturating_sub(times);
        if bucketed && left > 0 {
            out.extend_from_slice(&a.count.to_le_bytes());
            left -= 1;
        }
        if left == 0 {
            break;
        }
    }
}

/// Rebuild a slot: live records other than `id`, then `id`'s new history.
fn rebuild(
    records: &[Record<'_>],
    now: u64,
    id: &KeyId,
    history: &[Admissions],
    policy: &WindowPolicy,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + records.iter().map(|r| r.bytes.len()).sum::<usize>());
    out.push(FORMAT);
    for r in records {
        if r.id != id.0 && r.expires_ms > now {
            out.extend_from_slice(r.bytes);
        }
    }
    encode_record(&mut out, id, history, policy);
    out
}

/// Try to admit `n` slots for `id` at `now` in the slot whose current value
/// is `value`. Pure: the caller writes `value` back with compare-and-swap and
/// retries on a mismatch.
pub fn admit(
    value: &[u8],
    id: &KeyId,
    policy: &WindowPolicy,
    now: u64,
    n: u32,
    keys_per_slot: u32,
) -> (SlotAnswer, Option<String>) {
    let (records, problem) = match records(value) {
        Ok(r) => (r, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mine = records.iter().find(|r| r.id == id.0 && r.expires_ms > now);
    let mut history = mine.map(|r| r.history(policy)).unwrap_or_default();
    if mine.is_none() {
        let live: Vec<u64> = records
            .iter()
            .filter(|r| r.expires_ms > now)
            .map(|r| r.expires_ms)
            .collect();
        if live.len() >= keys_per_slot as usize {
            let soonest = live.iter().copied().min().unwrap_or(now);
            return (
                SlotAnswer::Full {
                    retry_after_ms: soonest.saturating_sub(now).max(1),
                },
                problem,
            );
        }
    }
    let answer = sliding_window::decide(policy, &mut history, now, n);
    let decision = if answer.admitted {
        let value = rebuild(&records, now, id, &history, policy);
        SlotAnswer::Admitted { answer, value }
    } else {
        SlotAnswer::Refused { answer }
    };
    (decision, problem)
}

/// Undo `n` admissions of `id` made at `at` (another limit of the same
/// request refused it). `None` when there is nothing to undo.
pub fn release(
    value: &[u8],
    id: &KeyId,
    policy: &WindowPolicy,
    at: u64,
    n: u32,
    now: u64,
) -> Option<Vec<u8>> {
    let records = records(value).ok()?;
    let mine = records.iter().find(|r| r.id == id.0)?;
    let mut history = mine.history(policy);
    if !sliding_window::release(&mut history, policy, at, n) {
        return None;
    }
    Some(rebuild(&records, now, id, &history, policy))
}

/// Drop expired records. `None` when nothing expired (no write needed).
pub fn sweep(value: &[u8], now: u64) -> Option<Vec<u8>> {
    let records = records(value).ok()?;
    if records.iter().all(|r| r.expires_ms > now) {
        return None;
    }
    let mut out = vec![FORMAT];
    for r in records.iter().filter(|r| r.expires_ms > now) {
        out.extend_from_slice(r.bytes);
    }
    Some(out)
}

/// (live records, live history words) of a slot, for metrics and benchmarks.
pub fn occupancy(value: &[u8], now: u64) -> (usize, usize) {
    records(value)
        .map(|rs| {
            let live = rs.iter().filter(|r| r.expires_ms > now);
            live.fold((0, 0), |(k, e), r| {
                (k + 1, e + (r.bytes.len() - HEADER) / 4)
            })
        })
        .unwrap_or((0, 0))
}

/// Bytes one record takes with `words` history words (see the module doc).
pub fn record_size(words: usize) -> usize {
    HEADER + 4 * words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(d: &SlotAnswer) -> Option<&Vec<u8>> {
        match d {
            SlotAnswer::Admitted { value, .. } => Some(value),
            _ => None,
        }
    }

    #[test]
    fn keys_are_distinct_per_limit_and_key() {
        let a = KeyId::of("tools/call", "agent-a");
        assert_eq!(a, KeyId::of("tools/call", "agent-a"));
        assert_ne!(a, KeyId::of("tools/call", "agent-b"));
        assert_ne!(a, KeyId::of("tasks/send", "agent-a"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(KeyId::of("ab", "c"), KeyId::of("a", "bc"));
        assert!(a.slot(16384) < 16384);
        assert_eq!(a.hex().len(), 32);
    }

    #[test]
    fn two_keys_in_one_slot_keep_separate_windows() {
        let p = WindowPolicy::new(2, 10, 0);
        let (a, b) = (KeyId::of("l", "a"), KeyId::of("l", "b"));
        let mut value = Vec::new();
        for t in [1_000, 1_001] {
            let (d, _) = admit(&value, &a, &p, t, 1, 8);
            value = admitted(&d).expect("a admitted").clone();
        }
        let (d, _) = admit(&value, &a, &p, 1_002, 1, 8);
        assert!(matches!(d, SlotAnswer::Refused { .. }));
        // b shares the slot value but not the window.
        for t in [1_003, 1_004] {
            let (d, _) = admit(&value, &b, &p, t, 1, 8);
            value = admitted(&d).expect("b admitted").clone();
        }
        assert_eq!(occupancy(&value, 1_005), (2, 4));
        assert_eq!(value.len(), 1 + 2 * record_size(2));
    }

    #[test]
    fn expired_records_are_reclaimed_on_write_and_sweep() {
        let p = WindowPolicy::new(5, 1, 0);
        let mut value = Vec::new();
        for (i, t) in [1_000u64, 1_100, 1_200].iter().enumerate() {
            let id = KeyId::of("l", &format!("k{i}"));
            value = admitted(&admit(&value, &id, &p, *t, 1, 8).0)
                .unwrap()
                .clone();
        }
        assert_eq!(occupancy(&value, 1_300).0, 3);
        // At 2_150 the first two have expired (1_000+1_000, 1_100+1_000).
        let later = admitted(&admit(&value, &KeyId::of("l", "new"), &p, 2_150, 1, 8).0)
            .unwrap()
            .clone();
        assert_eq!(occupancy(&later, 2_150), (2, 2));
        assert_eq!(later.len(), 1 + 2 * record_size(1));
        let swept = sweep(&later, 3_200).unwrap();
        assert_eq!(swept, vec![FORMAT]);
        assert_eq!(sweep(&swept, 3_300), None);
    }

    #[test]
    fn a_full_slot_refuses_new_keys_but_never_evicts_live_ones() {
        let p = WindowPolicy::new(5, 10, 0);
        let mut value = Vec::new();
        for i in 0..3 {
            let id = KeyId::of("l", &format!("k{i}"));
            value = admitted(&admit(&value, &id, &p, 1_000 + i, 1, 3).0)
                .unwrap()
                .clone();
        }
        let (d, _) = admit(&value, &KeyId::of("l", "newcomer"), &p, 2_000, 1, 3);
        // k0 expires at 1_000 + 10_000.
        assert_eq!(
            d,
            SlotAnswer::Full {
                retry_after_ms: 9_000
            }
        );
        // Tracked keys still get their windows.
        assert!(admitted(&admit(&value, &KeyId::of("l", "k1"), &p, 2_000, 1, 3).0).is_some());
        // Once one expires, the newcomer gets its place.
        assert!(
            admitted(&admit(&value, &KeyId::of("l", "newcomer"), &p, 11_000, 1, 3).0).is_some()
        );
    }

    #[test]
    fn release_gives_the_slots_back() {
        let p = WindowPolicy::new(1, 10, 0);
        let id = KeyId::of("l", "a");
        let value = admitted(&admit(&[], &id, &p, 5_000, 1, 4).0)
            .unwrap()
            .clone();
        assert!(matches!(
            admit(&value, &id, &p, 5_001, 1, 4).0,
            SlotAnswer::Refused { .. }
        ));
        let value = release(&value, &id, &p, 5_000, 1, 5_001).unwrap();
        assert!(admitted(&admit(&value, &id, &p, 5_002, 1, 4).0).is_some());
    }

    #[test]
    fn garbage_is_reported_and_treated_as_empty() {
        let p = WindowPolicy::new(1, 10, 0);
        let (d, problem) = admit(&[9, 9, 9], &KeyId::of("l", "a"), &p, 1, 1, 4);
        assert!(admitted(&d).is_some());
        assert!(problem.unwrap().contains("format"));
        let (_, problem) = admit(&[FORMAT, 1, 2], &KeyId::of("l", "a"), &p, 1, 1, 4);
        assert!(problem.unwrap().contains("truncated"));
    }

    #[test]
    fn round_trip_keeps_millisecond_times() {
        let p = WindowPolicy::new(60, 60, 10);
        let id = KeyId::of("l", "a");
        let mut value = Vec::new();
        let now = 1_764_000_000_123u64;
        for i in 0..70 {
            value = admitted(&admit(&value, &id, &p, now + i * 7, 1, 4).0)
                .unwrap()
                .clone();
        }
        let rs = records(&value).unwrap();
        assert_eq!(
            rs[0].history(&p),
            (0..70)
                .map(|i| Admissions {
                    start_ms: now + i * 7,
                    count: 1
                })
                .collect::<Vec<_>>()
        );
        assert_eq!(rs[0].expires_ms, now + 69 * 7 + 120_000);
    }

    #[test]
    fn a_busy_key_keeps_a_bounded_record() {
        // 1,000,000 per minute, admitted 20 times a millisecond for 2 s:
        // the record holds one pair per bucket, not one entry per admission.
        let id = KeyId::of("tools/call", "busy");
        let p = WindowPolicy::new(1_000_000, 60, 0);
        let mut value = Vec::new();
        let now = 1_764_000_000_000u64;
        for i in 0..40_000u64 {
            value = admitted(&admit(&value, &id, &p, now + i / 20, 1, 4).0)
                .unwrap()
                .clone();
        }
        let history = records(&value).unwrap()[0].history(&p);
        assert_eq!(
            history.iter().map(|a| u64::from(a.count)).sum::<u64>(),
            40_000
        );
        assert!(value.len() <= 1 + record_size(2 * p.max_buckets() as usize));
        assert!(
            history.len() <= 4,
            "{} buckets of {} ms",
            history.len(),
            p.bucket_ms()
        );
    }
}
