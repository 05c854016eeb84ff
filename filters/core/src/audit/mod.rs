//! The audit trail: the recipe's "Agent Protocol Audit Logging".
//!
//! - [`config`]: the recipe block (destination, captures, event format)
//! - [`bounds`]: size limits on client-controlled fields and on the event
//! - [`event`]: one audit event per request/response pair, request captures
//! - [`event_json`]: the event written as one line of JSON, field by field
//! - [`response_capture`]: response captures from JSON and SSE bodies, by JSON-RPC id
//! - [`outbox`]: events a worker collects and enqueues in frames
//! - [`batch`]: the sender's batching / retry / backoff state machine
//! - [`delivery`]: what the sender POSTs where, how often it wakes, which sender leads
//! - [`otlp`]: audit events as OTLP/HTTP JSON logs

pub mod batch;
pub mod bounds;
pub mod config;
pub mod delivery;
pub mod event;
pub mod event_json;
pub mod otlp;
pub mod outbox;
pub mod response_capture;
