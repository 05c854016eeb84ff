//! The A2A task-ownership table (shared data, every worker) and its
//! Redis mirror (webdis callouts; owners recorded by requests are sent by
//! the root on its tick). Policy: `gw_core::a2a_acl::{tasks, owner_store}`.

use gw_core::a2a_acl::config::A2aAcl;
use gw_core::a2a_acl::owner_store::OwnerStore;
use gw_core::a2a_acl::tasks::{self, Shard};
use gw_core::shared_doc::SharedDoc;
use gw_core::tool_acl::config::ToolAclConfig;
use gw_host::port::Host;
use gw_host::state;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// CAS attempts on one shard of the ownership table.
const CAS_ATTEMPTS: usize = 8;

/// How often the root sends recorded owners to Redis (when configured).
pub const OUTBOX_TICK: Duration = Duration::from_millis(50);
/// Owners waiting for the next tick, per worker; beyond this they stay
/// local (counted in the log), so a store that is down cannot grow memory.
const OUTBOX_MAX: usize = 10_000;

/// Owners recorded by this worker's requests, sent by the root on its
/// next tick (owned by the root, shared with its filters).
pub type Outbox = Rc<RefCell<Vec<String>>>;

pub(crate) fn outbox_push(outbox: &Outbox, body: String) {
    let mut o = outbox.borrow_mut();
    if o.len() < OUTBOX_MAX {
        o.push(body);
    } else {
        log::warn!("tool_acl: a2a owner outbox full; an owner stays local");
    }
}

/// On the root's tick: send the recorded owners to Redis (`SET NX`; the
/// answers are not needed: NX keeps the first owner whatever happens).
pub fn flush_outbox(h: &mut dyn Host, config: &ToolAclConfig, outbox: &Outbox) {
    let Some(store) = config.a2a.as_ref().and_then(|a| a.isolation.redis.as_ref()) else {
        return;
    };
    let pending = std::mem::take(&mut *outbox.borrow_mut());
    for body in pending {
        if dispatch(h, store, body).is_none() {
            log::warn!("tool_acl: a2a owner store unreachable; an owner stays local");
        }
    }
}

/// Bytes of a store answer read (an owner is an agent id).
pub(crate) const MAX_STORE_ANSWER: usize = 64 * 1024;

/// The caller is exempt from isolation (admins).
pub(crate) fn exempt(h: &mut dyn Host, acl: &A2aAcl) -> bool {
    state::verified_identity(h)
        .filter(|i| !i.agent_id.is_empty())
        .is_some_and(|i| acl.isolation.exempt.matches(&i.agent_id))
}

/// Record `owner` of `task` in this replica's table; whether it is new.
pub(crate) fn record_local(h: &mut dyn Host, acl: &A2aAcl, task: &str, owner: &str) -> bool {
    let now = gw_host::clock::now_ms(h);
    let per_shard = tasks::per_shard(acl.isolation.max_tasks);
    gw_host::shared_data::update(h, &tasks::shard_key(task), CAS_ATTEMPTS, |current| {
        let mut shard = Shard::from_bytes(current);
        shard
            .record(task, owner, now, acl.isolation.ttl_ms, per_shard)
            .then(|| shard.to_bytes())
    })
}

/// One webdis call; its token, or `None` when it cannot be sent.
pub(crate) fn dispatch(h: &mut dyn Host, store: &OwnerStore, body: String) -> Option<u32> {
    let upstream = &store.upstream;
    h.dispatch_http_call(
        &upstream.cluster,
        &upstream.post_headers("text/plain"),
        Some(body.as_bytes()),
        upstream.timeout(),
    )
    .ok()
}

/// The owner of `task` in the shared table.
pub(crate) fn owner_of(h: &mut dyn Host, task: &str, now_ms: u64) -> Option<String> {
    let (bytes, _) = gw_host::shared_data::get(h, &tasks::shard_key(task));
    Shard::from_bytes(bytes.as_deref())
        .owner(task, now_ms)
        .map(str::to_string)
}
