//! The verified identity of the request, read from filter state once (never
//! from a header) and shared by the request side (the ACL's verdict) and
//! the answer side (the view a list is filtered for).

use gw_core::protocol::request_facts::VerifiedIdentity;
use gw_host::metrics::Counter;
use gw_host::port::Host;
use gw_host::state;

#[derive(Debug, Default)]
pub struct IdentityMemo(Option<Option<VerifiedIdentity>>);

impl IdentityMemo {
    /// The verified identity from filter state; a missing one is counted
    /// in `no_identity` once per request.
    pub fn get(&mut self, h: &mut dyn Host, no_identity: Counter) -> Option<&VerifiedIdentity> {
        if self.0.is_none() {
            let found = state::verified_identity(h).filter(|i| !i.agent_id.is_empty());
            if found.is_none() {
                no_identity.inc(h);
            }
            self.0 = Some(found);
        }
        self.0.as_ref().and_then(Option::as_ref)
    }
}
