//! Agent authentication: the recipe's "Agent Authentication Policy".
//!
//! - [`config`]: the filter's configuration (the recipe's `authMethods` block)
//! - [`credentials`]: which credential a request carries, precedence rules
//! - [`api_key`]: static agents (SHA-256 keys) and the API key validation contract
//! - [`introspection`]: RFC 7662 token introspection requests and answers
//! - [`callout`]: identity callouts and what their answers mean (fail closed)
//! - [`budget`]: bound on validation / introspection callouts in flight
//! - [`cache`]: bounded shared-data cache of credential checks, keyed by hash
//! - [`protected_resource`]: RFC 9728 metadata and `WWW-Authenticate` targets
//! - [`denial`]: 401/403/503 answers of the identity filter
//! - [`policy`]: from request headers to an identity verdict

pub mod api_key;
pub mod budget;
pub mod cache;
pub mod callout;
pub mod config;
pub mod credentials;
pub mod denial;
pub mod introspection;
pub mod policy;
pub mod protected_resource;
