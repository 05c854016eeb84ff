//! Thin, panic-free proxy-wasm helpers shared by the filter adapters.
//!
//! The SDK's trait helpers (`Context::get_property`, `HttpContext::
//! get_http_request_body`, ...) `unwrap()` the host status, and its
//! `hostcalls` functions `panic!` on any status they do not expect; a panic
//! kills the Wasm VM of that worker. Every call here goes through [`abi`],
//! our own bindings that return every status as an error the filter must
//! handle.

pub mod abi;
pub mod body;
pub mod clock;
pub mod config;
pub mod flow;
pub mod headers;
pub mod legacy_sse;
pub mod memo;
pub mod profile;
pub mod reply;
pub mod response;
pub mod shared_data;
pub mod stage;
pub mod state;
