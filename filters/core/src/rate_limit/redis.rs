//! Multi-replica mode: the same exact sliding windows, kept in Redis and
//! decided atomically by a Lua script, reached through webdis (Redis's HTTP
//! front, a Debian package) with Envoy's `dispatch_http_call`.
//!
//! Why this route rather than Envoy's `ratelimit` filter + the
//! envoyproxy/ratelimit service: that service counts fixed windows (per
//! second/minute/hour/day buckets), so it could not keep the sliding-window
//! and burst semantics of [`crate::rate_limit::sliding_window`], and it would split the
//! decision from the body inspection our filter already does (operation
//! families, batches, tool names). Redis runs a script atomically, so one
//! `EVALSHA` checks and records every window of a request at once: exact
//! across any number of replicas and workers, with Redis's clock as the one
//! time source (replica clock skew cannot move a window).
//!
//! Each window is a Redis hash `<prefix><key id hex>` of admission counts
//! per time bucket (field: the bucket's first millisecond), with the
//! buckets of [`crate::rate_limit::sliding_window`]: 1 ms (exact) for small
//! quotas, W/64 above, so a key holds at most 129 fields whatever the quota
//! and a call costs the same for a quiet agent and a busy one. Buckets older
//! than the policy's retention are deleted on every call and the key gets a
//! `PEXPIRE` of that retention, so Redis reclaims idle keys by itself. (A
//! key left as a sorted set by an older version is dropped once: its window
//! starts afresh.)
//!
//! Wire format (webdis): `POST /` with body `EVALSHA/<sha1>/<numkeys>/<keys…>/<args…>`,
//! every segment percent-encoded; the reply is `{"EVALSHA": [..integers..]}`
//! or `{"EVALSHA": [false, "NOSCRIPT …"]}` after a Redis restart, in which
//! case the filter sends the same call as `EVAL` with the script once.

use crate::rate_limit::admission::Admission;
use crate::rate_limit::bill::Charge;
use crate::rate_limit::config::RateLimitConfig;
use crate::rate_limit::sliding_window::{Window, WindowPolicy, WindowState};
use crate::webdis::push_segment;
use serde_json::Value;
use sha1::{Digest, Sha1};

/// The Lua script. ARGV[1] is a nonce unique to the request (kept in the
/// call's shape; buckets need no unique members); then for each key: slots,
/// window ms, quota of the window, quota of the 2W window (0 without a
/// burst), bucket width ms. Returns `[admitted, retry_ms (-1: never), now_ms]`
/// then per key `[count_w, oldest_w, count_2w, oldest_2w]` after the
/// decision, where `oldest + length` is when the oldest counted bucket
/// leaves that window (its last millisecond, as in `sliding_window`).
pub const SCRIPT: &str = r#"-- gw rate-limit: sliding windows over bucket counters, checked and recorded atomically
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local admit_at = now
local never = false
local params = {}
for i, key in ipairs(KEYS) do
  local b = 2 + (i - 1) * 5
  local p = {n = tonumber(ARGV[b]), w = tonumber(ARGV[b + 1]), q1 = tonumber(ARGV[b + 2]),
             q2 = tonumber(ARGV[b + 3]), bm = tonumber(ARGV[b + 4])}
  p.keep = p.w
  if p.q2 > 0 then p.keep = 2 * p.w end
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', key) end
  local flat = redis.call('HGETALL', key)
  local buckets, stale = {}, {}
  for j = 1, #flat, 2 do
    local start = tonumber(flat[j])
    if start + p.bm - 1 + p.keep <= now then
      stale[#stale + 1] = flat[j]
    else
      buckets[#buckets + 1] = {start, tonumber(flat[j + 1])}
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  table.sort(buckets, function(x, y) return x[1] < y[1] end)
  p.buckets = buckets
  params[i] = p
  local rules = {{p.w, p.q1}}
  if p.q2 > 0 then rules[2] = {2 * p.w, p.q2} end
  for _, rule in ipairs(rules) do
    local len, quota = rule[1], rule[2]
    if p.n > quota then
      never = true
    else
      local room = quota - p.n
      local inside = 0
      for _, bk in ipairs(buckets) do
        if bk[1] + p.bm - 1 + len > now then inside = inside + bk[2] end
      end
      -- the oldest buckets must leave until what stays fits
      for _, bk in ipairs(buckets) do
        if inside <= room then break end
        local leaves = bk[1] + p.bm - 1 + len
        if leaves > now then
          inside = inside - bk[2]
          if inside <= room and leaves > admit_at then admit_at = leaves end
        end
      end
    end
  end
end
local admitted = (not never) and admit_at == now
if admitted then
  for i, key in ipairs(KEYS) do
    local p = params[i]
    local start = now - now % p.bm
    redis.call('HINCRBY', key, start, p.n)
    redis.call('PEXPIRE', key, p.keep + p.bm - 1)
    local found = false
    for _, bk in ipairs(p.buckets) do
      if bk[1] == start then bk[2] = bk[2] + p.n; found = true end
    end
    if not found then
      p.buckets[#p.buckets + 1] = {start, p.n}
      table.sort(p.buckets, function(x, y) return x[1] < y[1] end)
    end
  end
end
local out = {admitted and 1 or 0, never and -1 or (admit_at - now), now}
for i, key in ipairs(KEYS) do
  local p = params[i]
  for r = 1, 2 do
    if r == 1 or p.q2 > 0 then
      local len = r * p.w
      local count, oldest = 0, 0
      for _, bk in ipairs(p.buckets) do
        if bk[1] + p.bm - 1 + len > now then
          if count == 0 then oldest = bk[1] + p.bm - 1 end
          count = count + bk[2]
        end
      end
      out[#out + 1] = count
      out[#out + 1] = oldest
    else
      out[#out + 1] = 0
      out[#out + 1] = 0
    end
  end
end
return out
"#;

/// Hex SHA-1 of [`SCRIPT`], the name Redis caches it under.
pub fn script_sha1() -> String {
    hex::encode(Sha1::digest(SCRIPT.as_bytes()))
}

/// One window of the request, as the script sees it.
#[derive(Debug, Clone)]
pub struct RedisWindow<'a> {
    /// Full Redis key: `<prefix><key id hex>`.
    pub key: String,
    pub slots: u32,
    pub policy: &'a WindowPolicy,
}

/// The windows of `charges` as the script sees them (a charge whose limit
/// is not in `config` is left out, as [`policies`] leaves it out).
pub fn windows<'a>(config: &'a RateLimitConfig, charges: &[Charge]) -> Vec<RedisWindow<'a>> {
    let prefix = config.redis.as_ref().map_or("", |r| r.key_prefix.as_str());
    charges
        .iter()
        .filter_map(|c| {
            Some(RedisWindow {
                key: format!("{prefix}{}", c.id.hex()),
                slots: c.slots,
                policy: &config.limits.get(c.limit)?.policy,
            })
        })
        .collect()
}

/// The window policies of `charges`, in the call's order (to read the reply).
pub fn policies<'a>(config: &'a RateLimitConfig, charges: &[Charge]) -> Vec<&'a WindowPolicy> {
    charges
        .iter()
        .filter_map(|c| config.limits.get(c.limit).map(|l| &l.policy))
        .collect()
}

/// Body of the webdis call: `EVALSHA/<sha>/…` or, with `with_script`, `EVAL/<script>/…`.
pub fn command_body(windows: &[RedisWindow<'_>], nonce: &str, with_script: bool) -> String {
    let mut out = String::from(if with_script { "EVAL" } else { "EVALSHA" });
    if with_script {
        push_segment(&mut out, SCRIPT);
    } else {
        push_segment(&mut out, &script_sha1());
    }
    push_segment(&mut out, &windows.len().to_string());
    for w in windows {
        push_segment(&mut out, &w.key);
    }
    push_segment(&mut out, nonce);
    for w in windows {
        let quota_2w = if w.policy.burst > 0 {
            2 * u64::from(w.policy.max_requests)
        } else {
            0
        };
        for arg in [
            u64::from(w.slots),
            w.policy.window_ms,
            u64::from(w.policy.max_requests) + u64::from(w.policy.burst),
            quota_2w,
            w.policy.bucket_ms(),
        ] {
            push_segment(&mut out, &arg.to_string());
        }
    }
    out
}

/// What Redis decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAnswer {
    pub admitted: bool,
    pub retry_after_ms: u64,
    /// Per window of the call, in order: its windows' states.
    pub windows: Vec<Vec<WindowState>>,
}

impl RedisAnswer {
    /// Redis decides all windows at once: the charge that binds is the one
    /// whose window is fullest.
    pub fn binding(&self) -> usize {
        self.windows
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.iter().map(|s| s.remaining).min().unwrap_or(0))
            .map_or(0, |(i, _)| i)
    }

    /// The same answer as the local store gives it (Redis has no slot
    /// table to fill).
    pub fn into_admission(self) -> Admission {
        Admission {
            admitted: self.admitted,
            retry_after_ms: self.retry_after_ms,
            binding: self.binding(),
            windows: self.windows,
            table_full: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisReply {
    Decided(RedisAnswer),
    /// Redis lost the script cache (restart, `SCRIPT FLUSH`): send `EVAL`.
    NoScript,
    /// Anything else: the store is unavailable for this request.
    Failed(String),
}

/// Parse webdis's JSON reply for a call made with `windows`.
pub fn parse_reply(status: Option<&str>, body: &[u8], policies: &[&WindowPolicy]) -> RedisReply {
    if status != Some("200") {
        return RedisReply::Failed(format!(
            "store answered HTTP {}",
            status.unwrap_or("(no status)")
        ));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return RedisReply::Failed(format!("store reply is not JSON: {e}")),
    };
    let Some(result) = value
        .as_object()
        .and_then(|o| o.get("EVALSHA").or_else(|| o.get("EVAL")))
    else {
        return RedisReply::Failed("store reply has no EVAL result".into());
    };
    let Some(items) = result.as_array() else {
        return RedisReply::Failed(format!("unexpected store reply {result}"));
    };
    if items.first() == Some(&Value::Bool(false)) {
        let message = items.get(1).and_then(Value::as_str).unwrap_or("");
        if message.starts_with("NOSCRIPT") {
            return RedisReply::NoScript;
        }
        return RedisReply::Failed(format!("redis error: {message}"));
    }
    let numbers: Option<Vec<i64>> = items.iter().map(Value::as_i64).collect();
    let Some(numbers) = numbers else {
        return RedisReply::Failed(format!("unexpected store reply {result}"));
    };
    if numbers.len() != 3 + 4 * policies.len() {
        return RedisReply::Failed(format!(
            "store reply has {} numbers, expected {}",
            numbers.len(),
            3 + 4 * policies.len()
        ));
    }
    let get = |i: usize| numbers.get(i).copied().unwrap_or(0);
    let now = u64::try_from(get(2)).unwrap_or(0);
    let windows = policies
        .iter()
        .enumerate()
        .map(|(i, policy)| {
            policy
                .windows()
                .into_iter()
                .enumerate()
                .map(|(r, window): (usize, Window)| {
                    let count = u64::try_from(get(3 + 4 * i + 2 * r)).unwrap_or(0);
                    let oldest = u64::try_from(get(4 + 4 * i + 2 * r)).unwrap_or(0);
                    WindowState {
                        window,
                        remaining: window.quota.saturating_sub(count),
                        next_free_ms: if count == 0 {
                            0
                        } else {
                            (oldest + window.length_ms).saturating_sub(now)
                        },
                    }
                })
                .collect()
        })
        .collect();
    let retry = get(1);
    RedisReply::Decided(RedisAnswer {
        admitted: get(0) == 1,
        retry_after_ms: if retry < 0 { u64::MAX } else { retry as u64 },
        windows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_policies_of_the_charges() {
        let (config, charges) = crate::rate_limit::bill::one_tool_call(
            "limits:\n  - {path: /mcp/tools/call, maxRequests: 5, windowSeconds: 60}\nredisStore: {cluster: webdis, keyPrefix: 'p:'}\n",
        );
        let w = windows(&config, &charges);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].key, format!("p:{}", charges[0].id.hex()));
        assert_eq!(w[0].slots, 1);
        assert_eq!(policies(&config, &charges), [&config.limits[0].policy]);
    }

    #[test]
    fn a_redis_answer_is_an_admission() {
        let p = WindowPolicy::new(1, 60, 0);
        let full = crate::rate_limit::sliding_window::decide(&p, &mut vec![], 0, 1).windows;
        let free = crate::rate_limit::sliding_window::decide(&p, &mut vec![], 0, 0).windows;
        let a = RedisAnswer {
            admitted: false,
            retry_after_ms: 5,
            windows: vec![free, full],
        }
        .into_admission();
        assert_eq!(
            (a.admitted, a.retry_after_ms, a.binding, a.table_full),
            (false, 5, 1, false)
        );
    }

    #[test]
    fn command_is_percent_encoded_webdis_path() {
        let p = WindowPolicy::new(60, 60, 10);
        let q = WindowPolicy::new(30, 60, 0);
        let windows = [
            RedisWindow {
                key: "gw:rl:ab".into(),
                slots: 2,
                policy: &p,
            },
            RedisWindow {
                key: "gw:rl:cd".into(),
                slots: 1,
                policy: &q,
            },
        ];
        let body = command_body(&windows, "req/1", false);
        assert_eq!(
            body,
            format!(
                "EVALSHA/{}/2/gw%3Arl%3Aab/gw%3Arl%3Acd/req%2F1/2/60000/70/120/1/1/60000/30/0/1",
                script_sha1()
            )
        );
        let eval = command_body(&windows, "n", true);
        assert!(eval.starts_with("EVAL/--%20gw%20rate-limit"));
        assert!(!eval.contains(' ') && !eval.contains('\n'));
        assert_eq!(script_sha1().len(), 40);
    }

    #[test]
    fn replies_parse() {
        let p = WindowPolicy::new(60, 60, 10);
        let now = 1_764_000_000_000i64;
        let body = format!(
            r#"{{"EVALSHA":[1,0,{now},5,{},5,{}]}}"#,
            now - 1000,
            now - 1000
        );
        let RedisReply::Decided(d) = parse_reply(Some("200"), body.as_bytes(), &[&p]) else {
            panic!()
        };
        assert!(d.admitted);
        assert_eq!(d.windows[0][0].remaining, 65);
        assert_eq!(d.windows[0][0].next_free_ms, 59_000);
        assert_eq!(d.windows[0][1].remaining, 115);
        assert_eq!(d.windows[0][1].next_free_ms, 119_000);

        let never = format!(r#"{{"EVAL":[0,-1,{now},0,0,0,0]}}"#);
        let RedisReply::Decided(d) = parse_reply(Some("200"), never.as_bytes(), &[&p]) else {
            panic!()
        };
        assert_eq!((d.admitted, d.retry_after_ms), (false, u64::MAX));

        assert_eq!(
            parse_reply(
                Some("200"),
                br#"{"EVALSHA":[false,"NOSCRIPT No matching script. Please use EVAL."]}"#,
                &[&p]
            ),
            RedisReply::NoScript
        );
        assert!(matches!(
            parse_reply(Some("503"), b"", &[&p]),
            RedisReply::Failed(_)
        ));
        assert!(
            matches!(parse_reply(Some("200"), br#"{"EVALSHA":[false,"ERR x"]}"#, &[&p]), RedisReply::Failed(m) if m.contains("ERR x"))
        );
        assert!(matches!(
            parse_reply(Some("200"), br#"{"EVALSHA":[1,0]}"#, &[&p]),
            RedisReply::Failed(_)
        ));
        assert!(matches!(
            parse_reply(Some("200"), b"nope", &[&p]),
            RedisReply::Failed(_)
        ));
    }
}
