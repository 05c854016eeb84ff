//! A2A version pinning (`a2a.versions`): the recipe's gotcha. Clients of
//! several protocol eras reach the same agent (0.1/0.2 `tasks/send`, 0.3
//! `message/send`, 1.0 `SendMessage` and REST); the gateway lets through
//! only the versions its configuration lists and answers the others with
//! A2A's `VersionNotSupportedError` (-32009; on REST `400
//! FAILED_PRECONDITION`, reason `VERSION_NOT_SUPPORTED`) before the agent
//! sees them.
//!
//! A request names its version twice, and both must be accepted:
//! - the `A2A-Version` header (1.0: "major.minor", patch ignored; a client
//!   that sends none is 0.3 to a 1.0 server, which is how the a2a-sdk reads
//!   it, so a request without the header is judged by its method alone);
//! - the vocabulary of its method or route: a name several versions share
//!   (`tasks/get` is 0.2 and 0.3) passes when any of them is accepted.

use crate::protocol::a2a::{self, A2aVersion};

/// Every version the gateway knows, in config spelling.
pub const KNOWN: &[(&str, A2aVersion)] = &[
    ("0.1", A2aVersion::V0_2),
    ("0.2", A2aVersion::V0_2),
    ("0.3", A2aVersion::V0_3),
    ("1.0", A2aVersion::V1_0),
];

/// Method names of 0.1/0.2 that 0.3 kept.
const KEPT_BY_0_3: &[&str] = &["tasks/get", "tasks/cancel", "tasks/resubscribe"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct A2aVersions {
    accepted: Vec<A2aVersion>,
    /// As configured, for the error's `data.supported`.
    names: Vec<String>,
}

impl Default for A2aVersions {
    /// Everything the protocol table knows.
    fn default() -> Self {
        Self {
            accepted: vec![A2aVersion::V0_2, A2aVersion::V0_3, A2aVersion::V1_0],
            names: vec!["0.2".into(), "0.3".into(), "1.0".into()],
        }
    }
}

/// A version refused: what was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRefused {
    pub requested: String,
    pub supported: Vec<String>,
}

impl A2aVersions {
    /// `Err((index, why))`: the caller adds the key.
    pub fn new(names: Vec<String>) -> Result<Self, (Option<usize>, String)> {
        if names.is_empty() {
            return Err((
                None,
                "must list at least one A2A version (an empty list would refuse every request)"
                    .into(),
            ));
        }
        let mut accepted = Vec::new();
        for (i, n) in names.iter().enumerate() {
            match KNOWN.iter().find(|(k, _)| k == n) {
                Some((_, v)) => accepted.push(*v),
                None => {
                    let known: Vec<&str> = KNOWN.iter().map(|(k, _)| *k).collect();
                    return Err((
                        Some(i),
                        format!("`{n}` is no A2A version the gateway knows; use one of {known:?}"),
                    ));
                }
            }
        }
        Ok(Self { accepted, names })
    }

    pub fn accepts(&self, v: A2aVersion) -> bool {
        self.accepted.contains(&v)
    }

    fn refused(&self, requested: impl Into<String>) -> VersionRefused {
        VersionRefused {
            requested: requested.into(),
            supported: self.names.clone(),
        }
    }

    /// Judge a request: its `A2A-Version` header, and the method name of a
    /// JSON-RPC request (`method`) or the version of its REST route.
    pub fn check(
        &self,
        header: Option<&str>,
        method: Option<&str>,
        rest_version: Option<A2aVersion>,
    ) -> Result<(), VersionRefused> {
        if let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) {
            match header_version(h) {
                Some(v) if self.accepts(v) => {}
                _ => return Err(self.refused(h)),
            }
        }
        if let Some(v) = rest_version {
            if !self.accepts(v) {
                return Err(self.refused(v.as_str()));
            }
        }
        if let Some(m) = method {
            let Some((_, era)) = a2a::jsonrpc_method(m) else {
                return Ok(());
            };
            let also_0_3 = era == A2aVersion::V0_2 && KEPT_BY_0_3.contains(&m);
            if !(self.accepts(era) || also_0_3 && self.accepts(A2aVersion::V0_3)) {
                return Err(self.refused(format!("{} (method {m})", era.as_str())));
            }
        }
        Ok(())
    }
}

/// The version an `A2A-Version` header names ("1.0", "1", "1.0.2", "0.3").
pub fn header_version(h: &str) -> Option<A2aVersion> {
    let mut parts = h.split('.');
    let major = parts.next()?.trim();
    let minor = parts.next().map(str::trim).unwrap_or("0");
    if !major.bytes().all(|b| b.is_ascii_digit()) || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match (major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?) {
        (1, _) => Some(A2aVersion::V1_0),
        (0, 3) => Some(A2aVersion::V0_3),
        (0, 1 | 2) => Some(A2aVersion::V0_2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(v: &[&str]) -> A2aVersions {
        A2aVersions::new(v.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn header_versions() {
        assert_eq!(header_version("1.0"), Some(A2aVersion::V1_0));
        assert_eq!(header_version("1"), Some(A2aVersion::V1_0));
        assert_eq!(header_version("1.0.3"), Some(A2aVersion::V1_0));
        assert_eq!(header_version("0.3"), Some(A2aVersion::V0_3));
        assert_eq!(header_version("0.2.5"), Some(A2aVersion::V0_2));
        assert_eq!(header_version("2.0"), None);
        assert_eq!(header_version("0.4"), None);
        assert_eq!(header_version("v1"), None);
        assert_eq!(header_version(""), None);
    }

    #[test]
    fn pinned_to_0_3_and_1_0() {
        let p = pinned(&["0.3", "1.0"]);
        assert!(p.check(Some("1.0"), Some("SendMessage"), None).is_ok());
        assert!(p.check(None, Some("message/send"), None).is_ok());
        // Names 0.3 kept from 0.2 pass; names it dropped do not.
        assert!(p.check(None, Some("tasks/get"), None).is_ok());
        let e = p.check(None, Some("tasks/send"), None).unwrap_err();
        assert_eq!(e.requested, "0.2 (method tasks/send)");
        assert_eq!(e.supported, vec!["0.3", "1.0"]);
        assert!(p.check(Some("2.0"), Some("SendMessage"), None).is_err());
        assert!(p.check(Some("0.2"), Some("message/send"), None).is_err());
        assert!(p.check(Some("1.0"), None, Some(A2aVersion::V1_0)).is_ok());
        assert!(p.check(None, None, Some(A2aVersion::V0_3)).is_ok());
        // Non-A2A method names are not judged here.
        assert!(p.check(None, Some("tools/call"), None).is_ok());
    }

    #[test]
    fn pinned_to_1_0_only() {
        let p = pinned(&["1.0"]);
        assert!(p.check(Some("1.0"), Some("GetTask"), None).is_ok());
        assert!(p.check(None, Some("message/send"), None).is_err());
        assert!(p.check(None, Some("tasks/get"), None).is_err());
        assert!(p.check(Some("0.3"), Some("SendMessage"), None).is_err());
        assert!(p.check(None, None, Some(A2aVersion::V0_3)).is_err());
        assert!(p.check(Some("1.0"), None, Some(A2aVersion::V1_0)).is_ok());
    }

    #[test]
    fn bad_lists_name_the_entry() {
        assert_eq!(A2aVersions::new(vec![]).unwrap_err().0, None);
        let (i, m) = A2aVersions::new(vec!["1.0".into(), "1.1".into()]).unwrap_err();
        assert_eq!(i, Some(1));
        assert!(m.contains("1.1"), "{m}");
        assert!(A2aVersions::default().accepts(A2aVersion::V0_2));
    }
}
