//! Filter state shared between our filters (see `gw_core::filter_state`)
//! and request headers, without panics.

use crate::port::Host;
use gw_core::filter_state;
use gw_core::protocol::request_facts::{RequestFacts, VerifiedIdentity};
use proxy_wasm::types::MapType;
use std::cell::RefCell;
use std::thread::LocalKey;

/// `wasm.<key>` of our filter-state keys, as Envoy names them.
const WASM_VERIFIED_IDENTITY: &str = "wasm.gw_identity";
const WASM_REQUEST_FACTS: &str = "wasm.gw_request";
const WASM_DECISION: &str = "wasm.gw_decision";

/// Store `value` as filter state `wasm.<key>`.
pub fn set(h: &mut dyn Host, key: &str, value: &str) -> bool {
    match h.set_property(&[key], Some(value.as_bytes())) {
        Ok(()) => true,
        Err(status) => {
            log::warn!("cannot set filter state {key}: {status:?}");
            false
        }
    }
}

/// Read filter state `wasm.<key>` set by one of our filters.
pub fn get(h: &mut dyn Host, key: &str) -> Option<Vec<u8>> {
    // our own keys' names without formatting one per read (several per
    // request); any other key is formatted
    let name: std::borrow::Cow<'static, str> = match key {
        filter_state::VERIFIED_IDENTITY => WASM_VERIFIED_IDENTITY.into(),
        filter_state::REQUEST_FACTS => WASM_REQUEST_FACTS.into(),
        filter_state::DECISION => WASM_DECISION.into(),
        _ => format!("wasm.{key}").into(),
    };
    h.property(&["filter_state", &name])
        .ok()
        .flatten()
        .filter(|v| !v.is_empty())
}

/// Bytes last decoded and what they decoded to.
type LastDecode<T> = RefCell<Option<(Vec<u8>, Option<T>)>>;

thread_local! {
    /// The last identity and facts decoded, with the bytes they were
    /// decoded from: in the one-module chain three stages read the same
    /// JSON in one request (tool ACL, rate limit, audit), and a decode is
    /// a pure function of the bytes, so equal bytes get a copy of the
    /// value instead of a second parse (a VM-wide cache of one entry
    /// each, not request state).
    static IDENTITY: LastDecode<VerifiedIdentity> = const { RefCell::new(None) };
    static FACTS: LastDecode<RequestFacts> = const { RefCell::new(None) };
}

fn decode_once<T: Clone>(
    cache: &'static LocalKey<LastDecode<T>>,
    bytes: Vec<u8>,
    decode: fn(&[u8]) -> Option<T>,
) -> Option<T> {
    cache.with(|cell| {
        let mut last = cell.borrow_mut();
        if let Some((seen, value)) = last.as_ref() {
            if *seen == bytes {
                return value.clone();
            }
        }
        let value = decode(&bytes);
        *last = Some((bytes, value.clone()));
        value
    })
}

pub fn verified_identity(h: &mut dyn Host) -> Option<VerifiedIdentity> {
    let bytes = get(h, filter_state::VERIFIED_IDENTITY)?;
    decode_once(&IDENTITY, bytes, VerifiedIdentity::from_json)
}

pub fn request_facts(h: &mut dyn Host) -> Option<RequestFacts> {
    let bytes = get(h, filter_state::REQUEST_FACTS)?;
    decode_once(&FACTS, bytes, RequestFacts::from_json)
}

pub fn set_decision(h: &mut dyn Host, decision: &str) {
    set(h, filter_state::DECISION, decision);
}

/// A request header (lossy UTF-8: see [`crate::headers`], the SDK's
/// `get_map_value` panics on non-UTF-8 values).
pub fn request_header(h: &mut dyn Host, name: &str) -> Option<String> {
    crate::headers::get(h, MapType::HttpRequestHeaders, name)
}

pub fn set_request_header(h: &mut dyn Host, name: &str, value: Option<&str>) {
    if let Err(status) = h.set_header(MapType::HttpRequestHeaders, name, value) {
        log::warn!("cannot set request header {name}: {status:?}");
    }
}

/// Read a host property such as `request.path` as a string.
pub fn property_string(h: &mut dyn Host, path: &[&str]) -> Option<String> {
    h.property(path)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8(b).ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_static_names_are_wasm_dot_the_keys() {
        for (key, name) in [
            (filter_state::VERIFIED_IDENTITY, WASM_VERIFIED_IDENTITY),
            (filter_state::REQUEST_FACTS, WASM_REQUEST_FACTS),
            (filter_state::DECISION, WASM_DECISION),
        ] {
            assert_eq!(format!("wasm.{key}"), name);
        }
    }

    #[test]
    fn a_decode_is_reused_only_for_the_same_bytes() {
        use crate::memory::MemoryHost;
        let mut h = MemoryHost::new();
        let one = r#"{"agentId":"a-1","agentName":"A","agentOwner":"o","authMethod":"apiKey"}"#;
        let two = r#"{"agentId":"a-2","agentName":"B","agentOwner":"o","authMethod":"apiKey"}"#;
        set(&mut h, filter_state::VERIFIED_IDENTITY, one);
        let a = verified_identity(&mut h).unwrap();
        assert_eq!(a.agent_id, "a-1");
        assert_eq!(verified_identity(&mut h), Some(a));
        set(&mut h, filter_state::VERIFIED_IDENTITY, two);
        assert_eq!(verified_identity(&mut h).unwrap().agent_id, "a-2");
        set(&mut h, filter_state::VERIFIED_IDENTITY, "not json");
        assert_eq!(verified_identity(&mut h), None);
        assert_eq!(verified_identity(&mut h), None);
        set(&mut h, filter_state::VERIFIED_IDENTITY, one);
        assert_eq!(verified_identity(&mut h).unwrap().agent_id, "a-1");
    }
}
