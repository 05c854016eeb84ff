//! Task owners across replicas: the ownership table of [`crate::a2a_acl::tasks`]
//! mirrored in Redis, reached like the rate limiter's store (webdis, the
//! HTTP front of Redis, with Envoy's `dispatch_http_call`), configured as
//! `a2a.taskIsolation.redisStore`.
//!
//! - Recording: the local table first (so this replica answers at once),
//!   then `SET <prefix><task> <owner> NX PX <ttl>`, sent by the filter's
//!   root on its next tick (a call from the stream would be cancelled when
//!   the stream ends): the first owner wins in Redis as it does locally.
//! - Looking up: the local table first; a task it does not know is asked of
//!   Redis (`GET`) before the decision, and a found owner is cached
//!   locally. Redis unavailable: the task stays unknown, so refused as not
//!   found (fail closed).
//! - Lists are filtered with the local table only (a task created through
//!   another replica and never looked up here is left out of this replica's
//!   lists; it is still reachable by id).
//!
//! Both commands go as `EVAL` of a one-line script, since the shipped webdis
//! allows only `EVAL`/`EVALSHA` (what the rate limiter needs).

use crate::config::ConfigError;
use crate::upstream::Upstream;
use crate::webdis::push_segment;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerStoreSpec {
    /// Envoy cluster of the webdis endpoints.
    pub cluster: String,
    /// `:authority` of the calls (default: the cluster name).
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
}

fn default_timeout() -> u32 {
    250
}
fn default_prefix() -> String {
    "gw:a2a:task:".to_string()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerStore {
    /// webdis: the cluster, `:authority` (default: the cluster name), path
    /// `/` and timeout of every call.
    pub upstream: Upstream,
    pub key_prefix: String,
}

impl TryFrom<OwnerStoreSpec> for OwnerStore {
    type Error = ConfigError;

    fn try_from(spec: OwnerStoreSpec) -> Result<Self, ConfigError> {
        let at = |k: &str| format!("a2a.taskIsolation.redisStore.{k}");
        if spec.cluster.trim().is_empty() {
            return Err(ConfigError::at(at("cluster"), "names no Envoy cluster"));
        }
        if spec.timeout_ms == 0 || spec.timeout_ms > 10_000 {
            return Err(ConfigError::at(
                at("timeoutMs"),
                "must be between 1 and 10000",
            ));
        }
        if spec.key_prefix.is_empty() {
            return Err(ConfigError::at(at("keyPrefix"), "must not be empty"));
        }
        let upstream = Upstream::new(
            spec.cluster,
            spec.authority,
            "/".into(),
            u64::from(spec.timeout_ms),
        )
        .map_err(|m| ConfigError::at(at("cluster"), m))?;
        Ok(Self {
            upstream,
            key_prefix: spec.key_prefix,
        })
    }
}

/// `GET KEYS[1]`.
pub const GET_SCRIPT: &str = "return redis.call('GET', KEYS[1])";
/// `SET KEYS[1] ARGV[1] NX PX ARGV[2]`: the first owner stays.
pub const SET_SCRIPT: &str = "return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])";

impl OwnerStore {
    fn key(&self, task: &str) -> String {
        format!("{}{task}", self.key_prefix)
    }

    /// Body of the webdis call that reads a task's owner.
    pub fn get_body(&self, task: &str) -> String {
        let mut out = String::from("EVAL");
        push_segment(&mut out, GET_SCRIPT);
        push_segment(&mut out, "1");
        push_segment(&mut out, &self.key(task));
        out
    }

    /// Body of the webdis call that records an owner unless one is set.
    pub fn set_body(&self, task: &str, owner: &str, ttl_ms: u64) -> String {
        let mut out = String::from("EVAL");
        push_segment(&mut out, SET_SCRIPT);
        push_segment(&mut out, "1");
        push_segment(&mut out, &self.key(task));
        push_segment(&mut out, owner);
        push_segment(&mut out, &ttl_ms.to_string());
        out
    }
}

/// The owner in webdis's answer to [`OwnerStore::get_body`]: `Ok(None)` when
/// Redis has none, `Err` when the store did not answer properly.
pub fn parse_get(status: Option<&str>, body: &[u8]) -> Result<Option<String>, String> {
    if status != Some("200") {
        return Err(format!(
            "store answered HTTP {}",
            status.unwrap_or("(none)")
        ));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    match v.get("EVAL") {
        Some(Value::String(owner)) if !owner.is_empty() => Ok(Some(owner.clone())),
        // Redis nil (no owner) comes back as null or false.
        Some(Value::Null | Value::Bool(false)) => Ok(None),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> OwnerStore {
        OwnerStore::try_from(OwnerStoreSpec {
            cluster: "redis".into(),
            authority: None,
            timeout_ms: 100,
            key_prefix: "gw:a2a:task:".into(),
        })
        .unwrap()
    }

    #[test]
    fn commands_are_escaped() {
        let s = store();
        assert_eq!(s.upstream.authority, "redis");
        assert_eq!(
            s.get_body("t-1"),
            "EVAL/return%20redis.call%28%27GET%27%2C%20KEYS%5B1%5D%29/1/gw%3Aa2a%3Atask%3At-1"
        );
        assert!(s
            .set_body("a/b", "sentinel 1", 5000)
            .ends_with("/1/gw%3Aa2a%3Atask%3Aa%2Fb/sentinel%201/5000"));
        assert!(s
            .set_body("t", "o", 1)
            .starts_with("EVAL/return%20redis.call%28%27SET%27"));
    }

    #[test]
    fn answers() {
        assert_eq!(
            parse_get(Some("200"), br#"{"EVAL":"sentinel-1"}"#),
            Ok(Some("sentinel-1".into()))
        );
        assert_eq!(parse_get(Some("200"), br#"{"EVAL":null}"#), Ok(None));
        assert_eq!(parse_get(Some("200"), br#"{"EVAL":false}"#), Ok(None));
        assert!(parse_get(Some("200"), br#"{"EVAL":[false,"ERR"]}"#).is_err());
        assert!(parse_get(Some("403"), br#"{}"#).is_err());
        assert!(parse_get(Some("503"), b"").is_err());
        assert!(parse_get(None, b"").is_err());
        assert!(parse_get(Some("200"), b"junk").is_err());
    }

    #[test]
    fn bad_config_names_the_key() {
        let bad = |cluster: &str, timeout_ms: u32, prefix: &str| {
            OwnerStore::try_from(OwnerStoreSpec {
                cluster: cluster.into(),
                authority: None,
                timeout_ms,
                key_prefix: prefix.into(),
            })
            .unwrap_err()
            .path
        };
        assert_eq!(bad(" ", 100, "p"), "a2a.taskIsolation.redisStore.cluster");
        assert_eq!(bad("c", 0, "p"), "a2a.taskIsolation.redisStore.timeoutMs");
        assert_eq!(bad("c", 100, ""), "a2a.taskIsolation.redisStore.keyPrefix");
    }
}
