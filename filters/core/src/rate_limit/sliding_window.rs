//! A sliding-window limit whose state and decision cost are bounded,
//! whatever the limit and however busy the key.
//!
//! # Definition (the one the docs and tests use)
//!
//! A limit has `maxRequests` (M), `windowSeconds` (W) and `burstAllowance`
//! (B). A request that needs `n` slots (a JSON-RPC batch of three tool calls
//! needs three) is admitted at time `t` if and only if, counting the slots
//! already admitted for the same key,
//!
//! 1. admitted in `(t − W, t]` + n ≤ M + B, and
//! 2. when B > 0: admitted in `(t − 2W, t]` + n ≤ 2M.
//!
//! So an agent may go up to B over its quota in any one window, but pays it
//! back in the next: over any two consecutive windows it never gets more than
//! 2M, and its long-run rate is M per W. With B = 0 rule 1 is the plain
//! sliding window "at most M in any W seconds" and implies rule 2.
//!
//! # State: admissions per time bucket
//!
//! A key's history is a list of [`Admissions`]: how many slots were admitted
//! in one bucket of `bucket_ms` milliseconds. A bucket counts in a window as
//! long as its last millisecond is inside it, and leaves the window when
//! that millisecond does.
//!
//! - Small quotas (a history that could hold at most [`EXACT_MAX`]
//!   admissions, the recipe's 60 + 10 per minute among them) use 1 ms
//!   buckets: every admission ages out exactly W (and 2W) after it happened.
//!   Exact.
//! - Larger quotas use `bucket_ms = W / BUCKETS_PER_WINDOW`: the history
//!   holds at most `2 × BUCKETS_PER_WINDOW + 1` buckets whatever M is, so
//!   memory and decision time do not grow with the limit or the traffic.
//!   A bucket that straddles the window's trailing edge counts whole until
//!   its last millisecond leaves: the limiter may **under-admit** by at most
//!   the admissions of one bucket (W / 64 of history) and for at most one
//!   bucket's time, and **never over-admits**.

/// Most admissions a history may hold and still be kept exactly (1 ms
/// buckets): bounded by the quota, so bounded memory either way.
pub const EXACT_MAX: u64 = 128;
/// Buckets per window length for larger quotas.
pub const BUCKETS_PER_WINDOW: u64 = 64;

/// Slots admitted in one bucket: `[start_ms, start_ms + bucket_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admissions {
    pub start_ms: u64,
    pub count: u32,
}

/// The constraints of one limit, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPolicy {
    pub max_requests: u32,
    pub window_ms: u64,
    pub burst: u32,
}

/// One of the (one or two) sliding windows a policy enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// How many slots the window admits.
    pub quota: u64,
    pub length_ms: u64,
}

/// What one window looks like right after a decision, for the IETF
/// `RateLimit` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    pub window: Window,
    /// Slots still free in the window now.
    pub remaining: u64,
    /// Milliseconds until the oldest admission in the window ages out (the
    /// next time `remaining` grows); 0 when the window is empty.
    pub next_free_ms: u64,
}

/// Outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowAnswer {
    pub admitted: bool,
    /// Milliseconds until the request could be admitted (0 when admitted;
    /// `u64::MAX` when it never can: `n` exceeds a window's quota).
    pub retry_after_ms: u64,
    pub windows: Vec<WindowState>,
}

impl WindowAnswer {
    /// Whole seconds until a slot frees, as `Retry-After` wants them
    /// (rounded up, so that retrying after that many seconds succeeds).
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after_ms)
    }
}

pub fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

impl WindowPolicy {
    pub fn new(max_requests: u32, window_seconds: u32, burst: u32) -> Self {
        Self {
            max_requests,
            window_ms: u64::from(window_seconds) * 1000,
            burst,
        }
    }

    /// The windows this policy enforces: `(W, M + B)`, plus `(2W, 2M)` with a burst.
    pub fn windows(&self) -> Vec<Window> {
        let mut windows = vec![Window {
            quota: u64::from(self.max_requests) + u64::from(self.burst),
            length_ms: self.window_ms,
        }];
        if self.burst > 0 {
            windows.push(Window {
                quota: 2 * u64::from(self.max_requests),
                length_ms: 2 * self.window_ms,
            });
        }
        windows
    }

    /// How long an admission must be remembered.
    pub fn retention_ms(&self) -> u64 {
        if self.burst > 0 {
            2 * self.window_ms
        } else {
            self.window_ms
        }
    }

    /// The most admissions a history under this policy ever counts.
    pub fn max_admissions(&self) -> u64 {
        // Rule 2 (or rule 1 without a burst) bounds what the retention keeps.
        if self.burst > 0 {
            2 * u64::from(self.max_requests)
        } else {
            u64::from(self.max_requests)
        }
    }

    /// Width of a history bucket (see the module doc): 1 ms (exact) for
    /// small quotas, `W / BUCKETS_PER_WINDOW` for larger ones.
    pub fn bucket_ms(&self) -> u64 {
        if self.max_admissions() <= EXACT_MAX {
            1
        } else {
            // rounded up, so that a retention of 2W spans at most 128 buckets
            self.window_ms.div_ceil(BUCKETS_PER_WINDOW).max(1)
        }
    }

    /// The most buckets a history under this policy ever holds.
    pub fn max_buckets(&self) -> u64 {
        let bucket = self.bucket_ms();
        if bucket == 1 {
            self.max_admissions()
        } else {
            // aligned buckets whose last millisecond is within retention
            self.retention_ms().div_ceil(bucket) + 1
        }
    }
}

/// When bucket `a` stops counting in a window of `length_ms`: its last
/// millisecond has left `(t − length, t]`.
fn leaves_at(a: &Admissions, bucket_ms: u64, length_ms: u64) -> u64 {
    a.start_ms
        .saturating_add(bucket_ms - 1)
        .saturating_add(length_ms)
}

/// A history's buckets and their running total: windows are counted by
/// finding where they start (binary search) and subtracting what lies
/// before, so a decision costs a few passes over the oldest buckets only.
struct Counted<'a> {
    history: &'a [Admissions],
    total: u64,
    bucket_ms: u64,
}

impl<'a> Counted<'a> {
    fn new(history: &'a [Admissions], bucket_ms: u64) -> Self {
        Self {
            history,
            total: history.iter().map(|a| u64::from(a.count)).sum(),
            bucket_ms,
        }
    }

    /// Slots counted in the window `(now − length, now]`, and the index of
    /// the first bucket counted.
    fn count_in(&self, now: u64, length_ms: u64) -> (u64, usize) {
        // ascending: the buckets still counted form a suffix
        let first = self
            .history
            .partition_point(|a| leaves_at(a, self.bucket_ms, length_ms) <= now);
        let before: u64 = self
            .history
            .get(..first)
            .unwrap_or(&[])
            .iter()
            .map(|a| u64::from(a.count))
            .sum();
        (self.total - before, first)
    }

    /// Earliest time ≥ `now` at which `n` more slots fit in `window`, or
    /// `None` if they never do.
    fn earliest_fit(&self, now: u64, window: Window, n: u64) -> Option<u64> {
        let room = window.quota.checked_sub(n)?;
        let (mut inside, first) = self.count_in(now, window.length_ms);
        if inside <= room {
            return Some(now);
        }
        // The oldest buckets must leave until what stays fits.
        for a in self.history.get(first..).unwrap_or(&[]) {
            inside -= u64::from(a.count);
            if inside <= room {
                return Some(now.max(leaves_at(a, self.bucket_ms, window.length_ms)));
            }
        }
        None
    }

    fn window_state(&self, now: u64, window: Window) -> WindowState {
        let (inside, first) = self.count_in(now, window.length_ms);
        WindowState {
            window,
            remaining: window.quota.saturating_sub(inside),
            next_free_ms: self.history.get(first).map_or(0, |a| {
                leaves_at(a, self.bucket_ms, window.length_ms).saturating_sub(now)
            }),
        }
    }
}

/// Decide whether `n` slots can be admitted at `now` given the ascending
/// `history` of earlier admissions; on admission, record them and drop
/// buckets older than the policy's retention. Cost: a few passes over at
/// most [`WindowPolicy::max_buckets`] buckets.
pub fn decide(
    policy: &WindowPolicy,
    history: &mut Vec<Admissions>,
    now: u64,
    n: u32,
) -> WindowAnswer {
    let n64 = u64::from(n);
    let bucket_ms = policy.bucket_ms();
    let windows = policy.windows();
    let counted = Counted::new(history, bucket_ms);
    let mut earliest = Some(now);
    for window in &windows {
        earliest = match (earliest, counted.earliest_fit(now, *window, n64)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    let admitted = earliest == Some(now);
    if admitted {
        record(history, now - now % bucket_ms, n);
    }
    prune(history, now, policy);
    let counted = Counted::new(history, bucket_ms);
    WindowAnswer {
        admitted,
        retry_after_ms: match earliest {
            Some(t) => t - now,
            None => u64::MAX,
        },
        windows: windows
            .iter()
            .map(|w| counted.window_state(now, *w))
            .collect(),
    }
}

/// Add `n` slots to the bucket starting at `start_ms`, keeping the history
/// ascending (clocks can step back).
fn record(history: &mut Vec<Admissions>, start_ms: u64, n: u32) {
    let at = history.partition_point(|a| a.start_ms < start_ms);
    match history.get_mut(at) {
        Some(a) if a.start_ms == start_ms => a.count = a.count.saturating_add(n),
        _ => history.insert(at, Admissions { start_ms, count: n }),
    }
}

/// Drop buckets that no window can count any more.
pub fn prune(history: &mut Vec<Admissions>, now: u64, policy: &WindowPolicy) {
    let (bucket_ms, retention_ms) = (policy.bucket_ms(), policy.retention_ms());
    let old = history.partition_point(|a| leaves_at(a, bucket_ms, retention_ms) <= now);
    history.drain(..old);
}

/// When the last bucket of `history` stops counting in any window.
pub fn expires_at(history: &[Admissions], policy: &WindowPolicy) -> u64 {
    history.last().map_or(0, |a| {
        leaves_at(a, policy.bucket_ms(), policy.retention_ms())
    })
}

/// Undo an admission of `n` slots at `at` (when a later limit of the same
/// request refused it). Returns whether all of them were found.
pub fn release(history: &mut Vec<Admissions>, policy: &WindowPolicy, at: u64, n: u32) -> bool {
    let bucket_ms = policy.bucket_ms();
    let start_ms = at - at % bucket_ms;
    let i = history.partition_point(|a| a.start_ms < start_ms);
    let Some(a) = history.get_mut(i).filter(|a| a.start_ms == start_ms) else {
        return false;
    };
    let taken = a.count.min(n);
    a.count -= taken;
    if a.count == 0 {
        history.remove(i);
    }
    taken == n
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    /// Brute-force reference: check the definition directly.
    fn allowed_by_definition(policy: &WindowPolicy, admitted: &[u64], t: u64, n: u64) -> bool {
        let w = policy.window_ms;
        let in_w = admitted.iter().filter(|&&e| e + w > t).count() as u64;
        let ok1 = in_w + n <= u64::from(policy.max_requests) + u64::from(policy.burst);
        let ok2 = if policy.burst > 0 {
            let in_2w = admitted.iter().filter(|&&e| e + 2 * w > t).count() as u64;
            in_2w + n <= 2 * u64::from(policy.max_requests)
        } else {
            true
        };
        ok1 && ok2
    }

    #[test]
    fn plain_window_admits_max_then_refuses() {
        let p = WindowPolicy::new(3, 10, 0);
        let mut log = vec![];
        for i in 0..3 {
            let v = decide(&p, &mut log, 1_000_000 + i * 100, 1);
            assert!(v.admitted, "{i}");
            assert_eq!(v.windows[0].remaining, 2 - i);
        }
        let v = decide(&p, &mut log, 1_000_500, 1);
        assert!(!v.admitted);
        // oldest (t=1_000_000) leaves at 1_010_000: 9.5 s away -> Retry-After 10
        assert_eq!(v.retry_after_ms, 9_500);
        assert_eq!(v.retry_after_secs(), 10);
        assert_eq!(log.len(), 3, "a refusal records nothing");
    }

    #[test]
    fn window_slides_continuously_not_at_boundaries() {
        let p = WindowPolicy::new(3, 10, 0);
        let mut log = vec![];
        let t0 = 5_000_000;
        assert!(decide(&p, &mut log, t0, 1).admitted);
        assert!(decide(&p, &mut log, t0 + 4 * S, 1).admitted);
        assert!(decide(&p, &mut log, t0 + 8 * S, 1).admitted);
        // Full until the first admission is exactly W old.
        assert!(!decide(&p, &mut log, t0 + 10 * S - 1, 1).admitted);
        assert!(decide(&p, &mut log, t0 + 10 * S, 1).admitted);
        // Next one frees at t0+14s, not at some window boundary.
        let v = decide(&p, &mut log, t0 + 11 * S, 1);
        assert!(!v.admitted);
        assert_eq!(v.retry_after_ms, 3 * S);
        assert!(!decide(&p, &mut log, t0 + 14 * S - 1, 1).admitted);
        assert!(decide(&p, &mut log, t0 + 14 * S, 1).admitted);
    }

    #[test]
    fn burst_is_paid_back_in_the_next_window() {
        // Recipe: 60/min + burst 10.
        let p = WindowPolicy::new(60, 60, 10);
        let mut log = vec![];
        let t0 = 10_000_000;
        for i in 0..70 {
            assert!(decide(&p, &mut log, t0 + i, 1).admitted, "{i}");
        }
        let v = decide(&p, &mut log, t0 + 100, 1);
        assert!(!v.admitted, "71st in one window");
        assert_eq!(v.retry_after_ms, 60 * S - 100);
        // One window later the 70 left rule 1's window but still count in the
        // 2W window: only 2*60-70 = 50 more until they are 2W old.
        let t1 = t0 + 60 * S + 69;
        for i in 0..50 {
            assert!(decide(&p, &mut log, t1 + i, 1).admitted, "{i}");
        }
        let v = decide(&p, &mut log, t1 + 50, 1);
        assert!(!v.admitted);
        // Rule 2 binds: the first admission (t0) leaves the 2W window at t0+120s.
        assert_eq!(v.retry_after_ms, t0 + 120 * S - (t1 + 50));
        assert_eq!(v.windows[1].remaining, 0);
        assert_eq!(v.windows[0].remaining, 20);
        assert!(log.len() as u64 <= p.max_buckets());
    }

    #[test]
    fn batches_need_all_their_slots() {
        let p = WindowPolicy::new(5, 10, 0);
        let mut log = vec![];
        assert!(decide(&p, &mut log, 1_000_000, 3).admitted);
        assert!(!decide(&p, &mut log, 1_000_001, 3).admitted);
        assert!(decide(&p, &mut log, 1_000_002, 2).admitted);
        let v = decide(&p, &mut log, 1_000_003, 6);
        assert!(!v.admitted);
        assert_eq!(v.retry_after_ms, u64::MAX, "6 > quota: never");
    }

    #[test]
    fn retry_after_is_exactly_when_a_slot_frees() {
        let p = WindowPolicy::new(2, 5, 1);
        let mut log = vec![];
        let mut t = 1_000_000u64;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            t += rng % 1700;
            let v = decide(&p, &mut log, t, 1);
            if !v.admitted {
                let free = t + v.retry_after_ms;
                let mut probe = log.clone();
                assert!(
                    !decide(&p, &mut probe, free - 1, 1).admitted,
                    "admissible before"
                );
                let mut probe = log.clone();
                assert!(decide(&p, &mut probe, free, 1).admitted, "not at retry");
            }
        }
    }

    #[test]
    fn matches_the_definition_on_random_traffic() {
        for (m, w, b) in [(3, 2, 0), (5, 3, 2), (4, 1, 4), (60, 60, 10), (1, 1, 0)] {
            let p = WindowPolicy::new(m, w, b);
            let mut log = vec![];
            let mut all = vec![];
            let mut t = 7_000_000u64;
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(m);
            for _ in 0..3000 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                t += rng % (u64::from(w) * 400);
                let n = 1 + (rng >> 40) as u32 % 2;
                let expect = allowed_by_definition(&p, &all, t, u64::from(n));
                let v = decide(&p, &mut log, t, n);
                assert_eq!(v.admitted, expect, "m={m} w={w} b={b} t={t}");
                if v.admitted {
                    all.extend((0..n).map(|_| t));
                }
                assert!(log.len() as u64 <= p.max_buckets());
            }
        }
    }

    /// Large quotas count per bucket: never more than the definition
    /// allows, at most one bucket's worth less, in bounded memory.
    #[test]
    fn bucketed_windows_never_over_admit() {
        for (m, w, b) in [
            (500, 2, 100),
            (10_000, 1, 0),
            (1_000_000, 60, 0),
            (300, 64, 300),
        ] {
            let p = WindowPolicy::new(m, w, b);
            assert!(p.bucket_ms() > 1, "m={m}: bucketed");
            let mut log = vec![];
            let mut all: Vec<u64> = vec![];
            let mut t = 9_000_000u64;
            let mut rng = 0x2545_f491_4f6c_dd1du64 ^ u64::from(m);
            let step = (u64::from(w) * 1000 / u64::from(m)).max(1);
            for _ in 0..5_000 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                // about twice the allowed rate, with jitter
                t += rng % (step + 1);
                all.retain(|&e| e + p.retention_ms() > t);
                let n = 1 + (rng >> 40) as u32 % 3;
                let v = decide(&p, &mut log, t, n);
                if v.admitted {
                    assert!(
                        allowed_by_definition(&p, &all, t, u64::from(n)),
                        "over-admitted m={m} w={w} b={b} t={t}"
                    );
                    all.extend((0..n).map(|_| t));
                }
                assert!(log.len() as u64 <= p.max_buckets(), "{} buckets", log.len());
                assert!(p.max_buckets() <= 2 * BUCKETS_PER_WINDOW + 1);
            }
        }
    }

    #[test]
    fn bucketed_windows_admit_within_one_bucket_of_the_limit() {
        // A steady flood: every window admits at least M minus one
        // bucket's share, and never more than M.
        let p = WindowPolicy::new(640, 1, 0);
        let bucket = p.bucket_ms();
        assert_eq!(bucket, 1000u64.div_ceil(BUCKETS_PER_WINDOW));
        let mut log = vec![];
        let t0 = 50_000_000u64;
        let mut admitted_at = vec![];
        for k in 0..10 * 7_000u64 {
            let t = t0 + k / 7; // 7 attempts per ms, ten times the limit
            if decide(&p, &mut log, t, 1).admitted {
                admitted_at.push(t);
            }
        }
        for s in 1..9u64 {
            let from = t0 + s * 1000;
            let in_window = admitted_at
                .iter()
                .filter(|&&a| a >= from && a < from + 1000)
                .count() as u64;
            assert!(in_window <= 640, "window {s}: {in_window}");
            assert!(
                in_window >= 640 - 640 / BUCKETS_PER_WINDOW - 1,
                "window {s}: {in_window}"
            );
        }
    }

    #[test]
    fn release_undoes_an_admission() {
        let p = WindowPolicy::new(2, 10, 0);
        let mut log = vec![];
        assert!(decide(&p, &mut log, 1_000, 2).admitted);
        assert!(release(&mut log, &p, 1_000, 1));
        assert!(decide(&p, &mut log, 1_001, 1).admitted);
        assert!(!release(&mut log, &p, 5, 1));
    }

    #[test]
    fn clock_stepping_back_keeps_the_log_sorted() {
        let p = WindowPolicy::new(5, 10, 0);
        let mut log = vec![];
        assert!(decide(&p, &mut log, 50_000, 1).admitted);
        assert!(decide(&p, &mut log, 40_000, 1).admitted);
        assert!(log.windows(2).all(|w| w[0].start_ms <= w[1].start_ms));
    }
}
