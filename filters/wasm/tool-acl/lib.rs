//! The Wasm module: the entry point Envoy calls, nothing else (the filter
//! is the `gw-tool-acl` crate).

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    // Trailers end the body for this filter as for every stage of the
    // one-module chain (gw_host::stage): it judges a body that ends in
    // trailers before the trailers may release it.
    proxy_wasm::set_root_context(|_| {
        Box::new(gw_host::filter::StandaloneRoot::filter(gw_tool_acl::new_root()))
    });
}}
