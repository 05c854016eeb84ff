//! IETF `RateLimit-Policy` / `RateLimit` response fields
//! (draft-ietf-httpapi-ratelimit-headers-10, Structured Field lists).
//!
//! Each limit that counted the request advertises its windows as quota
//! policies: `"tools/call";q=70;w=60` is rule 1 of
//! [`crate::rate_limit::sliding_window`] (maxRequests + burstAllowance per window), and
//! with a burst `"tools/call:2w";q=120;w=120` is rule 2 (2 × maxRequests per
//! two windows). `RateLimit` gives, per policy, the remaining quota `r` and
//! `t`, the seconds until the oldest admission in that window ages out (when
//! `r` next grows; 0 when nothing is counted). Both are exact: they are read
//! from the same log the decision used.

use crate::rate_limit::bill::Charge;
use crate::rate_limit::config::RateLimitConfig;
use crate::rate_limit::sliding_window::{ceil_secs, WindowState};

pub const POLICY_HEADER: &str = "ratelimit-policy";
pub const STATE_HEADER: &str = "ratelimit";

/// One limit's windows right after a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitStatus {
    pub name: String,
    pub windows: Vec<WindowState>,
}

fn policy_name(name: &str, index: usize) -> String {
    if index == 0 {
        name.to_string()
    } else {
        format!("{name}:2w")
    }
}

/// Several keys of one limit (per-tool keys in a batch) collapse into the
/// most constrained one, so each policy appears once.
fn merged(statuses: &[LimitStatus]) -> Vec<LimitStatus> {
    let mut out: Vec<LimitStatus> = Vec::new();
    for s in statuses {
        match out.iter_mut().find(|o| o.name == s.name) {
            Some(existing) => {
                for (mine, theirs) in existing.windows.iter_mut().zip(&s.windows) {
                    if theirs.remaining < mine.remaining
                        || (theirs.remaining == mine.remaining
                            && theirs.next_free_ms > mine.next_free_ms)
                    {
                        *mine = *theirs;
                    }
                }
            }
            None => out.push(s.clone()),
        }
    }
    out
}

/// The fields for a request's `charges` and their windows after the
/// decision (one list per charge, in order); none when the configuration
/// turns them off.
pub fn for_charges(
    config: &RateLimitConfig,
    charges: &[Charge],
    windows: Vec<Vec<WindowState>>,
) -> Vec<(String, String)> {
    if !config.headers_enabled {
        return Vec::new();
    }
    let statuses: Vec<LimitStatus> = charges
        .iter()
        .zip(windows)
        .filter_map(|(c, windows)| {
            Some(LimitStatus {
                name: config.limits.get(c.limit)?.name.clone(),
                windows,
            })
        })
        .collect();
    headers(&statuses)
}

/// `RateLimit-Policy` and `RateLimit` for the limits that counted a request.
pub fn headers(statuses: &[LimitStatus]) -> Vec<(String, String)> {
    let statuses = merged(statuses);
    let mut policy = Vec::new();
    let mut state = Vec::new();
    for s in &statuses {
        for (i, w) in s.windows.iter().enumerate() {
            let name = policy_name(&s.name, i);
            policy.push(format!(
                "\"{name}\";q={};w={}",
                w.window.quota,
                w.window.length_ms / 1000
            ));
            state.push(format!(
                "\"{name}\";r={};t={}",
                w.remaining,
                ceil_secs(w.next_free_ms)
            ));
        }
    }
    if policy.is_empty() {
        return Vec::new();
    }
    vec![
        (POLICY_HEADER.to_string(), policy.join(", ")),
        (STATE_HEADER.to_string(), state.join(", ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_for_charges_follow_the_config() {
        use crate::rate_limit::bill::one_tool_call;
        let limits = "limits:\n  - {name: calls, path: /mcp/tools/call, maxRequests: 5, windowSeconds: 60}\n";
        let (on, charges) = one_tool_call(limits);
        let (off, _) = one_tool_call(&format!("{limits}rateLimitHeaders: {{enabled: false}}\n"));
        let windows = || vec![decide(&on.limits[0].policy, &mut vec![], 0, 1).windows];
        let fields = for_charges(&on, &charges, windows());
        assert_eq!(
            fields[0],
            (POLICY_HEADER.to_string(), "\"calls\";q=5;w=60".to_string())
        );
        assert_eq!(fields[1].0, STATE_HEADER);
        assert!(for_charges(&off, &charges, windows()).is_empty());
    }
    use crate::rate_limit::sliding_window::{decide, Admissions, WindowPolicy};

    fn status(
        name: &str,
        policy: WindowPolicy,
        log: &mut Vec<Admissions>,
        now: u64,
    ) -> LimitStatus {
        LimitStatus {
            name: name.into(),
            windows: decide(&policy, log, now, 1).windows,
        }
    }

    #[test]
    fn recipe_limit_with_burst_advertises_both_windows() {
        let mut log = vec![];
        let p = WindowPolicy::new(60, 60, 10);
        status("tools/call", p, &mut log, 1_000_000);
        let s = status("tools/call", p, &mut log, 1_000_400);
        let h = headers(&[s]);
        assert_eq!(
            h[0],
            (
                POLICY_HEADER.into(),
                "\"tools/call\";q=70;w=60, \"tools/call:2w\";q=120;w=120".into()
            )
        );
        // Oldest admission (t=1_000_000) leaves the 60 s window 59.6 s from now -> t=60.
        assert_eq!(
            h[1],
            (
                STATE_HEADER.into(),
                "\"tools/call\";r=68;t=60, \"tools/call:2w\";r=118;t=120".into()
            )
        );
    }

    #[test]
    fn plain_limit_has_one_policy_and_keys_merge() {
        let p = WindowPolicy::new(5, 10, 0);
        let (mut a, mut b) = (vec![], vec![]);
        let sa = status("per-tool", p, &mut a, 1_000);
        status("per-tool", p, &mut b, 1_000);
        let sb = status("per-tool", p, &mut b, 2_000);
        let h = headers(&[sa, sb]);
        assert_eq!(h[0].1, "\"per-tool\";q=5;w=10");
        assert_eq!(h[1].1, "\"per-tool\";r=3;t=9");
        assert!(headers(&[]).is_empty());
    }
}
