//! The cache of credential checks, kept in proxy-wasm shared data so that
//! every worker of an Envoy process sees it.
//!
//! - Keys never contain a credential: an entry is found by the SHA-256 of
//!   the credential (with a domain tag), and the raw key or token is never
//!   stored.
//! - Shared data has no delete and no TTL, so the cache is a fixed table of
//!   `maxEntries` slots (direct-mapped: the hash picks the slot, a newer
//!   entry replaces an older one in the same slot). Its size is bounded
//!   whatever clients send; an entry records its full hash and its expiry,
//!   and a lookup ignores entries for another credential or past expiry.
//! - Valid results live until the credential's `exp` or the method's TTL
//!   (`apiKeyTtlSeconds`, `tokenTtlSeconds`), whichever is sooner, so an
//!   entry never outlives the credential; invalid results
//!   `negativeTtlSeconds`; an unavailable endpoint is never cached (the next
//!   request tries again).
//! - Slot names carry the configuration fingerprint: results obtained under
//!   another endpoint or client are not reused after a config change.

use crate::identity::callout::{expiry, Outcome};
use crate::identity::config::CacheSettings;
use crate::identity::credentials::CredentialKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Largest entry written (bytes); a larger claims set is not cached.
pub const MAX_ENTRY_BYTES: usize = 16 * 1024;

/// SHA-256 of a credential with a domain tag, hex.
pub fn credential_hash(kind: CredentialKind, secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(match kind {
        CredentialKind::ApiKey => b"gw-identity/api-key\0".as_slice(),
        CredentialKind::Bearer => b"gw-identity/bearer\0".as_slice(),
    });
    hasher.update(secret.as_bytes());
    hex::encode(hasher.finalize())
}

/// The shared-data key of the slot for `hash`, or `None` when caching is off.
pub fn slot_key(fingerprint: &str, hash: &str, max_entries: u32) -> Option<String> {
    if max_entries == 0 {
        return None;
    }
    let prefix = u64::from_str_radix(hash.get(..16)?, 16).ok()?;
    Some(format!(
        "gw_identity/{fingerprint}/{}",
        prefix % u64::from(max_entries)
    ))
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// Full credential hash: the slot may hold another credential.
    h: String,
    /// Expiry, milliseconds since the epoch.
    x: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claims: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invalid: Option<String>,
}

/// How long (ms) the outcome of a `kind` credential may be cached from
/// `now_ms`; 0 means not at all.
pub fn ttl_ms(
    kind: CredentialKind,
    outcome: &Outcome,
    now_ms: u64,
    settings: &CacheSettings,
) -> u64 {
    match outcome {
        Outcome::Valid(claims) => {
            let ttl = match kind {
                CredentialKind::ApiKey => settings.api_key_ttl_seconds,
                CredentialKind::Bearer => settings.token_ttl_seconds,
            };
            let ttl = ttl.saturating_mul(1000);
            // Never past the credential's own expiry: a cached entry must not
            // make an expired credential valid again.
            match expiry(claims) {
                Some(exp) => ttl.min(exp.saturating_mul(1000).saturating_sub(now_ms)),
                None => ttl,
            }
        }
        Outcome::Invalid(_) => settings.negative_ttl_seconds.saturating_mul(1000),
        Outcome::Unavailable(_) => 0,
    }
}

/// The entry to store for an outcome, or `None` when it must not be cached.
pub fn encode(
    hash: &str,
    kind: CredentialKind,
    outcome: &Outcome,
    now_ms: u64,
    settings: &CacheSettings,
) -> Option<Vec<u8>> {
    let ttl_ms = ttl_ms(kind, outcome, now_ms, settings);
    let (claims, invalid) = match outcome {
        Outcome::Valid(claims) => (Some(claims.clone()), None),
        Outcome::Invalid(why) => (None, Some(why.clone())),
        Outcome::Unavailable(_) => return None,
    };
    if ttl_ms == 0 {
        return None;
    }
    let entry = Entry {
        h: hash.to_string(),
        x: now_ms.saturating_add(ttl_ms),
        claims,
        invalid,
    };
    let bytes = serde_json::to_vec(&entry).ok()?;
    (bytes.len() <= MAX_ENTRY_BYTES).then_some(bytes)
}

/// The cached outcome for `hash`, if the slot holds a live entry for it.
pub fn decode(bytes: &[u8], hash: &str, now_ms: u64) -> Option<Outcome> {
    let entry: Entry = serde_json::from_slice(bytes).ok()?;
    if entry.h != hash || entry.x <= now_ms {
        return None;
    }
    match (entry.claims, entry.invalid) {
        (Some(claims), None) => Some(Outcome::Valid(claims)),
        (None, Some(why)) => Some(Outcome::Invalid(why)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const S: CacheSettings = CacheSettings {
        max_entries: 8,
        api_key_ttl_seconds: 300,
        token_ttl_seconds: 30,
        negative_ttl_seconds: 10,
    };
    const KEY: CredentialKind = CredentialKind::ApiKey;
    const BEARER: CredentialKind = CredentialKind::Bearer;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn hashes_never_contain_the_secret_and_differ_by_kind() {
        let a = credential_hash(CredentialKind::ApiKey, "secret-key");
        let b = credential_hash(CredentialKind::Bearer, "secret-key");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("secret"));
        let key = slot_key("abcd1234", &a, 8).unwrap();
        assert!(key.starts_with("gw_identity/abcd1234/"));
        assert!(!key.contains("secret"));
        assert_eq!(slot_key("f", &a, 0), None);
    }

    #[test]
    fn slots_are_bounded() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            let h = credential_hash(CredentialKind::ApiKey, &format!("k{i}"));
            seen.insert(slot_key("f", &h, 8).unwrap());
        }
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn positive_entries_live_until_exp_or_ttl() {
        let h = credential_hash(CredentialKind::Bearer, "t");
        let now = 1_000_000_000_000u64;
        let exp_in_60s = (now / 1000) + 60;
        let valid = Outcome::Valid(claims(json!({"active": true, "exp": exp_in_60s})));
        // an API key answer with exp in 60 s: exp bounds the 300 s TTL
        let bytes = encode(&h, KEY, &valid, now, &S).unwrap();
        assert_eq!(decode(&bytes, &h, now + 59_000), Some(valid.clone()));
        assert_eq!(decode(&bytes, &h, now + 60_000), None);
        // a token with exp in 60 s: the 30 s token TTL bounds it
        let bytes = encode(&h, BEARER, &valid, now, &S).unwrap();
        assert!(decode(&bytes, &h, now + 29_999).is_some());
        assert_eq!(decode(&bytes, &h, now + 30_000), None);
        // another credential in the same slot is a miss
        let other = credential_hash(CredentialKind::Bearer, "u");
        assert_eq!(decode(&bytes, &other, now), None);
        // without exp: the method's TTL
        let valid = Outcome::Valid(claims(json!({"agent_id": "a"})));
        let bytes = encode(&h, KEY, &valid, now, &S).unwrap();
        assert!(decode(&bytes, &h, now + 299_000).is_some());
        assert!(decode(&bytes, &h, now + 300_000).is_none());
        let bytes = encode(&h, BEARER, &valid, now, &S).unwrap();
        assert!(decode(&bytes, &h, now + 29_000).is_some());
        assert!(decode(&bytes, &h, now + 30_000).is_none());
        // already expired, or expiring this millisecond: not cached
        let expired = Outcome::Valid(claims(json!({"exp": now / 1000 - 1})));
        assert_eq!(encode(&h, BEARER, &expired, now, &S), None);
        let now_exp = Outcome::Valid(claims(json!({"exp": now / 1000})));
        assert_eq!(encode(&h, KEY, &now_exp, now, &S), None);
        // a TTL of 0 turns caching of that method off
        let off = CacheSettings {
            token_ttl_seconds: 0,
            ..S
        };
        assert_eq!(encode(&h, BEARER, &valid, now, &off), None);
        assert!(encode(&h, KEY, &valid, now, &off).is_some());
    }

    #[test]
    fn ttl_arithmetic_never_overflows_and_never_outlives_exp() {
        let huge = CacheSettings {
            api_key_ttl_seconds: u64::MAX,
            token_ttl_seconds: u64::MAX,
            negative_ttl_seconds: u64::MAX,
            ..S
        };
        let no_exp = Outcome::Valid(Map::new());
        assert_eq!(ttl_ms(KEY, &no_exp, u64::MAX, &huge), u64::MAX);
        // exp far in the future, as a float, or absurd: bounded by the TTL
        for exp in [json!(u64::MAX), json!(1.9e18), json!(4_000_000_000u64)] {
            let o = Outcome::Valid(claims(json!({ "exp": exp })));
            assert!(ttl_ms(BEARER, &o, 1_000, &S) <= 30_000, "{o:?}");
        }
        // exp in the past (seconds) is 0 whatever the clock
        for now in [0u64, 1_000, u64::MAX] {
            let o = Outcome::Valid(claims(json!({"exp": 0})));
            assert_eq!(ttl_ms(KEY, &o, now, &S), 0);
        }
        // exp in 5 s from a clock at a sub-second offset: 4.5 s
        let o = Outcome::Valid(claims(json!({"exp": 1_005})));
        assert_eq!(ttl_ms(BEARER, &o, 1_000_500, &S), 4_500);
        assert_eq!(ttl_ms(KEY, &Outcome::Invalid("x".into()), 0, &S), 10_000);
        assert_eq!(ttl_ms(BEARER, &Outcome::Unavailable("x".into()), 0, &S), 0);
    }

    #[test]
    fn negative_entries_are_brief_and_errors_are_not_cached() {
        let h = credential_hash(CredentialKind::ApiKey, "k");
        let now = 5_000;
        let bytes = encode(&h, KEY, &Outcome::Invalid("no".into()), now, &S).unwrap();
        assert_eq!(
            decode(&bytes, &h, now + 9_999),
            Some(Outcome::Invalid("no".into()))
        );
        assert_eq!(decode(&bytes, &h, now + 10_000), None);
        assert_eq!(
            encode(&h, KEY, &Outcome::Unavailable("down".into()), now, &S),
            None
        );
        let off = CacheSettings {
            negative_ttl_seconds: 0,
            ..S
        };
        assert_eq!(
            encode(&h, KEY, &Outcome::Invalid("no".into()), now, &off),
            None
        );
    }

    #[test]
    fn garbage_and_oversized_entries() {
        assert_eq!(decode(b"not json", "h", 0), None);
        assert_eq!(decode(br#"{"h":"h","x":9}"#, "h", 0), None);
        let big = Outcome::Valid(claims(json!({"x": "y".repeat(MAX_ENTRY_BYTES)})));
        assert_eq!(encode("h", KEY, &big, 0, &S), None);
    }
}
