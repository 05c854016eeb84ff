//! proxy-wasm adapter of the identity filter.
//!
//! The decisions live in `gw_core` (`identity_policy` and friends); this
//! crate reads headers, calls the validation / introspection endpoint,
//! keeps the cache in shared data and applies the verdict. See
//! docs/identity.md.

mod http;
mod root;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::IdentityRoot::default()));
}}
