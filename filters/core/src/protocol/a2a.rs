//! Every A2A binding and version, mapped onto one set of operations.
//!
//! A2A renamed its JSON-RPC methods twice (0.1/0.2 `tasks/send`, 0.3
//! `message/send`, 1.0 `SendMessage`) and 1.0 added an HTTP+JSON (REST)
//! binding whose operation is named by HTTP method and path
//! (`POST /message:send`, `GET /tasks/{id}`, ...; 0.3's REST binding put
//! the same routes under `/v1`). A policy written once must cover all of
//! them, or the binding it forgot is a way around it: a limit on sends that
//! a REST `message:send` does not count is no limit. So both tables below
//! map onto [`Operation`], and every filter asks them, never its own list.
//!
//! REST routes are recognised under the gateway's A2A prefix ([`A2A_PREFIX`],
//! optionally followed by `/rest`, where the example agent serves the
//! binding), with or without `/v1` and an optional `{tenant}` segment, as
//! the a2a-sdk's REST server accepts them. The path is percent-decoded
//! first: the agent's router decodes `message%3Asend` into `message:send`,
//! so the gateway must too, or an encoded colon would pass uncounted.

use crate::protocol::operation::Operation;

/// Where the gateway exposes A2A (JSON-RPC at the prefix itself, the
/// recipe's `/a2a/tasks/*` paths and the REST binding below it).
pub const A2A_PREFIX: &str = "/a2a";

/// The protocol version whose vocabulary a method name or route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum A2aVersion {
    /// 0.1 and 0.2 (`tasks/send`, `tasks/sendSubscribe`, ...).
    V0_2,
    /// 0.3 (`message/send`, `message/stream`, REST under `/v1`).
    V0_3,
    /// 1.0 (`SendMessage`, ..., REST without `/v1`).
    V1_0,
}

impl A2aVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            A2aVersion::V0_2 => "0.2",
            A2aVersion::V0_3 => "0.3",
            A2aVersion::V1_0 => "1.0",
        }
    }
}

/// How the request reached the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binding {
    JsonRpc,
    /// A2A's HTTP+JSON binding (its name in agent cards).
    HttpJson,
}

impl Binding {
    /// The name agent cards use (`protocolBinding`).
    pub fn as_str(self) -> &'static str {
        match self {
            Binding::JsonRpc => "JSONRPC",
            Binding::HttpJson => "HTTP+JSON",
        }
    }
}

use A2aVersion::{V0_2, V0_3, V1_0};
use Operation::{
    A2aCancelTask, A2aExtendedCard, A2aGetTask, A2aListTasks, A2aPushConfig, A2aResubscribe,
    A2aSend, A2aStream,
};

/// Every A2A JSON-RPC method name, with its operation and the version
/// that named it so. A name two versions share is listed under the older.
pub const JSONRPC_METHODS: &[(&str, Operation, A2aVersion)] = &[
    // 0.1 / 0.2
    ("tasks/send", A2aSend, V0_2),
    ("tasks/sendSubscribe", A2aStream, V0_2),
    ("tasks/get", A2aGetTask, V0_2),
    ("tasks/cancel", A2aCancelTask, V0_2),
    ("tasks/resubscribe", A2aResubscribe, V0_2),
    ("tasks/pushNotification/set", A2aPushConfig, V0_2),
    ("tasks/pushNotification/get", A2aPushConfig, V0_2),
    // 0.3
    ("message/send", A2aSend, V0_3),
    ("message/stream", A2aStream, V0_3),
    ("tasks/list", A2aListTasks, V0_3),
    ("tasks/pushNotificationConfig/set", A2aPushConfig, V0_3),
    ("tasks/pushNotificationConfig/get", A2aPushConfig, V0_3),
    ("tasks/pushNotificationConfig/list", A2aPushConfig, V0_3),
    ("tasks/pushNotificationConfig/delete", A2aPushConfig, V0_3),
    ("agent/getAuthenticatedExtendedCard", A2aExtendedCard, V0_3),
    // 1.0 (the operation names of the spec, shared by every binding)
    ("SendMessage", A2aSend, V1_0),
    ("SendStreamingMessage", A2aStream, V1_0),
    ("GetTask", A2aGetTask, V1_0),
    ("ListTasks", A2aListTasks, V1_0),
    ("CancelTask", A2aCancelTask, V1_0),
    ("SubscribeToTask", A2aResubscribe, V1_0),
    ("CreateTaskPushNotificationConfig", A2aPushConfig, V1_0),
    ("GetTaskPushNotificationConfig", A2aPushConfig, V1_0),
    ("ListTaskPushNotificationConfigs", A2aPushConfig, V1_0),
    ("DeleteTaskPushNotificationConfig", A2aPushConfig, V1_0),
    ("GetExtendedAgentCard", A2aExtendedCard, V1_0),
    // 1.0 release-candidate spellings some clients still send
    ("SetTaskPushNotificationConfig", A2aPushConfig, V1_0),
    ("ListTaskPushNotificationConfig", A2aPushConfig, V1_0),
];

/// One segment of a REST route pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    /// Literal text.
    Lit(&'static str),
    /// `{id}` of a task (may end with `:verb`, given separately).
    TaskId,
    /// `{id}:verb`: a task id and a custom method.
    TaskVerb(&'static str),
    /// `{push_id}` of a push-notification config.
    ConfigId,
}

/// A REST route: HTTP method, path pattern, the 1.0 operation name.
struct Route {
    http_method: &'static str,
    pattern: &'static [Seg],
    method: &'static str,
    operation: Operation,
}

const fn route(
    http_method: &'static str,
    pattern: &'static [Seg],
    method: &'static str,
    operation: Operation,
) -> Route {
    Route {
        http_method,
        pattern,
        method,
        operation,
    }
}

use Seg::{ConfigId, Lit, TaskId, TaskVerb};

/// The HTTP+JSON routes of A2A 1.0 (`google.api.http` annotations of
/// a2a.proto; 0.3 has the same under `/v1`, with `/v1/card` for the card).
const REST_ROUTES: &[Route] = &[
    route("POST", &[Lit("message:send")], "SendMessage", A2aSend),
    route(
        "POST",
        &[Lit("message:stream")],
        "SendStreamingMessage",
        A2aStream,
    ),
    route(
        "POST",
        &[Lit("tasks"), TaskVerb("cancel")],
        "CancelTask",
        A2aCancelTask,
    ),
    route(
        "GET",
        &[Lit("tasks"), TaskVerb("subscribe")],
        "SubscribeToTask",
        A2aResubscribe,
    ),
    route(
        "POST",
        &[Lit("tasks"), TaskVerb("subscribe")],
        "SubscribeToTask",
        A2aResubscribe,
    ),
    route("GET", &[Lit("tasks"), TaskId], "GetTask", A2aGetTask),
    route("GET", &[Lit("tasks")], "ListTasks", A2aListTasks),
    route(
        "POST",
        &[Lit("tasks"), TaskId, Lit("pushNotificationConfigs")],
        "CreateTaskPushNotificationConfig",
        A2aPushConfig,
    ),
    route(
        "GET",
        &[Lit("tasks"), TaskId, Lit("pushNotificationConfigs")],
        "ListTaskPushNotificationConfigs",
        A2aPushConfig,
    ),
    route(
        "GET",
        &[
            Lit("tasks"),
            TaskId,
            Lit("pushNotificationConfigs"),
            ConfigId,
        ],
        "GetTaskPushNotificationConfig",
        A2aPushConfig,
    ),
    route(
        "DELETE",
        &[
            Lit("tasks"),
            TaskId,
            Lit("pushNotificationConfigs"),
            ConfigId,
        ],
        "DeleteTaskPushNotificationConfig",
        A2aPushConfig,
    ),
    route(
        "GET",
        &[Lit("extendedAgentCard")],
        "GetExtendedAgentCard",
        A2aExtendedCard,
    ),
    // 0.3 only (under /v1): the authenticated extended card.
    route(
        "GET",
        &[Lit("card")],
        "GetExtendedAgentCard",
        A2aExtendedCard,
    ),
];

/// The operation family and version of an A2A JSON-RPC method name.
pub fn jsonrpc_method(name: &str) -> Option<(Operation, A2aVersion)> {
    JSONRPC_METHODS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, op, v)| (*op, *v))
}

/// A request of the HTTP+JSON binding, as its method and path name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCall {
    pub operation: Operation,
    /// The 1.0 operation name (`SendMessage`, `GetTask`, ...): what the
    /// same request is called on the JSON-RPC binding.
    pub method: &'static str,
    /// 0.3 under `/v1`, else 1.0.
    pub version: A2aVersion,
    /// `{id}` of `/tasks/{id}...`.
    pub task_id: Option<String>,
    /// `{push_id}` of `/tasks/{id}/pushNotificationConfigs/{push_id}`.
    pub config_id: Option<String>,
    pub tenant: Option<String>,
}

/// The REST call a request names, if it is one: `http_method` and the
/// request's `:path` (query and fragment ignored).
pub fn rest_call(http_method: &str, path: &str) -> Option<RestCall> {
    let path = super::http::path_only(path);
    let decoded = super::percent_decode(path);
    let rest = decoded.strip_prefix(A2A_PREFIX)?;
    if !rest.starts_with('/') {
        return None;
    }
    let rest = rest.trim_end_matches('/');
    let rest = strip_segment(rest, "rest").unwrap_or(rest);
    let (version, rest) = match strip_segment(rest, "v1") {
        Some(r) => (V0_3, r),
        None => (V1_0, rest),
    };
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    let method = http_method.to_ascii_uppercase();
    if let Some(call) = match_routes(&method, &segments, version, None) {
        return Some(call);
    }
    // `/{tenant}/message:send`: one leading segment names a tenant.
    let (tenant, tail) = segments.split_first()?;
    match_routes(&method, tail, version, Some(tenant))
}

/// Whether a request body at `path` must be strict JSON-RPC: the MCP
/// endpoints and the A2A JSON-RPC ones (the prefix and the recipe's paths
/// below it). A body there that we cannot read strictly could hide a
/// counted or denied operation. Elsewhere (the REST binding under
/// `/a2a/rest`, any other upstream) a body that is not JSON-RPC is none of
/// our business and passes untouched.
pub fn jsonrpc_only(path: &str) -> bool {
    let path = super::http::path_only(path);
    let decoded = super::percent_decode(path);
    let under = |prefix: &str| {
        decoded
            .strip_prefix(prefix)
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    };
    under("/mcp") || (under(A2A_PREFIX) && !under(REST_BASE))
}

/// Where the gateway serves the REST binding (the agent card's
/// `HTTP+JSON` interface URL).
pub const REST_BASE: &str = "/a2a/rest";

/// `rest` without a leading `/<segment>` (only a whole segment).
fn strip_segment<'a>(rest: &'a str, segment: &str) -> Option<&'a str> {
    rest.strip_prefix('/')?
        .strip_prefix(segment)
        .filter(|r| r.is_empty() || r.starts_with('/'))
}

fn match_routes(
    method: &str,
    segments: &[&str],
    version: A2aVersion,
    tenant: Option<&str>,
) -> Option<RestCall> {
    REST_ROUTES.iter().find_map(|r| {
        if r.http_method != method || r.pattern.len() != segments.len() {
            return None;
        }
        // `/v1/card` is 0.3's name, `/extendedAgentCard` 1.0's.
        if r.pattern == [Lit("card")] && version != V0_3 {
            return None;
        }
        let mut task_id = None;
        let mut config_id = None;
        for (seg, text) in r.pattern.iter().zip(segments) {
            match seg {
                Lit(lit) => {
                    if lit != text {
                        return None;
                    }
                }
                TaskId => task_id = Some(id_segment(text)?),
                TaskVerb(verb) => {
                    let (id, v) = text.rsplit_once(':')?;
                    if v != *verb {
                        return None;
                    }
                    task_id = Some(id_segment(id)?);
                }
                ConfigId => config_id = Some(id_segment(text)?),
            }
        }
        Some(RestCall {
            operation: r.operation,
            method: r.method,
            version,
            task_id,
            config_id,
            tenant: tenant.map(str::to_string),
        })
    })
}

/// A path parameter: non-empty; `GET /tasks/x:subscribe` is the
/// subscribe route, never a task whose id has a colon.
fn id_segment(text: &str) -> Option<String> {
    (!text.is_empty() && !text.contains(':')).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, path: &str) -> Option<(Operation, &'static str, Option<String>)> {
        rest_call(method, path).map(|c| (c.operation, c.method, c.task_id))
    }

    #[test]
    fn every_rest_route_maps_to_its_operation() {
        let t = Some("t-1".to_string());
        for base in [
            "/a2a",
            "/a2a/rest",
            "/a2a/v1",
            "/a2a/rest/v1",
            "/a2a/rest/acme",
        ] {
            let at = |p: &str| format!("{base}{p}");
            assert_eq!(
                call("POST", &at("/message:send")),
                Some((A2aSend, "SendMessage", None)),
                "{base}"
            );
            assert_eq!(
                call("POST", &at("/message:stream")),
                Some((A2aStream, "SendStreamingMessage", None))
            );
            assert_eq!(
                call("GET", &at("/tasks/t-1")),
                Some((A2aGetTask, "GetTask", t.clone()))
            );
            assert_eq!(
                call("GET", &at("/tasks?contextId=c")),
                Some((A2aListTasks, "ListTasks", None))
            );
            assert_eq!(
                call("POST", &at("/tasks/t-1:cancel")),
                Some((A2aCancelTask, "CancelTask", t.clone()))
            );
            for m in ["GET", "POST"] {
                assert_eq!(
                    call(m, &at("/tasks/t-1:subscribe")),
                    Some((A2aResubscribe, "SubscribeToTask", t.clone()))
                );
            }
            for (m, p, name) in [
                (
                    "POST",
                    "/tasks/t-1/pushNotificationConfigs",
                    "CreateTaskPushNotificationConfig",
                ),
                (
                    "GET",
                    "/tasks/t-1/pushNotificationConfigs",
                    "ListTaskPushNotificationConfigs",
                ),
                (
                    "GET",
                    "/tasks/t-1/pushNotificationConfigs/c-9",
                    "GetTaskPushNotificationConfig",
                ),
                (
                    "DELETE",
                    "/tasks/t-1/pushNotificationConfigs/c-9",
                    "DeleteTaskPushNotificationConfig",
                ),
            ] {
                assert_eq!(
                    call(m, &at(p)),
                    Some((A2aPushConfig, name, t.clone())),
                    "{m} {p}"
                );
            }
            assert_eq!(
                call("GET", &at("/extendedAgentCard")),
                Some((A2aExtendedCard, "GetExtendedAgentCard", None))
            );
        }
        assert_eq!(
            rest_call("GET", "/a2a/rest/v1/card").map(|c| (c.operation, c.version)),
            Some((A2aExtendedCard, V0_3))
        );
        assert_eq!(rest_call("GET", "/a2a/rest/card"), None);
        let push = rest_call("DELETE", "/a2a/tasks/t/pushNotificationConfigs/c").unwrap();
        assert_eq!(push.config_id.as_deref(), Some("c"));
        assert_eq!(push.version, V1_0);
        let tenant = rest_call("POST", "/a2a/acme/message:send").unwrap();
        assert_eq!(tenant.tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn only_the_routes_themselves_match() {
        // Wrong HTTP method, unknown verb, other prefixes, MCP.
        assert_eq!(call("GET", "/a2a/rest/message:send"), None);
        assert_eq!(call("POST", "/a2a/rest/tasks/t:delete"), None);
        assert_eq!(call("POST", "/a2a/rest/tasks/t"), None);
        assert_eq!(call("POST", "/mcp/message:send"), None);
        assert_eq!(call("POST", "/message:send"), None);
        assert_eq!(call("POST", "/a2amessage:send"), None);
        assert_eq!(
            call("GET", "/a2a/rest/tasks/"),
            call("GET", "/a2a/rest/tasks")
        );
        assert_eq!(call("POST", "/a2a/rest/tasks/:cancel"), None);
        // The recipe's JSON-RPC paths are POSTs no REST route takes.
        for p in [
            "/a2a/tasks/send",
            "/a2a/tasks/sendSubscribe",
            "/a2a/tasks/get",
            "/a2a/tasks/cancel",
        ] {
            assert_eq!(call("POST", p), None, "{p}");
        }
        assert_eq!(call("POST", "/a2a"), None);
    }

    #[test]
    fn encoded_paths_are_decoded_as_the_agent_decodes_them() {
        assert_eq!(
            call("POST", "/a2a/rest/message%3Asend").map(|c| c.0),
            Some(A2aSend)
        );
        assert_eq!(
            call("post", "/a2a/rest/message%3asend").map(|c| c.0),
            Some(A2aSend)
        );
        assert_eq!(
            call("GET", "/a2a/rest/tasks/a%2Fb").map(|c| c.0),
            None,
            "an encoded slash is a segment boundary to the agent's router too"
        );
        assert_eq!(call("POST", "/a2a/rest/message%3send"), None);
    }

    #[test]
    fn only_mcp_and_a2a_jsonrpc_paths_are_strict() {
        for p in [
            "/mcp",
            "/mcp/tools/call",
            "/a2a",
            "/a2a/tasks/send?x",
            "/%6Dcp",
            "/a2a/other",
        ] {
            assert!(jsonrpc_only(p), "{p}");
        }
        for p in [
            "/a2a/rest/message:send",
            "/a2a/rest",
            "/",
            "/other",
            "/mcpx",
            "/a2ax/y",
        ] {
            assert!(!jsonrpc_only(p), "{p}");
        }
    }

    #[test]
    fn jsonrpc_names_of_every_version() {
        assert_eq!(jsonrpc_method("tasks/send"), Some((A2aSend, V0_2)));
        assert_eq!(jsonrpc_method("message/send"), Some((A2aSend, V0_3)));
        assert_eq!(jsonrpc_method("SendMessage"), Some((A2aSend, V1_0)));
        assert_eq!(
            jsonrpc_method("SubscribeToTask"),
            Some((A2aResubscribe, V1_0))
        );
        assert_eq!(jsonrpc_method("tools/call"), None);
        // Every 1.0 REST operation name is a JSON-RPC name too: the two
        // bindings name one operation alike.
        for r in REST_ROUTES {
            assert_eq!(
                jsonrpc_method(r.method).map(|(op, _)| op),
                Some(r.operation),
                "{}",
                r.method
            );
        }
    }
}
