//! MCP protocol version pinning: the gateway accepts only the protocol
//! revisions its configuration lists (`protocolVersions`), and refuses the
//! others before they reach the upstream, with the error the protocol
//! defines for each place a version is named:
//!
//! - the `MCP-Protocol-Version` header (Streamable HTTP, every request after
//!   the handshake): HTTP 400, as the transport spec says for an unsupported
//!   version, with the JSON-RPC error 2026-07-28 gives it (`-32022`,
//!   `data: {supported, requested}`);
//! - no header on a request other than `initialize`: the transport spec
//!   tells servers to assume 2025-03-26 then, so the gateway judges that
//!   version (a client cannot dodge the pin by leaving the header out);
//! - `initialize` asking for a revision not listed: the lifecycle spec's
//!   `-32602 "Unsupported protocol version"` with `data: {supported,
//!   requested}`, as a JSON-RPC error with HTTP 200, because handshake-era
//!   clients (2025-xx) read a JSON-RPC error only from a 200 (a 4xx becomes
//!   a bare "Server returned an error response", see docs/tool-acl.md).

use crate::protocol::jsonrpc::{self, JsonRpcBody};
use crate::protocol::operation::Operation;
use crate::protocol::request_facts::RequestFacts;
use serde_json::{json, Value};

/// What the official MCP SDKs of the test environment (Python `mcp` 2.3.0)
/// and the example server speak: every released revision.
pub const DEFAULT_PROTOCOL_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// The revision a server must assume when a request carries no
/// `MCP-Protocol-Version` header (Streamable HTTP, 2025-06-18 onwards).
pub const ASSUMED_WITHOUT_HEADER: &str = "2025-03-26";

pub use crate::protocol::jsonrpc::codes::{INVALID_PARAMS, UNSUPPORTED_PROTOCOL_VERSION};

/// A refusal: HTTP status and the JSON-RPC `error` object.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRefusal {
    pub http_status: u16,
    pub error: Value,
}

/// The accepted revisions, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolVersions {
    accepted: Vec<String>,
}

impl Default for ProtocolVersions {
    fn default() -> Self {
        Self {
            accepted: DEFAULT_PROTOCOL_VERSIONS
                .iter()
                .map(|v| (*v).to_string())
                .collect(),
        }
    }
}

impl ProtocolVersions {
    /// `Err((index, why))` names the offending entry; the caller adds the key.
    pub fn new(accepted: Vec<String>) -> Result<Self, (Option<usize>, String)> {
        if accepted.is_empty() {
            return Err((
                None,
                "must list at least one MCP revision (an empty list would refuse every request)"
                    .into(),
            ));
        }
        for (i, v) in accepted.iter().enumerate() {
            // Revisions are dates (YYYY-MM-DD); a typo here would silently
            // refuse every client of that revision.
            let shaped = v.len() == 10
                && v.bytes().enumerate().all(|(j, b)| match j {
                    4 | 7 => b == b'-',
                    _ => b.is_ascii_digit(),
                });
            if !shaped {
                return Err((
                    Some(i),
                    format!("`{v}` is not an MCP revision (YYYY-MM-DD, e.g. 2025-11-25)"),
                ));
            }
        }
        Ok(Self { accepted })
    }

    pub fn accepts(&self, version: &str) -> bool {
        self.accepted.iter().any(|v| v == version)
    }

    pub fn list(&self) -> &[String] {
        &self.accepted
    }

    /// Version pinning of a request with a body (`facts`; `parsed`, the
    /// JSON-RPC body if an earlier step parsed it; `body`, its bytes):
    /// without a header (`has_header` false), only an `initialize` may
    /// leave it out; every `initialize` must ask for a listed revision.
    /// (The header's own value is judged by [`Self::check_header`].)
    pub fn check_body(
        &self,
        has_header: bool,
        facts: &RequestFacts,
        parsed: Option<&JsonRpcBody>,
        body: &[u8],
    ) -> Result<(), VersionRefusal> {
        let is_initialize = |op: Option<Operation>| op == Some(Operation::McpInitialize);
        let initializing = facts.single().is_some_and(|m| is_initialize(m.operation()));
        if !has_header {
            self.check_header(None, initializing)?;
        }
        if !facts.messages.iter().any(|m| is_initialize(m.operation())) {
            return Ok(());
        }
        // The facts carry no params; an earlier filter may have parsed the
        // body already, else parse it again (initialize is rare and small).
        let reparsed;
        let parsed = match parsed {
            Some(p) => p,
            None => match jsonrpc::parse(body) {
                Ok(p) => {
                    reparsed = p;
                    &reparsed
                }
                // The earlier filter parsed it strictly, so this cannot
                // happen; fail closed as an initialize naming no version.
                Err(_) => return self.check_initialize(None),
            },
        };
        for m in parsed.messages() {
            if m.method() == Some("initialize") {
                self.check_initialize(m.params())?;
            }
        }
        Ok(())
    }

    /// The `MCP-Protocol-Version` header of a request (`None`: absent).
    /// `initializing`: the request is an `initialize` (its version is in
    /// the body, judged by [`Self::check_initialize`]) or cannot be known
    /// yet; then an absent header is fine.
    pub fn check_header(
        &self,
        header: Option<&str>,
        initializing: bool,
    ) -> Result<(), VersionRefusal> {
        let requested = match header.map(str::trim) {
            Some(v) => v,
            None if initializing => return Ok(()),
            None => ASSUMED_WITHOUT_HEADER,
        };
        if self.accepts(requested) {
            return Ok(());
        }
        Err(VersionRefusal {
            http_status: 400,
            error: json!({
                "code": UNSUPPORTED_PROTOCOL_VERSION,
                "message": format!(
                    "Bad Request: unsupported protocol version {requested:?}{}",
                    if header.is_none() { " (assumed: no MCP-Protocol-Version header)" } else { "" }
                ),
                "data": {"supported": self.accepted, "requested": requested},
            }),
        })
    }

    /// `params` of an `initialize` request.
    pub fn check_initialize(&self, params: Option<&Value>) -> Result<(), VersionRefusal> {
        let requested = params.and_then(|p| p.get("protocolVersion"));
        if let Some(Value::String(v)) = requested {
            if self.accepts(v) {
                return Ok(());
            }
        }
        Err(VersionRefusal {
            http_status: 200,
            error: json!({
                "code": INVALID_PARAMS,
                "message": "Unsupported protocol version",
                "data": {"supported": self.accepted, "requested": requested.cloned().unwrap_or(Value::Null)},
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_without_the_header_must_be_an_initialize_of_a_listed_revision() {
        let v = only(&["2025-11-25"]);
        let facts = |body: &str| RequestFacts::inspect(body.as_bytes()).unwrap().1;
        let init = |ver: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{ver}"}}}}"#
            )
        };
        let ok = init("2025-11-25");
        assert!(v
            .check_body(false, &facts(&ok), None, ok.as_bytes())
            .is_ok());
        let old = init("2024-11-05");
        assert!(v
            .check_body(false, &facts(&old), None, old.as_bytes())
            .is_err());
        assert!(v
            .check_body(true, &facts(&old), None, old.as_bytes())
            .is_err());
        let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}"#;
        // no header: 2025-03-26 assumed, not listed here
        assert!(v
            .check_body(false, &facts(call), None, call.as_bytes())
            .is_err());
        assert!(v
            .check_body(true, &facts(call), None, call.as_bytes())
            .is_ok());
    }

    fn only(v: &[&str]) -> ProtocolVersions {
        ProtocolVersions::new(v.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn default_is_every_revision_the_sdk_speaks() {
        let d = ProtocolVersions::default();
        for v in DEFAULT_PROTOCOL_VERSIONS {
            assert!(d.accepts(v));
            assert!(d.check_header(Some(v), false).is_ok());
        }
        assert!(d.check_header(None, false).is_ok(), "2025-03-26 assumed");
        assert!(!d.accepts("2024-10-07"));
    }

    #[test]
    fn listed_header_passes_unlisted_gets_400_and_the_2026_error() {
        let v = only(&["2025-11-25", "2026-07-28"]);
        assert!(v.check_header(Some("2025-11-25"), false).is_ok());
        assert!(v.check_header(Some(" 2026-07-28 "), false).is_ok());
        let r = v.check_header(Some("2025-06-18"), false).unwrap_err();
        assert_eq!(r.http_status, 400);
        assert_eq!(r.error["code"], UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(r.error["data"]["requested"], "2025-06-18");
        assert_eq!(
            r.error["data"]["supported"],
            json!(["2025-11-25", "2026-07-28"])
        );
        assert!(
            v.check_header(Some("garbage"), true).is_err(),
            "a header is judged even on initialize"
        );
    }

    #[test]
    fn absent_header_means_2025_03_26_except_for_initialize() {
        let v = only(&["2025-11-25"]);
        let r = v.check_header(None, false).unwrap_err();
        assert_eq!(r.error["data"]["requested"], ASSUMED_WITHOUT_HEADER);
        assert!(v.check_header(None, true).is_ok());
        assert!(only(&["2025-03-26"]).check_header(None, false).is_ok());
    }

    #[test]
    fn initialize_asking_an_unlisted_version_gets_invalid_params() {
        let v = only(&["2025-06-18", "2025-11-25"]);
        assert!(v
            .check_initialize(Some(
                &json!({"protocolVersion": "2025-11-25", "capabilities": {}})
            ))
            .is_ok());
        for params in [
            Some(json!({"protocolVersion": "2024-11-05"})),
            Some(json!({"protocolVersion": 20251125})),
            Some(json!({})),
            None,
        ] {
            let r = v.check_initialize(params.as_ref()).unwrap_err();
            assert_eq!(
                r.http_status, 200,
                "handshake clients read errors from a 200"
            );
            assert_eq!(r.error["code"], INVALID_PARAMS);
            assert_eq!(r.error["message"], "Unsupported protocol version");
            assert_eq!(
                r.error["data"]["supported"],
                json!(["2025-06-18", "2025-11-25"])
            );
        }
    }

    #[test]
    fn configuration_is_checked() {
        assert_eq!(ProtocolVersions::new(vec![]).unwrap_err().0, None);
        assert_eq!(
            ProtocolVersions::new(vec!["2025-11-25".into(), "2025-6-18".into()])
                .unwrap_err()
                .0,
            Some(1)
        );
        assert!(ProtocolVersions::new(vec!["latest".into()]).is_err());
        assert!(ProtocolVersions::new(vec!["2099-01-01".into()]).is_ok());
    }
}
