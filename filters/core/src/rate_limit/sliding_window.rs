//! An exact sliding-window limit over a log of admission times.
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
//! sliding window "at most M in any W seconds" and implies rule 2. Windows
//! slide continuously (millisecond resolution): every admission ages out
//! exactly W (and 2W) after it happened, never at a window boundary.
//!
//! The log keeps every admission of the last W (2W with a burst), so it holds
//! at most M + B (2M) timestamps per key: exact, with memory proportional to
//! the quota. The approximate two-bucket "sliding window counter" is not used.

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
pub struct Verdict {
    pub admitted: bool,
    /// Milliseconds until the request could be admitted (0 when admitted;
    /// `u64::MAX` when it never can: `n` exceeds a window's quota).
    pub retry_after_ms: u64,
    pub windows: Vec<WindowState>,
}

impl Verdict {
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

    /// The most timestamps a log under this policy ever holds.
    pub fn max_log_len(&self) -> u64 {
        // Rule 2 (or rule 1 without a burst) bounds what the retention keeps.
        self.windows().last().map_or(0, |w| w.quota)
    }
}

/// Number of log entries inside the window `(now − length, ...]`.
fn count_in(log: &[u64], now: u64, length_ms: u64) -> usize {
    let floor = now.saturating_sub(length_ms);
    // log is ascending: entries > floor form a suffix.
    log.len() - log.partition_point(|&e| e <= floor)
}

/// Earliest time ≥ `now` at which `n` more slots fit in `window`, or `None`
/// if they never do.
fn earliest_fit(log: &[u64], now: u64, window: Window, n: u64) -> Option<u64> {
    let room = window.quota.checked_sub(n)?;
    let len = log.len() as u64;
    if len <= room || (count_in(log, now, window.length_ms) as u64) <= room {
        return Some(now);
    }
    // The oldest `len - room` entries must have aged out: the last of them
    // leaves the window at its timestamp + length.
    let must_leave = usize::try_from(len - room).ok()?;
    let last = *log.get(must_leave.checked_sub(1)?)?;
    Some(now.max(last.saturating_add(window.length_ms)))
}

fn window_state(log: &[u64], now: u64, window: Window) -> WindowState {
    let inside = count_in(log, now, window.length_ms);
    let oldest = log.get(log.len() - inside).copied();
    WindowState {
        window,
        remaining: window.quota.saturating_sub(inside as u64),
        next_free_ms: oldest.map_or(0, |e| {
            e.saturating_add(window.length_ms).saturating_sub(now)
        }),
    }
}

/// Decide whether `n` slots can be admitted at `now` given the ascending
/// `log` of earlier admissions; on admission, record them in `log` and drop
/// entries older than the policy's retention.
pub fn decide(policy: &WindowPolicy, log: &mut Vec<u64>, now: u64, n: u32) -> Verdict {
    let n64 = u64::from(n);
    let windows = policy.windows();
    let mut earliest = Some(now);
    for window in &windows {
        earliest = match (earliest, earliest_fit(log, now, *window, n64)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    let admitted = earliest == Some(now);
    if admitted {
        // Clocks can step back: keep the log sorted whatever `now` is.
        let at = log.partition_point(|&e| e <= now);
        log.splice(at..at, (0..n).map(|_| now));
    }
    prune(log, now, policy.retention_ms());
    Verdict {
        admitted,
        retry_after_ms: match earliest {
            Some(t) => t - now,
            None => u64::MAX,
        },
        windows: windows.iter().map(|w| window_state(log, now, *w)).collect(),
    }
}

/// Drop entries that no window can count any more.
pub fn prune(log: &mut Vec<u64>, now: u64, retention_ms: u64) {
    let floor = now.saturating_sub(retention_ms);
    let old = log.partition_point(|&e| e <= floor);
    log.drain(..old);
}

/// Undo an admission of `n` slots at `at` (when a later limit of the same
/// request refused it). Returns whether all of them were found.
pub fn release(log: &mut Vec<u64>, at: u64, n: u32) -> bool {
    let start = log.partition_point(|&e| e < at);
    let end = log.partition_point(|&e| e <= at);
    let take = (end - start).min(n as usize);
    log.drain(start..start + take);
    take == n as usize
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
        assert!(log.len() as u64 <= p.max_log_len());
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
                assert!(log.len() as u64 <= p.max_log_len());
            }
        }
    }

    #[test]
    fn release_undoes_an_admission() {
        let p = WindowPolicy::new(2, 10, 0);
        let mut log = vec![];
        assert!(decide(&p, &mut log, 1_000, 2).admitted);
        assert!(release(&mut log, 1_000, 1));
        assert!(decide(&p, &mut log, 1_001, 1).admitted);
        assert!(!release(&mut log, 5, 1));
    }

    #[test]
    fn clock_stepping_back_keeps_the_log_sorted() {
        let p = WindowPolicy::new(5, 10, 0);
        let mut log = vec![];
        assert!(decide(&p, &mut log, 50_000, 1).admitted);
        assert!(decide(&p, &mut log, 40_000, 1).admitted);
        assert!(log.windows(2).all(|w| w[0] <= w[1]));
    }
}
