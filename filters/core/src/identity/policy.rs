//! The identity filter's decision, from request headers to a verdict, with
//! no host calls: the adapter feeds it headers and callout answers and does
//! what it says.
//!
//! ```text
//! begin(request) ──► Continue        public path (credentials still stripped)
//!                ├─► Reply           protected-resource metadata
//!                ├─► Verdict         decided now: static API key, or a denial
//!                └─► Check(pending)  look in the cache, else call the endpoint;
//!                                    then finish(outcome) ──► Verdict
//! ```

use crate::identity::api_key;
use crate::identity::cache::credential_hash;
use crate::identity::callout::{expiry, Callout, Outcome};
use crate::identity::config::{IdentityConfig, VERIFIED_HEADER_PREFIX};
use crate::identity::credentials::{self, CredentialKind};
use crate::identity::denial::{bearer_challenge, Denial, LocalReply};
use crate::identity::introspection;
use crate::identity::protected_resource::{self, RequestInfo};
use crate::json_path::{scalar_text, JsonPath};
use crate::protocol::request_facts::VerifiedIdentity;
use crate::template::{Bindings, Escape, Template};
use serde_json::{Map, Value};

/// Longest agent id / name / owner passed on (bytes).
pub const MAX_IDENTITY_FIELD: usize = 256;

/// A credential that needs a callout (or a cache hit) to be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub kind: CredentialKind,
    /// [`credential_hash`] of the credential: the cache key.
    pub hash: String,
    pub callout: Callout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub identity: VerifiedIdentity,
    /// Headers to set upstream (`addHeaders`, rendered; empty values left out).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow(Allowed),
    Deny(Denial),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    Continue,
    Reply(LocalReply),
    Verdict(Verdict),
    Check(Pending),
}

struct Claims<'a> {
    claims: &'a Value,
    identity: Option<&'a VerifiedIdentity>,
}

impl Bindings for Claims<'_> {
    fn var(&self, name: &str, path: &JsonPath) -> Option<String> {
        match (name, self.identity) {
            // Only a string or a number names anything: a claim that is
            // null, a boolean, a list or an object renders as nothing, so
            // that `["admin-1"]` can never become the agent id `["admin-1"]`.
            ("tokenClaims", _) => path
                .get(self.claims)
                .filter(|v| v.is_string() || v.is_number())
                .map(scalar_text),
            ("agentId", Some(i)) => Some(i.agent_id.clone()),
            ("agentName", Some(i)) => Some(i.agent_name.clone()),
            ("agentOwner", Some(i)) => Some(i.agent_owner.clone()),
            ("authMethod", Some(i)) => Some(i.auth_method.clone()),
            _ => None,
        }
    }
}

fn render_field(template: Option<&Template>, bindings: &Claims<'_>) -> String {
    let mut value = template
        .map(|t| t.render(bindings, Escape::HeaderValue))
        .unwrap_or_default()
        .trim()
        .to_string();
    if value.len() > MAX_IDENTITY_FIELD {
        let mut end = MAX_IDENTITY_FIELD;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

impl IdentityConfig {
    /// Request headers to remove before anything else: every
    /// `x-verified-agent-*` and `addHeaders` name the client sent (only this
    /// filter may set them), and the credentials unless `forwardCredentials`.
    pub fn headers_to_strip(&self, headers: &[(String, String)]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (name, _) in headers {
            let lower = name.to_ascii_lowercase();
            let owned = lower.starts_with(VERIFIED_HEADER_PREFIX)
                || self.add_headers.iter().any(|(n, _)| *n == lower);
            let credential = !self.forward_credentials
                && (lower == "authorization"
                    || self
                        .api_key
                        .as_ref()
                        .is_some_and(|k| k.header_name == lower));
            if (owned || credential) && !names.contains(&lower) {
                names.push(lower);
            }
        }
        names
    }

    /// First step for a request.
    pub fn begin(
        &self,
        req: &RequestInfo<'_>,
        headers: &[(String, String)],
        now_secs: u64,
    ) -> Begin {
        if let Some(oauth) = &self.oauth2 {
            if let Some(reply) = protected_resource::serve(oauth, req) {
                return Begin::Reply(reply);
            }
        }
        if self.is_public(req.path) {
            return Begin::Continue;
        }
        let credential = match credentials::extract(self, headers) {
            Ok(c) => c,
            Err(denial) => return Begin::Verdict(Verdict::Deny(denial)),
        };
        if let (CredentialKind::ApiKey, Some(method)) = (credential.kind, &self.api_key) {
            if let Some(agent) = api_key::static_agent(method, &credential.secret) {
                if let Some(verdict) = &agent.verdict {
                    return Begin::Verdict(verdict.clone());
                }
                let outcome = Outcome::Valid(agent.claims.clone());
                return Begin::Verdict(self.finish(credential.kind, outcome, req, now_secs));
            }
        }
        // The cache key of a credential that needs a callout.
        let hash = credential_hash(credential.kind, &credential.secret);
        match (credential.kind, &self.api_key, &self.oauth2) {
            (CredentialKind::ApiKey, Some(method), _) => {
                match api_key::validation_callout(method, &credential.secret) {
                    Some(callout) => Begin::Check(Pending {
                        kind: credential.kind,
                        hash,
                        callout,
                    }),
                    None => Begin::Verdict(Verdict::Deny(Denial::invalid_api_key(
                        "the API key is not valid",
                    ))),
                }
            }
            (CredentialKind::Bearer, _, Some(method)) => Begin::Check(Pending {
                kind: credential.kind,
                hash,
                callout: introspection::introspection_callout(method, &credential.secret),
            }),
            // extract() only returns credentials of configured methods.
            _ => Begin::Verdict(Verdict::Deny(Denial::missing("no usable credential"))),
        }
    }

    /// Compute every static agent's verdict once (see
    /// [`crate::identity::config::StaticAgent::verdict`]): an API key's
    /// claims are checked for expiry only, and its templates read only the
    /// claims, so without an `exp` the verdict is the same for every request.
    pub(crate) fn precompute_static_verdicts(&mut self) {
        let Some(method) = &self.api_key else {
            return;
        };
        let any_request = RequestInfo {
            method: "",
            path: "",
            scheme: "",
            authority: "",
        };
        let verdicts: Vec<(String, Verdict)> = method
            .agents
            .iter()
            .filter(|(_, agent)| expiry(&agent.claims).is_none())
            .map(|(hash, agent)| {
                let outcome = Outcome::Valid(agent.claims.clone());
                let verdict = self.finish(CredentialKind::ApiKey, outcome, &any_request, 0);
                (hash.clone(), verdict)
            })
            .collect();
        if let Some(method) = self.api_key.as_mut() {
            for (hash, verdict) in verdicts {
                if let Some(agent) = method.agents.get_mut(&hash) {
                    agent.verdict = Some(verdict);
                }
            }
        }
    }

    /// The verdict once the credential's outcome is known.
    pub fn finish(
        &self,
        kind: CredentialKind,
        outcome: Outcome,
        req: &RequestInfo<'_>,
        now_secs: u64,
    ) -> Verdict {
        let claims = match outcome {
            Outcome::Valid(claims) => claims,
            Outcome::Invalid(why) => return Verdict::Deny(invalid(kind, why)),
            Outcome::Unavailable(why) => {
                return Verdict::Deny(Denial::unavailable(format!(
                    "cannot verify the credential: {why}"
                )))
            }
        };
        match self.check_claims(kind, &claims, req, now_secs) {
            Ok(()) => {}
            Err(denial) => return Verdict::Deny(denial),
        }
        let claims = Value::Object(claims);
        let from_claims = Claims {
            claims: &claims,
            identity: None,
        };
        let identity = VerifiedIdentity {
            agent_id: render_field(Some(&self.extraction.agent_id), &from_claims),
            agent_name: render_field(self.extraction.agent_name.as_ref(), &from_claims),
            agent_owner: render_field(self.extraction.agent_owner.as_ref(), &from_claims),
            auth_method: kind.auth_method().to_string(),
        };
        if identity.agent_id.is_empty() {
            return Verdict::Deny(Denial::no_agent_identity(
                "the credential is valid but names no agent (identityExtraction.agentId is empty)",
            ));
        }
        let bindings = Claims {
            claims: &claims,
            identity: Some(&identity),
        };
        let headers = self
            .add_headers
            .iter()
            .map(|(name, t)| (name.clone(), t.render(&bindings, Escape::HeaderValue)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Verdict::Allow(Allowed { identity, headers })
    }

    fn check_claims(
        &self,
        kind: CredentialKind,
        claims: &Map<String, Value>,
        req: &RequestInfo<'_>,
        now_secs: u64,
    ) -> Result<(), Denial> {
        if expiry(claims).is_some_and(|exp| exp <= now_secs) {
            return Err(invalid(kind, "the credential has expired".into()));
        }
        let Some(oauth) = self
            .oauth2
            .as_ref()
            .filter(|_| kind == CredentialKind::Bearer)
        else {
            return Ok(());
        };
        if !introspection::audience_ok(claims, &oauth.audiences) {
            return Err(Denial::invalid_token(
                "the token was not issued for this resource (audience mismatch)",
            ));
        }
        let required = oauth.scopes_for(req.method, req.path);
        let granted = introspection::granted_scopes(claims);
        let missing: Vec<String> = required
            .iter()
            .filter(|s| !granted.contains(&s.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Denial::insufficient_scope(&missing, &required))
        }
    }

    /// The local reply for a denial: JSON body and the challenge RFC 7235
    /// requires on 401 (RFC 6750/9728 `Bearer` when OAuth is configured).
    pub fn reply(&self, denial: &Denial, req: &RequestInfo<'_>) -> LocalReply {
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("cache-control".to_string(), "no-store".to_string()),
        ];
        let challenged =
            denial.status == 401 || denial.challenge.error == Some("insufficient_scope");
        if challenged {
            if self.oauth2.is_some() {
                let url = protected_resource::metadata_url(req);
                headers.push((
                    "www-authenticate".into(),
                    bearer_challenge(&denial.challenge, &url),
                ));
            } else if let Some(k) = &self.api_key {
                headers.push((
                    "www-authenticate".into(),
                    format!("ApiKey header=\"{}\"", k.header_name),
                ));
            }
        }
        LocalReply {
            status: denial.status,
            headers,
            body: denial.body(),
        }
    }
}

fn invalid(kind: CredentialKind, why: String) -> Denial {
    match kind {
        CredentialKind::ApiKey => Denial::invalid_api_key(why),
        CredentialKind::Bearer => Denial::invalid_token(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::identity::api_key::key_sha256;
    use crate::identity::config::IdentitySpec;
    use serde_json::json;

    fn cfg() -> IdentityConfig {
        let text = format!(
            r##"
authMethods:
  - type: apiKey
    validationEndpoint: http://identity.internal/v1/agents/validate
    validationCluster: identity_service
    agents:
      - {{id: sentinel-1, name: Sentinel One, owner: security-team, keySha256: {}}}
  - type: oauth2ClientCredentials
    tokenUrl: http://127.0.0.1:9000/oauth/token
    introspectionUrl: http://127.0.0.1:9000/oauth/introspect
    introspectionCluster: oauth_server
    clientAuth: {{clientId: gateway, clientSecret: gateway-secret}}
    audiences: [https://gateway.test]
    scopeRules:
      - {{paths: [/mcp, /mcp/*], requiredScopes: [mcp:tools:invoke]}}
      - {{paths: [/a2a, /a2a/*], requiredScopes: [a2a:tasks:send]}}
identityExtraction:
  agentId: "#[vars.tokenClaims.agent_id]"
  agentName: "#[vars.tokenClaims.agent_name]"
  agentOwner: "#[vars.tokenClaims.owner]"
addHeaders:
  X-Verified-Agent-Id: "#[vars.agentId]"
  X-Verified-Agent-Name: "#[vars.agentName]"
  X-Verified-Agent-Owner: "#[vars.agentOwner]"
  X-Verified-Auth-Method: "#[vars.authMethod]"
"##,
            key_sha256("demo-sentinel-key")
        );
        load::<IdentitySpec, IdentityConfig>(text.as_bytes()).unwrap()
    }

    fn req(path: &str) -> RequestInfo<'_> {
        RequestInfo {
            method: "POST",
            path,
            scheme: "https",
            authority: "localhost:8443",
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const NOW: u64 = 1_800_000_000;

    fn token_claims(scope: &str) -> Map<String, Value> {
        json!({"active": true, "agent_id": "admin-2", "agent_name": "Admin Two", "owner": "platform",
               "scope": scope, "aud": "https://gateway.test", "exp": NOW + 60})
        .as_object().unwrap().clone()
    }

    #[test]
    fn static_key_is_decided_without_a_callout() {
        let c = cfg();
        match c.begin(
            &req("/mcp"),
            &h(&[("x-agent-api-key", "demo-sentinel-key")]),
            NOW,
        ) {
            Begin::Verdict(Verdict::Allow(a)) => {
                assert_eq!(a.identity.agent_id, "sentinel-1");
                assert_eq!(a.identity.agent_name, "Sentinel One");
                assert_eq!(a.identity.agent_owner, "security-team");
                assert_eq!(a.identity.auth_method, "apiKey");
                assert!(a
                    .headers
                    .contains(&("x-verified-agent-id".into(), "sentinel-1".into())));
                assert!(a
                    .headers
                    .contains(&("x-verified-auth-method".into(), "apiKey".into())));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn static_verdicts_are_computed_once_unless_they_expire() {
        let text = format!(
            r##"
authMethods:
  - type: apiKey
    agents:
      - {{id: steady, name: Steady, keySha256: {}}}
      - {{id: expiring, keySha256: {}, claims: {{exp: {}}}}}
addHeaders:
  X-Verified-Agent-Id: "#[vars.agentId]"
"##,
            key_sha256("k-steady"),
            key_sha256("k-expiring"),
            NOW + 10
        );
        let mut c = load::<IdentitySpec, IdentityConfig>(text.as_bytes()).unwrap();
        let agents = &c.api_key.as_ref().unwrap().agents;
        let steady = &agents[&key_sha256("k-steady")];
        let expiring = &agents[&key_sha256("k-expiring")];
        assert!(steady.verdict.is_some());
        assert!(
            expiring.verdict.is_none(),
            "an exp claim makes it time-dependent"
        );
        // The precomputed verdict is the one computed per request.
        let precomputed = c.begin(&req("/mcp"), &h(&[("x-agent-api-key", "k-steady")]), NOW);
        let per_request = c.finish(
            CredentialKind::ApiKey,
            Outcome::Valid(steady.claims.clone()),
            &req("/mcp"),
            NOW,
        );
        assert_eq!(precomputed, Begin::Verdict(per_request));
        // The expiring agent is judged at request time: fine now, expired later.
        let key = h(&[("x-agent-api-key", "k-expiring")]);
        assert!(matches!(
            c.begin(&req("/mcp"), &key, NOW),
            Begin::Verdict(Verdict::Allow(_))
        ));
        assert!(matches!(
            c.begin(&req("/mcp"), &key, NOW + 10),
            Begin::Verdict(Verdict::Deny(_))
        ));
        // Without precomputation (as before) the answer is the same.
        for agent in c.api_key.as_mut().unwrap().agents.values_mut() {
            agent.verdict = None;
        }
        assert_eq!(
            c.begin(&req("/mcp"), &h(&[("x-agent-api-key", "k-steady")]), NOW),
            precomputed
        );
    }

    #[test]
    fn other_keys_and_tokens_need_a_callout() {
        let c = cfg();
        match c.begin(&req("/mcp"), &h(&[("x-agent-api-key", "other")]), NOW) {
            Begin::Check(p) => {
                assert_eq!(p.kind, CredentialKind::ApiKey);
                assert_eq!(p.callout.cluster, "identity_service");
                assert!(!p.hash.contains("other"));
            }
            other => panic!("{other:?}"),
        }
        match c.begin(&req("/a2a"), &h(&[("authorization", "Bearer tok")]), NOW) {
            Begin::Check(p) => assert_eq!(p.callout.cluster, "oauth_server"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn public_paths_and_metadata() {
        let c = cfg();
        assert_eq!(
            c.begin(&req("/.well-known/agent-card.json"), &[], NOW),
            Begin::Continue
        );
        let get = RequestInfo {
            method: "GET",
            ..req("/.well-known/oauth-protected-resource/mcp")
        };
        assert!(matches!(c.begin(&get, &[], NOW), Begin::Reply(r) if r.status == 200));
        match c.begin(&req("/mcp"), &[], NOW) {
            Begin::Verdict(Verdict::Deny(d)) => {
                assert_eq!(d.error, "missing_credentials");
                let reply = c.reply(&d, &req("/mcp"));
                assert_eq!(reply.status, 401);
                assert!(reply.headers.contains(&(
                    "www-authenticate".into(),
                    "Bearer resource_metadata=\"https://localhost:8443/.well-known/oauth-protected-resource/mcp\"".into()
                )));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tokens_need_scope_audience_and_time() {
        let c = cfg();
        let fin = |claims: Map<String, Value>, path: &str| {
            c.finish(
                CredentialKind::Bearer,
                Outcome::Valid(claims),
                &req(path),
                NOW,
            )
        };
        match fin(token_claims("mcp:tools:invoke"), "/mcp/tools/call") {
            Verdict::Allow(a) => {
                assert_eq!(a.identity.agent_id, "admin-2");
                assert_eq!(a.identity.auth_method, "oauth2ClientCredentials");
            }
            other => panic!("{other:?}"),
        }
        let deny = |v: Verdict| match v {
            Verdict::Deny(d) => d,
            other => panic!("{other:?}"),
        };
        let d = deny(fin(token_claims("mcp:tools:invoke"), "/a2a"));
        assert_eq!((d.status, d.error), (403, "insufficient_scope"));
        let reply = c.reply(&d, &req("/a2a"));
        let www = reply
            .headers
            .iter()
            .find(|(n, _)| n == "www-authenticate")
            .unwrap();
        assert!(
            www.1
                .starts_with("Bearer error=\"insufficient_scope\", scope=\"a2a:tasks:send\""),
            "{}",
            www.1
        );
        let mut wrong_aud = token_claims("mcp:tools:invoke");
        wrong_aud.insert("aud".into(), json!("https://other.test"));
        assert_eq!(deny(fin(wrong_aud, "/mcp")).error, "invalid_token");
        let mut expired = token_claims("mcp:tools:invoke");
        expired.insert("exp".into(), json!(NOW));
        assert_eq!(deny(fin(expired, "/mcp")).error, "invalid_token");
        let mut anonymous = token_claims("mcp:tools:invoke");
        anonymous.remove("agent_id");
        let d = deny(fin(anonymous, "/mcp"));
        assert_eq!((d.status, d.error), (403, "no_agent_identity"));
        // a claim that is not a string or a number names no agent
        for wrong in [
            json!(null),
            json!(["admin-1"]),
            json!({"id": "admin-1"}),
            json!(true),
        ] {
            let mut claims = token_claims("mcp:tools:invoke");
            claims.insert("agent_id".into(), wrong.clone());
            let d = deny(fin(claims, "/mcp"));
            assert_eq!((d.status, d.error), (403, "no_agent_identity"), "{wrong}");
        }
    }

    #[test]
    fn invalid_and_unavailable_outcomes() {
        let c = cfg();
        let deny = |kind, o| match c.finish(kind, o, &req("/mcp"), NOW) {
            Verdict::Deny(d) => d,
            other => panic!("{other:?}"),
        };
        let d = deny(CredentialKind::ApiKey, Outcome::Invalid("nope".into()));
        assert_eq!((d.status, d.error), (401, "invalid_api_key"));
        let d = deny(CredentialKind::Bearer, Outcome::Invalid("nope".into()));
        assert_eq!((d.status, d.error), (401, "invalid_token"));
        let d = deny(
            CredentialKind::Bearer,
            Outcome::Unavailable("timed out".into()),
        );
        assert_eq!(
            (d.status, d.error, d.decision()),
            (503, "identity_unavailable", "unavailable")
        );
        assert!(d.message.contains("timed out"));
        assert!(!c
            .reply(&d, &req("/mcp"))
            .headers
            .iter()
            .any(|(n, _)| n == "www-authenticate"));
    }

    #[test]
    fn api_key_scopes_are_not_required() {
        let c = cfg();
        let claims = json!({"agent_id": "svc-1"}).as_object().unwrap().clone();
        assert!(matches!(
            c.finish(
                CredentialKind::ApiKey,
                Outcome::Valid(claims),
                &req("/a2a"),
                NOW
            ),
            Verdict::Allow(_)
        ));
    }

    #[test]
    fn spoofed_and_credential_headers_are_stripped() {
        let c = cfg();
        let strip = c.headers_to_strip(&h(&[
            ("X-Verified-Agent-Id", "admin-1"),
            ("x-verified-agent-anything", "x"),
            ("x-verified-auth-method", "x"),
            ("authorization", "Bearer t"),
            ("x-agent-api-key", "k"),
            ("content-type", "application/json"),
        ]));
        assert_eq!(
            strip,
            [
                "x-verified-agent-id",
                "x-verified-agent-anything",
                "x-verified-auth-method",
                "authorization",
                "x-agent-api-key"
            ]
        );
    }

    #[test]
    fn identity_values_are_header_safe_and_bounded() {
        let c = cfg();
        let claims = json!({"agent_id": "evil\r\nx-admin: 1", "agent_name": "n".repeat(1000)})
            .as_object()
            .unwrap()
            .clone();
        match c.finish(
            CredentialKind::ApiKey,
            Outcome::Valid(claims),
            &req("/mcp"),
            NOW,
        ) {
            Verdict::Allow(a) => {
                assert_eq!(a.identity.agent_id, "evilx-admin: 1");
                assert_eq!(a.identity.agent_name.len(), MAX_IDENTITY_FIELD);
            }
            other => panic!("{other:?}"),
        }
    }
}
