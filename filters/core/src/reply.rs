//! A local reply: what a filter answers instead of the upstream, built by
//! the policy and sent as is by the adapter (`gw_host::reply::send_local`).
//! One type for every filter's refusals.

/// An HTTP reply ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: String,
}
