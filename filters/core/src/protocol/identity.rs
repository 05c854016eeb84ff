//! The verified identity's fields and the `X-Verified-Agent-*` headers the
//! identity filter sets for them: one table for every filter that names
//! them (the rate limit's `keySelector`, audit's `header:` captures, the
//! identity filter's own header ownership).

use crate::protocol::request_facts::VerifiedIdentity;

/// Prefix of the headers the identity filter owns: any such header from the
/// client is removed before anything else happens, and no other filter
/// trusts one it did not set.
pub const VERIFIED_HEADER_PREFIX: &str = "x-verified-agent-";

/// A field of the verified identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityField {
    AgentId,
    AgentName,
    AgentOwner,
}

/// The headers the identity filter sets, and the field each carries
/// (lowercase names).
pub const VERIFIED_HEADERS: &[(&str, IdentityField)] = &[
    ("x-verified-agent-id", IdentityField::AgentId),
    ("x-verified-agent-name", IdentityField::AgentName),
    ("x-verified-agent-owner", IdentityField::AgentOwner),
];

impl IdentityField {
    /// The field a verified header carries (`name` in any case).
    pub fn of_header(name: &str) -> Option<Self> {
        VERIFIED_HEADERS
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(name))
            .map(|(_, f)| *f)
    }

    /// This field of `identity`.
    pub fn value(self, identity: &VerifiedIdentity) -> &str {
        match self {
            IdentityField::AgentId => &identity.agent_id,
            IdentityField::AgentName => &identity.agent_name,
            IdentityField::AgentOwner => &identity.agent_owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_map_to_fields_in_any_case() {
        assert_eq!(
            IdentityField::of_header("X-Verified-Agent-Owner"),
            Some(IdentityField::AgentOwner)
        );
        assert_eq!(IdentityField::of_header("x-verified-agent-role"), None);
        let id = VerifiedIdentity {
            agent_id: "a".into(),
            agent_name: "n".into(),
            ..Default::default()
        };
        assert_eq!(IdentityField::AgentName.value(&id), "n");
        assert!(VERIFIED_HEADERS
            .iter()
            .all(|(h, _)| h.starts_with(VERIFIED_HEADER_PREFIX)));
    }
}
