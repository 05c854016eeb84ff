//! OAuth 2.0 token introspection (RFC 7662) for bearer tokens.
//!
//! ```text
//! POST <introspectionUrl path>
//! content-type: application/x-www-form-urlencoded
//! authorization: Basic base64(urlenc(client_id):urlenc(client_secret))   (clientSecretBasic)
//! token=<token>&token_type_hint=access_token[&client_id=..&client_secret=..]  (clientSecretPost)
//!
//! 200 {"active": true, "scope": "...", "exp": ..., "aud": ..., <claims>}  valid
//! 200 {"active": false}                                                     invalid (401)
//! anything else (no boolean `active`, not JSON, 4xx/5xx, timeout)           unavailable (503)
//! ```
//!
//! A 401/403 from the introspection endpoint means the *gateway's* client
//! credentials were refused, not the caller's token: that is reported as
//! unavailable (503), never as the caller's fault.

use crate::identity::callout::{Callout, CalloutResponse, Outcome};
use crate::identity::config::{ClientAuthMethod, OAuth2Method};
use base64::Engine as _;
use serde_json::{Map, Value};

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The introspection request for `token`.
pub fn introspection_callout(method: &OAuth2Method, token: &str) -> Callout {
    let auth = &method.client_auth;
    let mut body = format!("token={}&token_type_hint=access_token", form_encode(token));
    let mut headers = Vec::new();
    match auth.method {
        ClientAuthMethod::ClientSecretBasic => {
            let pair = format!(
                "{}:{}",
                form_encode(&auth.client_id),
                form_encode(&auth.client_secret)
            );
            headers.push((
                "authorization".to_string(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
            ));
        }
        ClientAuthMethod::ClientSecretPost => {
            body.push_str(&format!(
                "&client_id={}&client_secret={}",
                form_encode(&auth.client_id),
                form_encode(&auth.client_secret)
            ));
        }
        ClientAuthMethod::Bearer => {
            headers.push((
                "authorization".to_string(),
                format!("Bearer {}", auth.token),
            ));
        }
        ClientAuthMethod::None => {}
    }
    Callout::post(
        &method.introspection,
        "application/x-www-form-urlencoded",
        headers,
        body.into_bytes(),
    )
}

const WHAT: &str = "the token introspection endpoint";

/// What the introspection response means.
pub fn classify(response: CalloutResponse<'_>) -> Outcome {
    if response.status != Some(200) {
        return Outcome::Unavailable(response.describe_failure(WHAT));
    }
    match response.json_object(WHAT) {
        Ok(claims) => match claims.get("active") {
            Some(Value::Bool(true)) => Outcome::Valid(claims),
            Some(Value::Bool(false)) => {
                Outcome::Invalid("the token is not active (unknown, expired or revoked)".into())
            }
            _ => Outcome::Unavailable(format!("{WHAT} answered without a boolean `active`")),
        },
        Err(why) => Outcome::Unavailable(why),
    }
}

/// The scopes a token was granted (`scope`, space-separated).
pub fn granted_scopes(claims: &Map<String, Value>) -> Vec<&str> {
    claims
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

/// Whether the token's `aud` (a string or an array) names one of `audiences`.
/// An empty list matches nothing (the configuration refuses one anyway):
/// a missing audience check must fail closed, not open.
pub fn audience_ok(claims: &Map<String, Value>, audiences: &[String]) -> bool {
    let matches = |v: &Value| v.as_str().is_some_and(|a| audiences.iter().any(|x| x == a));
    match claims.get("aud") {
        Some(Value::Array(list)) => list.iter().any(matches),
        Some(v) => matches(v),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::identity::config::{IdentityConfig, IdentitySpec};
    use serde_json::json;

    fn method(client_auth: &str) -> OAuth2Method {
        let text = format!(
            "authMethods:\n  - type: oauth2ClientCredentials\n    introspectionUrl: http://127.0.0.1:9000/oauth/introspect\n    introspectionCluster: oauth_server\n    audiences: [https://gateway.test]\n{client_auth}"
        );
        load::<IdentitySpec, IdentityConfig>(text.as_bytes())
            .unwrap()
            .oauth2
            .unwrap()
    }

    fn header<'c>(c: &'c Callout, name: &str) -> Option<&'c str> {
        c.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn client_secret_basic_encodes_per_rfc6749() {
        let m = method("    clientAuth: {clientId: 'gate way', clientSecret: 's:e/c'}\n");
        let c = introspection_callout(&m, "a+b/c=");
        assert_eq!(c.cluster, "oauth_server");
        assert_eq!(header(&c, ":path"), Some("/oauth/introspect"));
        assert_eq!(header(&c, ":authority"), Some("127.0.0.1:9000"));
        assert_eq!(
            header(&c, "content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let expected = base64::engine::general_purpose::STANDARD.encode("gate+way:s%3Ae%2Fc");
        assert_eq!(
            header(&c, "authorization"),
            Some(format!("Basic {expected}").as_str())
        );
        assert_eq!(
            String::from_utf8(c.body).unwrap(),
            "token=a%2Bb%2Fc%3D&token_type_hint=access_token"
        );
    }

    #[test]
    fn other_client_auth_methods() {
        let c = introspection_callout(
            &method("    clientAuth: {method: clientSecretPost, clientId: gw, clientSecret: s}\n"),
            "t",
        );
        assert_eq!(header(&c, "authorization"), None);
        assert!(String::from_utf8(c.body)
            .unwrap()
            .ends_with("&client_id=gw&client_secret=s"));
        let c = introspection_callout(
            &method("    clientAuth: {method: bearer, token: abc}\n"),
            "t",
        );
        assert_eq!(header(&c, "authorization"), Some("Bearer abc"));
        let c = introspection_callout(&method(""), "t");
        assert_eq!(header(&c, "authorization"), None);
    }

    fn classify_raw(status: Option<u32>, body: &str) -> Outcome {
        classify(CalloutResponse {
            status,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn responses_are_classified_fail_closed() {
        assert!(matches!(
            classify_raw(Some(200), r#"{"active":true,"scope":"a"}"#),
            Outcome::Valid(_)
        ));
        assert!(matches!(
            classify_raw(Some(200), r#"{"active":false}"#),
            Outcome::Invalid(_)
        ));
        for (status, body) in [
            (Some(200), r#"{"active":"true"}"#),
            (Some(200), r#"{}"#),
            (Some(200), "garbage"),
            (Some(401), r#"{"error":"invalid_client"}"#),
            (Some(500), ""),
            (Some(504), ""),
            (None, ""),
        ] {
            assert!(
                matches!(classify_raw(status, body), Outcome::Unavailable(_)),
                "{status:?} {body}"
            );
        }
    }

    #[test]
    fn scopes_and_audiences() {
        let claims = json!({"scope": "a  b:c", "aud": ["x", "y"]});
        let claims = claims.as_object().unwrap();
        assert_eq!(granted_scopes(claims), ["a", "b:c"]);
        assert!(!audience_ok(claims, &[]));
        assert!(audience_ok(claims, &["y".into()]));
        assert!(!audience_ok(claims, &["z".into()]));
        let single = json!({"aud": "z"});
        assert!(audience_ok(single.as_object().unwrap(), &["z".into()]));
        assert!(!audience_ok(json!({}).as_object().unwrap(), &["z".into()]));
        assert!(granted_scopes(json!({"scope": 3}).as_object().unwrap()).is_empty());
    }
}
