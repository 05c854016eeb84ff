//! The Wasm module: the entry point Envoy calls, nothing else (the filter
//! is the `gw-audit` crate).

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| gw_audit::new_root());
}}
