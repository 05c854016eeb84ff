//! proxy-wasm adapter of the identity filter.
//!
//! The decisions live in `gw_core::identity` (`policy` and friends); this
//! crate reads headers, calls the validation / introspection endpoint,
//! keeps the cache in shared data and applies the verdict. See
//! docs/identity.md.

mod http;
mod metrics;
mod root;

/// A fresh root of the filter (the module is `filters/wasm/identity`).
pub fn new_root() -> Box<dyn gw_host::filter::FilterRoot> {
    Box::new(root::IdentityRoot::default())
}
