//! API keys: the static agents of the configuration and the validation
//! endpoint contract.
//!
//! Precedence: a key whose SHA-256 matches a static agent is accepted
//! without any callout; any other key goes to `validationEndpoint` (cached),
//! and without an endpoint it is invalid.
//!
//! Validation contract (what `examples/identity_service` implements):
//!
//! ```text
//! POST <validationEndpoint path>        :authority from the URL
//! content-type: application/json
//! {"apiKey": "<the key>"}
//!
//! 200 + JSON object          valid; the object is the claims set
//!                            (agent_id, agent_name, owner, optional exp, ...),
//!                            unless it says "valid": false or "active": false
//! 401 / 403 / 404            invalid key
//! anything else, a timeout, a non-JSON or non-object 200
//!                            the service is unavailable: 503, fail closed
//! ```

use crate::identity::callout::{Callout, CalloutResponse, Outcome};
use crate::identity::config::{ApiKeyMethod, StaticAgent};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of a key, as `keySha256` stores it.
pub fn key_sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The static agent holding `key`, if any.
pub fn static_agent<'m>(method: &'m ApiKeyMethod, key: &str) -> Option<&'m StaticAgent> {
    if method.agents.is_empty() {
        return None;
    }
    method.agents.get(&key_sha256(key))
}

/// The validation request for `key`, when an endpoint is configured.
pub fn validation_callout(method: &ApiKeyMethod, key: &str) -> Option<Callout> {
    let endpoint = method.validation.as_ref()?;
    let body = json!({ "apiKey": key }).to_string().into_bytes();
    Some(Callout::post(
        endpoint,
        "application/json",
        Vec::new(),
        body,
    ))
}

const WHAT: &str = "the API key validation service";

/// What the validation service's answer means.
pub fn classify(response: CalloutResponse<'_>) -> Outcome {
    match response.status {
        Some(200) => match response.json_object(WHAT) {
            Ok(claims) => {
                let verdicts = ["valid", "active"].map(|k| claims.get(k));
                if verdicts.contains(&Some(&Value::Bool(false))) {
                    Outcome::Invalid("the API key is not valid".into())
                } else if verdicts.iter().flatten().any(|v| !v.is_boolean()) {
                    // "valid": "false" is not a yes: a service that answers
                    // in the wrong type is treated as failing, closed.
                    Outcome::Unavailable(format!(
                        "{WHAT} answered `valid`/`active` that is not a boolean"
                    ))
                } else {
                    Outcome::Valid(claims)
                }
            }
            Err(why) => Outcome::Unavailable(why),
        },
        Some(401 | 403 | 404) => Outcome::Invalid("the API key is not valid".into()),
        _ => Outcome::Unavailable(response.describe_failure(WHAT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::identity::config::{IdentityConfig, IdentitySpec};

    fn method() -> ApiKeyMethod {
        let text = format!(
            "authMethods:\n  - type: apiKey\n    validationEndpoint: https://identity.internal:8443/v1/agents/validate\n    validationCluster: identity_service\n    timeoutMs: 750\n    agents:\n      - {{id: sentinel-1, keySha256: {}}}\n",
            key_sha256("demo-sentinel-key")
        );
        load::<IdentitySpec, IdentityConfig>(text.as_bytes())
            .unwrap()
            .api_key
            .unwrap()
    }

    #[test]
    fn static_agents_match_by_hash_only() {
        let m = method();
        assert_eq!(
            static_agent(&m, "demo-sentinel-key").unwrap().id,
            "sentinel-1"
        );
        assert!(static_agent(&m, "demo-sentinel-key ").is_none());
        assert!(static_agent(&m, "other").is_none());
        assert_eq!(
            key_sha256("hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn callout_follows_the_contract() {
        let c = validation_callout(&method(), "k\"1").unwrap();
        assert_eq!(c.cluster, "identity_service");
        assert_eq!(c.timeout_ms, 750);
        let get = |n: &str| {
            c.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get(":method"), Some("POST"));
        assert_eq!(get(":path"), Some("/v1/agents/validate"));
        assert_eq!(get(":authority"), Some("identity.internal:8443"));
        assert_eq!(get("content-type"), Some("application/json"));
        let body: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(body, json!({"apiKey": "k\"1"}));
    }

    fn classify_raw(status: Option<u32>, body: &str) -> Outcome {
        classify(CalloutResponse {
            status,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn answers_are_classified_fail_closed() {
        match classify_raw(Some(200), r#"{"agent_id":"a","exp":5}"#) {
            Outcome::Valid(c) => assert_eq!(c["agent_id"], "a"),
            other => panic!("{other:?}"),
        }
        for (status, body) in [
            (Some(200), r#"{"valid":false}"#),
            (Some(200), r#"{"valid":true,"active":false}"#),
            (Some(200), r#"{"active":false}"#),
            (Some(401), ""),
            (Some(403), "x"),
            (Some(404), ""),
        ] {
            assert!(
                matches!(classify_raw(status, body), Outcome::Invalid(_)),
                "{status:?} {body}"
            );
        }
        for (status, body, why) in [
            (Some(200), "<html>", "not JSON"),
            (Some(200), "[1]", "not an object"),
            (Some(200), "", "not JSON"),
            (Some(500), "{}", "HTTP 500"),
            (Some(504), "", "timed out"),
            (Some(503), "", "unreachable"),
            (Some(302), "", "HTTP 302"),
            (None, "", "no HTTP status"),
            (
                Some(200),
                r#"{"valid":"false","agent_id":"a"}"#,
                "not a boolean",
            ),
            (
                Some(200),
                r#"{"valid":true,"active":null,"agent_id":"a"}"#,
                "not a boolean",
            ),
        ] {
            match classify_raw(status, body) {
                Outcome::Unavailable(m) => assert!(m.contains(why), "{m}"),
                other => panic!("{status:?} {body}: {other:?}"),
            }
        }
        let huge = format!(
            "{{\"a\":\"{}\"}}",
            "x".repeat(crate::identity::callout::MAX_RESPONSE_BYTES)
        );
        assert!(matches!(
            classify_raw(Some(200), &huge),
            Outcome::Unavailable(_)
        ));
    }
}
