//! Documents the filters keep in Envoy's shared data as JSON: the
//! `tools/list` cache (`tool_acl::tools_list::CacheDoc`), the 2024-11-05
//! transport's pending refusals (`tool_acl::legacy_sse::PendingDenials`),
//! the A2A task owners (`a2a_acl::tasks::Shard`). One encoding for all, and
//! one rule for bytes that do not decode: an empty document, never an error,
//! because every one of them is a cache or a bounded table that a worker
//! rebuilds (and an older format left by an upgrade must not wedge a key).

use serde::de::DeserializeOwned;
use serde::Serialize;

pub trait SharedDoc: Serialize + DeserializeOwned + Default {
    /// The document from its shared-data bytes (absent or unreadable: empty).
    fn from_bytes(bytes: Option<&[u8]>) -> Self {
        bytes
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default()
    }

    /// Its shared-data bytes.
    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Doc {
        n: u32,
    }
    impl SharedDoc for Doc {}

    #[test]
    fn round_trips_and_unreadable_bytes_are_empty() {
        let d = Doc { n: 7 };
        assert_eq!(Doc::from_bytes(Some(&d.to_bytes())), d);
        assert_eq!(Doc::from_bytes(None), Doc::default());
        assert_eq!(Doc::from_bytes(Some(b"{not json")), Doc::default());
        assert_eq!(Doc::from_bytes(Some(br#"{"n":"seven"}"#)), Doc::default());
    }
}
