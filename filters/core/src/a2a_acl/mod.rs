//! A2A governance in the ACL stage: the counterpart of the tool ACL for
//! agents talking A2A, on every binding and version the protocol table
//! (`protocol::a2a`) knows.
//!
//! - [`config`]: the `a2a:` section of the tool-acl configuration
//! - [`rules`]: per-agent allow/deny of operations and skills
//! - [`versions`]: version pinning (`A2A-Version` header, method-name eras)
//! - [`tasks`]: task isolation: who created each task, the sharded
//!   ownership table kept in shared data, task ids read from answers
//! - [`owner_store`]: the ownership table mirrored in Redis (webdis), across replicas
//! - [`judge`]: the inspected request as the call to decide, and whether the owner store is asked
//! - [`request`]: the request-side decision, in the order the stage applies it
//! - [`errors`]: the refusals, in the binding's own error format
//!
//! Nothing here touches the host: the adapter crate `filters/a2a-acl` moves the
//! bytes. See `docs/a2a.md`.

pub mod config;
pub mod errors;
pub mod judge;
pub mod owner_store;
pub mod request;
pub mod rules;
pub mod tasks;
pub mod versions;
