//! Which credential a request carries, and the precedence rules.
//!
//! Only the credentials of configured methods count: with no
//! `oauth2ClientCredentials` method, `Authorization` is not ours and is
//! ignored (and, like every credential header, not forwarded unless
//! `forwardCredentials` is set). Then:
//!
//! - neither credential → 401 `missing_credentials`;
//! - both an API key and a bearer token → 401 `ambiguous_credentials`
//!   (the gateway will not guess which identity the caller meant);
//! - a credential header repeated, an empty or over-long value, characters a
//!   key/token cannot have, or an `Authorization` scheme other than `Bearer`
//!   → 401 `invalid_request`.

use crate::identity::config::IdentityConfig;
use crate::identity::denial::Denial;

/// Longest API key accepted (bytes).
pub const MAX_API_KEY_LEN: usize = 512;
/// Longest bearer token accepted (bytes).
pub const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ApiKey,
    Bearer,
}

impl CredentialKind {
    /// The `authMethod` recorded in the verified identity.
    pub fn auth_method(self) -> &'static str {
        match self {
            Self::ApiKey => "apiKey",
            Self::Bearer => "oauth2ClientCredentials",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub kind: CredentialKind,
    pub secret: String,
}

/// The single value of header `name`, or a denial when it is repeated.
fn single<'h>(headers: &'h [(String, String)], name: &str) -> Result<Option<&'h str>, Denial> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(Denial::malformed(format!(
            "the `{name}` header must appear once"
        )));
    }
    Ok(first)
}

/// RFC 6750 §2.1 `b64token`: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
}

fn api_key_value(value: &str, header: &str) -> Result<String, Denial> {
    let key = value.trim();
    if key.is_empty() {
        return Err(Denial::malformed(format!("the `{header}` header is empty")));
    }
    if key.len() > MAX_API_KEY_LEN {
        return Err(Denial::malformed(format!(
            "the `{header}` header is longer than {MAX_API_KEY_LEN} bytes"
        )));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Denial::malformed(format!(
            "the `{header}` header has characters an API key cannot contain"
        )));
    }
    Ok(key.to_string())
}

fn bearer_value(value: &str) -> Result<String, Denial> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Denial::malformed(
            "the Authorization header must use the Bearer scheme",
        ));
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(Denial::malformed("the bearer token is empty"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(Denial::malformed(format!(
            "the bearer token is longer than {MAX_TOKEN_LEN} bytes"
        )));
    }
    if !is_b64token(token) {
        return Err(Denial::malformed(
            "the bearer token has characters a token cannot contain (RFC 6750 b64token)",
        ));
    }
    Ok(token.to_string())
}

/// The credential of a request, or why there is no usable one.
pub fn extract(
    config: &IdentityConfig,
    headers: &[(String, String)],
) -> Result<Credential, Denial> {
    let key = match &config.api_key {
        Some(method) => single(headers, &method.header_name)?
            .map(|v| api_key_value(v, &method.header_name))
            .transpose()?,
        None => None,
    };
    let token = match &config.oauth2 {
        Some(_) => single(headers, "authorization")?
            .map(bearer_value)
            .transpose()?,
        None => None,
    };
    match (key, token) {
        (Some(_), Some(_)) => Err(Denial::ambiguous(
            "send either an API key or a bearer token, not both",
        )),
        (Some(secret), None) => Ok(Credential {
            kind: CredentialKind::ApiKey,
            secret,
        }),
        (None, Some(secret)) => Ok(Credential {
            kind: CredentialKind::Bearer,
            secret,
        }),
        (None, None) => Err(Denial::missing(missing_message(config))),
    }
}

fn missing_message(config: &IdentityConfig) -> String {
    match (&config.api_key, &config.oauth2) {
        (Some(k), Some(_)) => format!(
            "authentication required: send an API key in `{}` or `Authorization: Bearer <token>`",
            k.header_name
        ),
        (Some(k), None) => format!(
            "authentication required: send an API key in `{}`",
            k.header_name
        ),
        _ => "authentication required: send `Authorization: Bearer <token>`".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::identity::config::IdentitySpec;

    fn cfg(text: &str) -> IdentityConfig {
        load::<IdentitySpec, IdentityConfig>(text.as_bytes()).unwrap()
    }

    const BOTH: &str = "authMethods:\n  - {type: apiKey, validationEndpoint: 'http://id/v'}\n  - {type: oauth2ClientCredentials, introspectionUrl: 'http://as/i', audiences: [g]}\n";
    const KEY_ONLY: &str =
        "authMethods:\n  - {type: apiKey, headerName: X-Key, validationEndpoint: 'http://id/v'}\n";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn one_credential_is_extracted() {
        let c = cfg(BOTH);
        let k = extract(&c, &h(&[("x-agent-api-key", " k-1 ")])).unwrap();
        assert_eq!((k.kind, k.secret.as_str()), (CredentialKind::ApiKey, "k-1"));
        let t = extract(&c, &h(&[("authorization", "bearer abc.DEF-_~+/==")])).unwrap();
        assert_eq!(
            (t.kind, t.secret.as_str()),
            (CredentialKind::Bearer, "abc.DEF-_~+/==")
        );
    }

    #[test]
    fn precedence_and_malformed_headers() {
        let c = cfg(BOTH);
        let err = |pairs: &[(&str, &str)]| extract(&c, &h(pairs)).unwrap_err().error;
        assert_eq!(err(&[]), "missing_credentials");
        assert_eq!(
            err(&[("x-agent-api-key", "k"), ("authorization", "Bearer t")]),
            "ambiguous_credentials"
        );
        assert_eq!(
            err(&[("x-agent-api-key", "a"), ("x-agent-api-key", "b")]),
            "invalid_request"
        );
        assert_eq!(
            err(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]),
            "invalid_request"
        );
        assert_eq!(err(&[("authorization", "Basic dTpw")]), "invalid_request");
        assert_eq!(err(&[("authorization", "Bearer")]), "invalid_request");
        assert_eq!(err(&[("authorization", "Bearer a b")]), "invalid_request");
        assert_eq!(err(&[("authorization", "Bearer =")]), "invalid_request");
        assert_eq!(err(&[("x-agent-api-key", "")]), "invalid_request");
        assert_eq!(err(&[("x-agent-api-key", "a b")]), "invalid_request");
        assert_eq!(err(&[("x-agent-api-key", "ключ")]), "invalid_request");
        let long = "k".repeat(MAX_API_KEY_LEN + 1);
        assert_eq!(err(&[("x-agent-api-key", &long)]), "invalid_request");
        let long = "t".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            err(&[("authorization", &format!("Bearer {long}"))]),
            "invalid_request"
        );
    }

    #[test]
    fn authorization_is_ignored_without_an_oauth_method() {
        let c = cfg(KEY_ONLY);
        let k = extract(&c, &h(&[("x-key", "k"), ("authorization", "Basic x")])).unwrap();
        assert_eq!(k.kind, CredentialKind::ApiKey);
        let d = extract(&c, &h(&[("authorization", "Bearer t")])).unwrap_err();
        assert_eq!(d.error, "missing_credentials");
        assert!(d.message.contains("x-key"), "{}", d.message);
    }
}
