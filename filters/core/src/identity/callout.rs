//! An HTTP call the identity filter makes to check a credential, and what
//! its answer means.
//!
//! Whatever the endpoint answers is turned into one of three outcomes; the
//! third one, [`Outcome::Unavailable`], is the fail-closed path: the filter
//! answers 503 and never lets the request through.

use crate::upstream::Upstream;
use serde_json::{Map, Value};

/// Largest callout response the filter reads; anything longer is garbage.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A request for `dispatch_http_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

impl Callout {
    pub fn post(
        endpoint: &Upstream,
        content_type: &str,
        extra: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        let mut headers = vec![
            (":method".to_string(), "POST".to_string()),
            (":path".to_string(), endpoint.path.clone()),
            (":authority".to_string(), endpoint.authority.clone()),
            ("content-type".to_string(), content_type.to_string()),
            ("accept".to_string(), "application/json".to_string()),
        ];
        headers.extend(extra);
        Self {
            cluster: endpoint.cluster.clone(),
            headers,
            body,
            timeout_ms: endpoint.timeout_ms,
        }
    }
}

/// What a credential check concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The credential is valid; these are its claims.
    Valid(Map<String, Value>),
    /// The credential is not valid (why, for the client).
    Invalid(String),
    /// No answer could be trusted (why, for the client and the log).
    Unavailable(String),
}

/// A callout's response, as the host hands it over. `status` is `None` when
/// the response had no usable `:status`.
#[derive(Debug, Clone, Copy)]
pub struct CalloutResponse<'a> {
    pub status: Option<u32>,
    pub body: &'a [u8],
}

impl CalloutResponse<'_> {
    /// `:status` as the host reports it: Envoy synthesises 503 for a
    /// connection failure and 504 for a timeout.
    pub fn describe_failure(&self, what: &str) -> String {
        match self.status {
            Some(504) => format!("{what} timed out"),
            Some(503) => format!("{what} is unreachable or unavailable (503)"),
            Some(status) => format!("{what} answered HTTP {status}"),
            None => format!("{what} gave no HTTP status"),
        }
    }

    /// The body as a JSON object, or why not.
    pub fn json_object(&self, what: &str) -> Result<Map<String, Value>, String> {
        if self.body.len() > MAX_RESPONSE_BYTES {
            return Err(format!(
                "{what} answered more than {MAX_RESPONSE_BYTES} bytes"
            ));
        }
        match serde_json::from_slice::<Value>(self.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(format!("{what} answered JSON that is not an object")),
            Err(_) => Err(format!("{what} answered something that is not JSON")),
        }
    }
}

/// `exp` (seconds since the epoch) of a claims set, when it is a number.
pub fn expiry(claims: &Map<String, Value>) -> Option<u64> {
    claims.get("exp").and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
    })
}
