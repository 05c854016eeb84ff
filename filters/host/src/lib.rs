//! The host port and the panic-free proxy-wasm helpers shared by the filter
//! adapters.
//!
//! - [`port`]: the `Host` trait every adapter calls Envoy through, and
//!   [`port::Abi`], the real host;
//! - [`memory`]: an in-memory host for unit tests (counts host calls);
//! - [`memo`]: the one-module chain's view of the host for one stage;
//! - [`filter`]: what an adapter is (`Filter`, `FilterRoot`) and how one
//!   runs as its own module (`StandaloneRoot`);
//! - [`stage`]: trailers end the body, for every filter;
//! - helpers that give the raw calls meaning: [`headers`], [`state`],
//!   [`body`], [`response`], [`reply`], [`shared_data`], [`clock`],
//!   [`config`], [`metrics`]; [`profile`] times callbacks (opt-in).
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
pub mod filter;
pub mod headers;
pub mod legacy_sse;
pub mod memo;
pub mod memory;
pub mod metrics;
pub mod port;
pub mod profile;
pub mod reply;
pub mod response;
pub mod shared_data;
pub mod stage;
pub mod state;
