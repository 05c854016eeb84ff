//! Configuration of the audit filter: the recipe's `logDestination` /
//! `captureFields` / `eventFormat` block, loaded as written.
//!
//! The same `.wasm` runs twice (see `docs/audit.md`): as the HTTP filter,
//! which builds one event per request, and as a singleton `WasmService`
//! (`role: sender`) that batches and POSTs them. Both load this type; the
//! sender only uses [`Destination`].
//!
//! Everything that can be wrong is rejected here, at load time: JSONPaths
//! outside the supported subset, captures of credential headers, captures
//! that would overwrite the event's own fields, a batch larger than the
//! buffer, a URL that is not `http(s)://host/path`.

use crate::config::ConfigError;
use crate::json_path::JsonPath;
use crate::protocol::http::is_header_name;
use crate::protocol::identity::VERIFIED_HEADER_PREFIX;
use crate::protocol::operation::Operation;
use crate::upstream::Upstream;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// Which half of the audit module this plugin configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// The HTTP filter: builds and enqueues events.
    #[default]
    Filter,
    /// The singleton `bootstrap_extensions` service: batches and delivers.
    Sender,
}

/// Every key is optional: the defaults are the `Default` impls below.
#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfigSpec {
    pub role: Role,
    pub log_destination: LogDestinationSpec,
    pub capture_fields: CaptureFieldsSpec,
    pub event_format: EventFormatSpec,
    /// Request bodies up to this size are parsed (JSON-RPC method, id,
    /// captures); larger ones pass unparsed and the event says so.
    pub max_request_body_bytes: usize,
    /// A JSON response body is copied (never held) up to this size for
    /// response captures; one SSE event is parsed up to this size.
    pub max_response_body_bytes: usize,
    /// Longest captured string value; longer ones are cut (end in `…`,
    /// named in the event's `truncated` list).
    pub max_capture_chars: usize,
    /// Largest event (bytes of JSON); beyond it the optional parts are
    /// dropped (see `audit::bounds`).
    pub max_event_bytes: usize,
}

impl Default for AuditConfigSpec {
    fn default() -> Self {
        Self {
            role: Role::default(),
            log_destination: LogDestinationSpec::default(),
            capture_fields: CaptureFieldsSpec::default(),
            event_format: EventFormatSpec::default(),
            // Half of Envoy's default `per_connection_buffer_limit_bytes`
            // (1 MiB): buffering up to this plus one read never makes Envoy
            // answer 413.
            max_request_body_bytes: 512 << 10,
            // Our own copy, not Envoy's buffer: only memory per request.
            max_response_body_bytes: 1 << 20,
            max_capture_chars: 256,
            // Room for the fixed part (at most `bounds::CORE_EVENT_BYTES`)
            // and the recipe's captures at full length, well under any
            // collector's limits.
            max_event_bytes: 16 << 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum DestinationType {
    /// The recipe's HTTP JSON batch: `{"events":[...]}`.
    #[default]
    Http,
    /// OpenTelemetry OTLP/HTTP JSON logs (`/v1/logs`).
    Otlp,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct LogDestinationSpec {
    #[serde(rename = "type")]
    pub kind: DestinationType,
    /// Where events go. Its host becomes the `:authority` of the POST and
    /// its path the `:path`; the connection goes to the Envoy `cluster`.
    pub url: String,
    /// The Envoy cluster that reaches `url` (TLS is the cluster's business).
    pub cluster: String,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    /// Deadline of one POST; a timeout is a failed batch (retried).
    pub timeout_ms: u64,
    /// Events held by the sender (waiting or in flight). When full, new
    /// events are dropped and counted.
    pub max_buffered_events: usize,
    pub retry: RetrySpec,
    /// Extra headers on every POST (e.g. a collector token).
    pub headers: BTreeMap<String, String>,
    /// OTLP `service.name` resource attribute.
    pub service_name: String,
}

impl Default for LogDestinationSpec {
    fn default() -> Self {
        Self {
            kind: DestinationType::default(),
            url: "http://audit-collector/v1/agent-events".into(),
            cluster: "audit_collector".into(),
            batch_size: 50,
            flush_interval_ms: 5000,
            timeout_ms: 5000,
            max_buffered_events: 10_000,
            retry: RetrySpec::default(),
            headers: BTreeMap::new(),
            service_name: "mcp-a2a-gateway".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RetrySpec {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CaptureFieldsSpec {
    pub request: Vec<CaptureSpec>,
    pub response: Vec<CaptureSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaptureSpec {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub json_path: Option<String>,
    #[serde(rename = "as")]
    pub name: String,
    #[serde(default)]
    pub on_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct EventFormatSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub include_timestamp: bool,
    pub include_correlation_id: bool,
    pub include_duration: bool,
    pub include_request_path: bool,
}

impl Default for EventFormatSpec {
    fn default() -> Self {
        Self {
            kind: "structured-json".into(),
            include_timestamp: true,
            include_correlation_id: true,
            include_duration: true,
            include_request_path: true,
        }
    }
}

// ------------------------------------------------------------------ runtime

#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    pub role: Role,
    pub destination: Destination,
    pub request_captures: Vec<Capture>,
    pub response_captures: Vec<Capture>,
    pub format: EventFormat,
    pub max_request_body_bytes: usize,
    pub max_response_body_bytes: usize,
    pub max_capture_chars: usize,
    pub max_event_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFormat {
    pub include_timestamp: bool,
    pub include_correlation_id: bool,
    pub include_duration: bool,
    pub include_request_path: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub kind: DestinationType,
    /// The `cluster`; the URL's host[:port] as `:authority` and its path and
    /// query as `:path` (its scheme is the cluster's business: TLS); the
    /// deadline of one POST.
    pub upstream: Upstream,
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub max_buffered_events: usize,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub headers: Vec<(String, String)>,
    pub service_name: String,
}

/// The three `X-Verified-Agent-*` headers the identity filter sets. Audit
/// runs before identity, so a `header:` capture of these reads the verified
/// identity (filter state), never what the client sent.
pub use crate::protocol::identity::IdentityField;

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    VerifiedIdentity(IdentityField),
    /// A header (lowercase name): request headers for request captures,
    /// response headers for response captures.
    Header(String),
    /// The first path that yields a scalar wins: the configured one, then
    /// aliases for other protocol versions (see [`json_path_aliases`]).
    /// `part_kind_fallback`: the recipe's `$.params.message.parts[0].kind`,
    /// which A2A 1.0 parts lack; the kind then comes from the request facts
    /// (`text`, `raw`, `url`, `data`: the member present).
    JsonPath {
        paths: Vec<JsonPath>,
        part_kind_fallback: bool,
    },
}

/// Where a capture applies: the request's `:path`, or (for the recipe's
/// per-operation paths) any message of that operation family, whatever
/// path it was POSTed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnPath {
    pub path: String,
    pub operation: Option<Operation>,
}

impl OnPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("onPath `{text}` must start with `/`"));
        }
        Ok(Self {
            path: normalize_path(text).to_string(),
            operation: Operation::from_recipe_path(text),
        })
    }

    pub fn matches(&self, request_path: &str, operation: Option<Operation>) -> bool {
        normalize_path(request_path) == self.path
            || (self.operation.is_some() && self.operation == operation)
    }
}

/// `:path` without query or fragment and without a trailing `/`.
pub fn normalize_path(path: &str) -> &str {
    let path = crate::protocol::http::path_only(path);
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() && path.starts_with('/') {
        "/"
    } else {
        trimmed
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub name: String,
    pub source: Source,
    pub on: Option<OnPath>,
}

impl Capture {
    pub fn applies(&self, request_path: &str, operation: Option<Operation>) -> bool {
        match &self.on {
            None => true,
            Some(on) => on.matches(request_path, operation),
        }
    }
}

/// Names the event itself uses; a capture may not overwrite them.
pub const RESERVED_EVENT_FIELDS: &[&str] = &[
    "eventId",
    "timestamp",
    "correlationId",
    "durationMs",
    "path",
    "httpMethod",
    "status",
    "decision",
    "detail",
    "jsonrpcMethod",
    "jsonrpcId",
    "batchSize",
    "agent",
    "requestBody",
    "truncated",
];

/// Headers that carry credentials: capturing them would write secrets into
/// the audit trail.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-agent-api-key",
    "x-api-key",
];

/// Other places the recipe's JSONPaths live in other protocol versions:
/// A2A 1.0 wraps the task (`result.task.status.state`) and stream updates
/// (`result.statusUpdate.status.state`); A2A 0.1/0.2 name the part kind `type`.
pub fn json_path_aliases(path: &JsonPath) -> Vec<JsonPath> {
    let text = path.to_string();
    let aliases: &[&str] = match text.as_str() {
        "$['result']['status']['state']" => &[
            "$.result.task.status.state",
            "$.result.statusUpdate.status.state",
        ],
        "$['params']['message']['parts'][0]['kind']" => &["$.params.message.parts[0].type"],
        _ => &[],
    };
    aliases
        .iter()
        .filter_map(|a| JsonPath::parse(a).ok())
        .collect()
}

impl TryFrom<AuditConfigSpec> for AuditConfig {
    type Error = ConfigError;

    fn try_from(spec: AuditConfigSpec) -> Result<Self, ConfigError> {
        let destination =
            Destination::try_from(spec.log_destination).map_err(|e| e.within("logDestination"))?;
        if spec.event_format.kind != "structured-json" {
            return Err(ConfigError::at(
                "eventFormat.type",
                format!(
                    "unsupported event format `{}` (supported: structured-json; use logDestination.type: otlp for OpenTelemetry)",
                    spec.event_format.kind
                ),
            ));
        }
        if spec.max_request_body_bytes == 0 {
            return Err(ConfigError::at("maxRequestBodyBytes", "must be at least 1"));
        }
        if spec.max_response_body_bytes == 0 {
            return Err(ConfigError::at(
                "maxResponseBodyBytes",
                "must be at least 1",
            ));
        }
        if spec.max_capture_chars == 0 {
            return Err(ConfigError::at("maxCaptureChars", "must be at least 1"));
        }
        let event_range =
            crate::audit::bounds::MIN_EVENT_BYTES..=crate::audit::bounds::MAX_EVENT_BYTES;
        if !event_range.contains(&spec.max_event_bytes) {
            return Err(ConfigError::at(
                "maxEventBytes",
                format!(
                    "must be between {} and {} (the fixed part of an event needs up to {} bytes)",
                    event_range.start(),
                    event_range.end(),
                    crate::audit::bounds::CORE_EVENT_BYTES
                ),
            ));
        }
        let mut request_names = BTreeSet::new();
        let request_captures = captures(spec.capture_fields.request, &mut request_names, true)
            .map_err(|e| e.within("captureFields.request"))?;
        let mut response_names = BTreeSet::new();
        let response_captures = captures(spec.capture_fields.response, &mut response_names, false)
            .map_err(|e| e.within("captureFields.response"))?;
        if let Some((i, c)) = response_captures
            .iter()
            .enumerate()
            .find(|(_, c)| request_names.contains(&c.name))
        {
            return Err(ConfigError::at(
                format!("captureFields.response[{i}].as"),
                format!("`{}` is already a request capture", c.name),
            ));
        }
        // Dropped captures are named in the event's `truncated` list: the
        // names must fit next to the fixed part for the bound to hold.
        let names: usize = request_captures
            .iter()
            .chain(&response_captures)
            .map(|c| c.name.len() + 3)
            .sum();
        if crate::audit::bounds::CORE_EVENT_BYTES + names > spec.max_event_bytes {
            return Err(ConfigError::at(
                "maxEventBytes",
                format!(
                    "{} is too small for the fixed part of an event and the names of {} captures",
                    spec.max_event_bytes,
                    request_captures.len() + response_captures.len()
                ),
            ));
        }
        let f = spec.event_format;
        Ok(AuditConfig {
            role: spec.role,
            destination,
            request_captures,
            response_captures,
            format: EventFormat {
                include_timestamp: f.include_timestamp,
                include_correlation_id: f.include_correlation_id,
                include_duration: f.include_duration,
                include_request_path: f.include_request_path,
            },
            max_request_body_bytes: spec.max_request_body_bytes,
            max_response_body_bytes: spec.max_response_body_bytes,
            max_capture_chars: spec.max_capture_chars,
            max_event_bytes: spec.max_event_bytes,
        })
    }
}

fn captures(
    specs: Vec<CaptureSpec>,
    names: &mut BTreeSet<String>,
    request: bool,
) -> Result<Vec<Capture>, ConfigError> {
    specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| capture(spec, names, request).map_err(|e| e.within(&format!("[{i}]"))))
        .collect()
}

fn capture(
    spec: CaptureSpec,
    names: &mut BTreeSet<String>,
    request: bool,
) -> Result<Capture, ConfigError> {
    let name = spec.name;
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(ConfigError::at(
            "as",
            format!("`{name}` is not a field name (1-64 of A-Z a-z 0-9 _ - .)"),
        ));
    }
    if RESERVED_EVENT_FIELDS.contains(&name.as_str()) {
        return Err(ConfigError::at(
            "as",
            format!("`{name}` is a field of the event itself; choose another name"),
        ));
    }
    // The same name may come from several captures (e.g. `taskState` from
    // `/a2a/tasks/send` and from `/a2a/tasks/sendSubscribe`), but only
    // within one side: a response capture must not silently replace a
    // request capture of the same name.
    names.insert(name.clone());
    let source = match (spec.header, spec.json_path) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ConfigError::at(
                "",
                "a capture needs exactly one of `header` or `jsonPath`",
            ))
        }
        (Some(header), None) => header_source(&header, request)?,
        (None, Some(path)) => {
            let parsed = JsonPath::parse(&path).map_err(|m| ConfigError::at("jsonPath", m))?;
            let part_kind_fallback =
                request && parsed.to_string() == "$['params']['message']['parts'][0]['kind']";
            let mut paths = json_path_aliases(&parsed);
            paths.insert(0, parsed);
            Source::JsonPath {
                paths,
                part_kind_fallback,
            }
        }
    };
    let on = spec
        .on_path
        .map(|p| OnPath::parse(&p))
        .transpose()
        .map_err(|m| ConfigError::at("onPath", m))?;
    Ok(Capture { name, source, on })
}

fn header_source(header: &str, request: bool) -> Result<Source, ConfigError> {
    let lower = header.to_ascii_lowercase();
    if !is_header_name(&lower, true) {
        return Err(ConfigError::at(
            "header",
            format!("`{header}` is not a header name"),
        ));
    }
    if SECRET_HEADERS.contains(&lower.as_str()) {
        return Err(ConfigError::at(
            "header",
            format!("`{header}` carries credentials and must not be written to the audit trail"),
        ));
    }
    if request {
        let field = match IdentityField::of_header(&lower) {
            Some(field) => Some(field),
            None if lower.starts_with(VERIFIED_HEADER_PREFIX) => {
                return Err(ConfigError::at(
                    "header",
                    format!("`{header}` is not set by the identity filter (it sets x-verified-agent-id, -name and -owner); a client could forge it"),
                ))
            }
            _ => None,
        };
        if let Some(field) = field {
            return Ok(Source::VerifiedIdentity(field));
        }
    }
    Ok(Source::Header(lower))
}

impl TryFrom<LogDestinationSpec> for Destination {
    type Error = ConfigError;

    fn try_from(spec: LogDestinationSpec) -> Result<Self, ConfigError> {
        if spec.cluster.trim().is_empty() {
            return Err(ConfigError::at("cluster", "must name an Envoy cluster"));
        }
        let upstream = Upstream::from_url(&spec.url, Some(&spec.cluster), spec.timeout_ms)
            .map_err(|m| ConfigError::at("url", m))?;
        if !(1..=10_000).contains(&spec.batch_size) {
            return Err(ConfigError::at("batchSize", "must be between 1 and 10000"));
        }
        if !(10..=3_600_000).contains(&spec.flush_interval_ms) {
            return Err(ConfigError::at(
                "flushIntervalMs",
                "must be between 10 and 3600000",
            ));
        }
        if !(1..=300_000).contains(&spec.timeout_ms) {
            return Err(ConfigError::at("timeoutMs", "must be between 1 and 300000"));
        }
        if spec.max_buffered_events < spec.batch_size {
            return Err(ConfigError::at(
                "maxBufferedEvents",
                format!(
                    "must be at least batchSize ({}), or no full batch could ever be sent",
                    spec.batch_size
                ),
            ));
        }
        if spec.retry.initial_backoff_ms == 0 {
            return Err(ConfigError::at(
                "retry.initialBackoffMs",
                "must be at least 1",
            ));
        }
        if spec.retry.max_backoff_ms < spec.retry.initial_backoff_ms {
            return Err(ConfigError::at(
                "retry.maxBackoffMs",
                "must be at least retry.initialBackoffMs",
            ));
        }
        for name in spec.headers.keys() {
            let lower = name.to_ascii_lowercase();
            if !is_header_name(&lower, true) {
                return Err(ConfigError::at(
                    format!("headers.{name}"),
                    "is not a valid HTTP header name",
                ));
            }
            if lower.starts_with(':')
                || ["content-type", "content-length", "host"].contains(&lower.as_str())
            {
                return Err(ConfigError::at(
                    format!("headers.{name}"),
                    "is set by the sender itself",
                ));
            }
        }
        Ok(Destination {
            kind: spec.kind,
            upstream,
            batch_size: spec.batch_size,
            flush_interval_ms: spec.flush_interval_ms,
            max_buffered_events: spec.max_buffered_events,
            initial_backoff_ms: spec.retry.initial_backoff_ms,
            max_backoff_ms: spec.retry.max_backoff_ms,
            headers: spec
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            service_name: spec.service_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;

    /// The recipe's `policies/agent-audit-log.yaml` `config:` block, verbatim.
    pub const RECIPE: &str = include_str!("../../../../examples/recipe/agent-audit-log.yaml");

    fn load_str(text: &str) -> Result<AuditConfig, ConfigError> {
        load::<AuditConfigSpec, AuditConfig>(text.as_bytes())
    }

    #[test]
    fn recipe_block_loads_as_written() {
        let c = load_str(RECIPE).unwrap();
        assert_eq!(c.role, Role::Filter);
        let d = &c.destination;
        assert_eq!(d.kind, DestinationType::Http);
        assert_eq!(d.upstream.authority, "audit.internal.example.com");
        assert_eq!(d.upstream.path, "/v1/agent-events");
        assert_eq!(d.upstream.cluster, "audit_collector");
        assert_eq!((d.batch_size, d.flush_interval_ms), (50, 5000));
        assert_eq!(c.request_captures.len(), 6);
        assert_eq!(
            c.request_captures[0].source,
            Source::VerifiedIdentity(IdentityField::AgentId)
        );
        assert_eq!(
            c.request_captures[2].source,
            Source::VerifiedIdentity(IdentityField::AgentOwner)
        );
        let tool = &c.request_captures[4];
        assert_eq!(tool.name, "toolName");
        assert_eq!(
            tool.on.as_ref().unwrap().operation,
            Some(Operation::McpToolsCall)
        );
        let Source::JsonPath { paths, .. } = &c.response_captures[1].source else {
            panic!()
        };
        assert_eq!(paths.len(), 3, "taskState has A2A 1.0 aliases");
        assert!(matches!(
            c.request_captures[5].source,
            Source::JsonPath {
                part_kind_fallback: true,
                ..
            }
        ));
    }

    #[test]
    fn empty_config_has_working_defaults() {
        let c = load_str("").unwrap();
        assert_eq!(c.destination.batch_size, 50);
        assert_eq!(c.destination.max_buffered_events, 10_000);
        assert!(c.request_captures.is_empty());
        assert!(c.format.include_timestamp);
    }

    #[test]
    fn sender_role_and_otlp() {
        let c = load_str(
            "role: sender\nlogDestination:\n  type: otlp\n  url: http://otel:4318/v1/logs\n  cluster: otel\n  headers: {Authorization: Bearer x}\n",
        )
        .unwrap();
        assert_eq!(c.role, Role::Sender);
        assert_eq!(c.destination.kind, DestinationType::Otlp);
        assert_eq!(c.destination.upstream.authority, "otel:4318");
        assert_eq!(
            c.destination.headers,
            vec![("authorization".to_string(), "Bearer x".to_string())]
        );
    }

    #[test]
    fn on_path_matches_by_path_and_by_method_family() {
        let on = OnPath::parse("/a2a/tasks/send").unwrap();
        assert!(on.matches("/a2a/tasks/send", None));
        assert!(on.matches("/a2a/tasks/send/?x=1", None));
        assert!(on.matches("/a2a", Some(Operation::A2aSend)));
        assert!(!on.matches("/a2a", Some(Operation::A2aStream)));
        assert!(!on.matches("/a2a", None));
        let custom = OnPath::parse("/custom").unwrap();
        assert!(custom.matches("/custom", None));
        assert!(!custom.matches("/a2a", Some(Operation::A2aSend)));
        assert!(OnPath::parse("mcp").is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "captureFields:\n  request:\n    - jsonPath: '$..name'\n      as: x\n",
                "captureFields.request[0].jsonPath",
            ),
            (
                "captureFields:\n  request:\n    - jsonPath: '$.a[*]'\n      as: x\n",
                "captureFields.request[0].jsonPath",
            ),
            (
                "captureFields:\n  request:\n    - header: authorization\n      as: x\n",
                "captureFields.request[0].header",
            ),
            (
                "captureFields:\n  request:\n    - header: x-verified-agent-role\n      as: x\n",
                "captureFields.request[0].header",
            ),
            (
                "captureFields:\n  response:\n    - jsonPath: '$.a'\n      as: status\n",
                "captureFields.response[0].as",
            ),
            (
                "captureFields:\n  request:\n    - jsonPath: '$.a'\n      as: x\n  response:\n    - jsonPath: '$.b'\n      as: x\n",
                "captureFields.response[0].as",
            ),
            (
                "captureFields:\n  request:\n    - jsonPath: '$.a'\n      header: b\n      as: x\n",
                "captureFields.request[0]",
            ),
            (
                "captureFields:\n  request:\n    - jsonPath: '$.a'\n      as: x\n      onPath: mcp\n",
                "captureFields.request[0].onPath",
            ),
            (
                "captureFields:\n  request:\n    - jsonPath: '$.a'\n      as: x\n      onpath: /mcp\n",
                "captureFields.request[0].onpath",
            ),
            ("logDestination:\n  url: ftp://x/y\n", "logDestination.url"),
            ("logDestination:\n  url: audit/x\n", "logDestination.url"),
            ("logDestination:\n  batchSize: 0\n", "logDestination.batchSize"),
            (
                "logDestination:\n  batchSize: 100\n  maxBufferedEvents: 10\n",
                "logDestination.maxBufferedEvents",
            ),
            (
                "logDestination:\n  flushIntervalMs: 1\n",
                "logDestination.flushIntervalMs",
            ),
            (
                "logDestination:\n  retry: {initialBackoffMs: 10, maxBackoffMs: 5}\n",
                "logDestination.retry.maxBackoffMs",
            ),
            (
                "logDestination:\n  headers: {Content-Type: x}\n",
                "logDestination.headers.Content-Type",
            ),
            ("eventFormat:\n  type: cef\n", "eventFormat.type"),
            ("role: both\n", "role"),
        ];
        for (text, path) in cases {
            let err = load_str(text).unwrap_err();
            assert_eq!(err.path, path, "{text} -> {err}");
        }
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_path("/mcp/"), "/mcp");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/a?b=/c"), "/a");
    }
}
