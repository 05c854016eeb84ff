//! What the gateway understands of MCP and A2A on the wire.
//!
//! - [`a2a`]: every A2A binding (JSON-RPC, HTTP+JSON) and version, as operations
//! - [`jsonrpc`]: strict JSON-RPC body inspection (batches, duplicate keys)
//! - [`operation`]: protocol method families (MCP and every A2A version)
//! - [`request_facts`]: what the first body parser hands on to later filters
//! - [`sse`]: incremental Server-Sent Events parser

pub mod a2a;
pub mod jsonrpc;
pub mod operation;
pub mod request_facts;
pub mod sse;
