//! The rate-limit adapter on the in-memory host, through its public root
//! (`new_root` → `configure` → `new_filter` → the request callbacks): what
//! reaches the upstream, what the filter answers itself, the local windows
//! in shared data, and the Redis callout path (answer → admit/refuse, store
//! down → `onUnavailable`, lost script → `EVAL`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use gw_core::protocol::request_facts::VerifiedIdentity;
use gw_host::filter::{Filter, FilterRoot};
use gw_host::memory::MemoryHost;
use gw_host::port::Host;
use proxy_wasm::types::{Action, BufferType, MapType};

/// The recipe's MCP limit (60 a minute, burst 10: 70 in one window).
const LOCAL: &str = r##"
limits:
  - path: /mcp/tools/call
    keySelector: "#[attributes.headers['x-verified-agent-id']]"
    maxRequests: 60
    windowSeconds: 60
    burstAllowance: 10
"##;

/// The same limit refused as a JSON-RPC error with HTTP 429.
const JSONRPC: &str = r##"
limits:
  - path: /mcp/tools/call
    maxRequests: 60
    windowSeconds: 60
    burstAllowance: 10
rateLimitResponse:
  jsonRpcError: { statusCode: 429 }
"##;

const REDIS: &str = r##"
limits:
  - path: /mcp/tools/call
    maxRequests: 2
    windowSeconds: 60
redisStore:
  cluster: gw_rate_limit_redis
"##;

const REDIS_LOCAL_FALLBACK: &str = r##"
limits:
  - path: /mcp/tools/call
    maxRequests: 2
    windowSeconds: 60
redisStore:
  cluster: gw_rate_limit_redis
  onUnavailable: local
"##;

fn call(id: u32) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"read_config","arguments":{{}}}}}}"#
    )
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

fn root(h: &mut MemoryHost, config: &str) -> Box<dyn FilterRoot> {
    let mut root = gw_rate_limit::new_root();
    assert!(root.configure(h, config.as_bytes()), "the config loads");
    root
}

/// A fresh request of `agent`: its filter state holds only the verified identity.
fn identify(h: &mut MemoryHost, agent: &str) {
    h.properties.clear();
    let identity = VerifiedIdentity {
        agent_id: agent.into(),
        ..Default::default()
    };
    h.set_property(&["gw_identity"], Some(identity.to_json().as_bytes()))
        .unwrap();
}

/// POST `body` to `/mcp` as `agent` up to the end of its body: the filter
/// and the action on the body (headers pass: no holdRequestHeaders).
fn post(
    h: &mut MemoryHost,
    root: &dyn FilterRoot,
    agent: &str,
    body: &str,
) -> (Box<dyn Filter>, Action) {
    identify(h, agent);
    let len = body.len().to_string();
    h.set_headers(
        MapType::HttpRequestHeaders,
        &[
            (":method", "POST"),
            (":path", "/mcp"),
            ("x-request-id", "req-1"),
            ("content-type", "application/json"),
            ("content-length", len.as_str()),
        ],
    );
    h.set_body(BufferType::HttpRequestBody, body.as_bytes());
    let mut filter = root.new_filter(1);
    assert_eq!(filter.request_headers(h, 5, false), Action::Continue);
    assert_eq!(
        filter.request_body(h, body.len() / 2, false),
        Action::Pause,
        "the body is buffered to its end"
    );
    let action = filter.request_body(h, body.len(), true);
    (filter, action)
}

/// The upstream's answer headers through the filter: what the client gets.
fn respond(h: &mut MemoryHost, filter: &mut dyn Filter) -> Vec<(String, String)> {
    h.set_headers(
        MapType::HttpResponseHeaders,
        &[(":status", "200"), ("content-type", "application/json")],
    );
    assert_eq!(filter.response_headers(h, 2, false), Action::Continue);
    h.headers(MapType::HttpResponseHeaders).to_vec()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// webdis's answer to the callout `token` of `filter`.
fn redis_answers(
    h: &mut MemoryHost,
    filter: &mut dyn Filter,
    token: u32,
    status: Option<&str>,
    body: &str,
) {
    match status {
        Some(status) => h.set_headers(MapType::HttpCallResponseHeaders, &[(":status", status)]),
        // A timeout or reset: Envoy calls back with no headers at all.
        None => h.set_headers(MapType::HttpCallResponseHeaders, &[]),
    }
    h.set_body(BufferType::HttpCallResponseBody, body.as_bytes());
    let headers = usize::from(status.is_some());
    filter.call_response(h, token, headers, body.len(), 0);
}

/// The script's answer for one window without burst: admitted (1/0),
/// retry-after ms, Redis's clock, then count and oldest of each of the
/// policy's two windows (the second unused without a burst).
fn redis_result(admitted: bool, retry_ms: u64, count: u64) -> String {
    let now = 1_700_000_000_000u64;
    format!(
        r#"{{"EVALSHA":[{},{retry_ms},{now},{count},{},0,0]}}"#,
        u8::from(admitted),
        now - 1_000
    )
}

#[test]
fn the_71st_call_of_an_agent_is_refused_with_429_and_retry_after() {
    let mut h = MemoryHost::new();
    let root = root(&mut h, LOCAL);
    for i in 1..=70 {
        let (mut filter, action) = post(&mut h, root.as_ref(), "agent-a", &call(i));
        assert_eq!(action, Action::Continue, "call {i} is admitted");
        let headers = respond(&mut h, filter.as_mut());
        assert!(
            header(&headers, "ratelimit").is_some(),
            "an admitted call carries its RateLimit fields: {headers:?}"
        );
    }
    assert!(h.replies.is_empty(), "70 calls all reached the upstream");
    let (_, action) = post(&mut h, root.as_ref(), "agent-a", &call(71));
    assert_eq!(action, Action::Pause, "the 71st never reaches the upstream");
    assert_eq!(h.replies.len(), 1);
    let reply = &h.replies[0];
    assert_eq!(reply.status, 429);
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body = reply.body_json();
    assert_eq!(body["error"], "agent_rate_limited");
    assert_eq!(body["agentId"], "agent-a");
    assert_eq!(body["retryAfterSeconds"], retry.to_string());
    assert_eq!(h.metric("gw.rate_limit.admitted"), 70);
    assert_eq!(h.metric("gw.rate_limit.limited"), 1);
    assert_eq!(
        h.filter_state("gw_decision"),
        Some(&b"rate_limited"[..]),
        "the audit sees why"
    );

    // Another agent has its own window; tools/list is never counted.
    let (_, action) = post(&mut h, root.as_ref(), "agent-b", &call(1));
    assert_eq!(action, Action::Continue);
    let (mut filter, action) = post(&mut h, root.as_ref(), "agent-a", LIST);
    assert_eq!(action, Action::Continue);
    assert_eq!(header(&respond(&mut h, filter.as_mut()), "ratelimit"), None);
    assert_eq!(h.replies.len(), 1);
}

#[test]
fn a_jsonrpc_refusal_carries_the_request_id_and_retry_after() {
    let mut h = MemoryHost::new();
    let root = root(&mut h, JSONRPC);
    for i in 1..=70 {
        assert_eq!(
            post(&mut h, root.as_ref(), "agent-a", &call(i)).1,
            Action::Continue
        );
    }
    let (_, action) = post(&mut h, root.as_ref(), "agent-a", &call(71));
    assert_eq!(action, Action::Pause);
    let reply = &h.replies[0];
    assert_eq!(reply.status, 429);
    assert!(reply.header("retry-after").is_some());
    let body = reply.body_json();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], 71);
    assert_eq!(body["error"]["code"], -32029);
    assert_eq!(body["error"]["data"]["agentId"], "agent-a");
}

#[test]
fn the_local_windows_live_in_shared_data_slots() {
    let mut h = MemoryHost::new();
    let root = root(&mut h, LOCAL);
    assert_eq!(
        h.tick,
        Some(std::time::Duration::from_secs(1)),
        "expired windows are swept"
    );
    let slots = h.shared.len();
    assert!(slots > 0, "slots are created at configure");
    let before = h.shared.clone();
    assert_eq!(
        post(&mut h, root.as_ref(), "agent-a", &call(1)).1,
        Action::Continue
    );
    let changed: Vec<&String> = h
        .shared
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(changed.len(), 1, "one call writes one slot: {changed:?}");
    assert!(changed[0].starts_with("gw_rate_limit/v1/"), "{changed:?}");
    assert_eq!(h.shared.len(), slots, "no new keys: the table is bounded");

    // A second root (another worker's VM) sees the same window.
    let other = self::root(&mut h, LOCAL);
    for i in 2..=70 {
        assert_eq!(
            post(&mut h, other.as_ref(), "agent-a", &call(i)).1,
            Action::Continue
        );
    }
    assert_eq!(
        post(&mut h, root.as_ref(), "agent-a", &call(71)).1,
        Action::Pause
    );

    // Three minutes later the window has expired: a full pass of the
    // sweep (one minute of ticks) drops it.
    h.clock += std::time::Duration::from_secs(180);
    let mut root = root;
    for _ in 0..60 {
        root.tick(&mut h);
    }
    assert_eq!(h.metric("gw.rate_limit.reclaimed"), 1);
    assert_eq!(
        post(&mut h, root.as_ref(), "agent-a", &call(72)).1,
        Action::Continue
    );
}

#[test]
fn a_bodiless_request_to_a_recipe_path_is_counted_from_its_headers() {
    let mut h = MemoryHost::new();
    let root = root(&mut h, LOCAL);
    identify(&mut h, "agent-a");
    h.set_headers(
        MapType::HttpRequestHeaders,
        &[(":method", "GET"), (":path", "/mcp/tools/call")],
    );
    for _ in 1..=70 {
        let mut filter = root.new_filter(1);
        assert_eq!(filter.request_headers(&mut h, 2, true), Action::Continue);
    }
    let mut filter = root.new_filter(1);
    assert_eq!(filter.request_headers(&mut h, 2, true), Action::Pause);
    assert_eq!(h.replies.len(), 1);
    assert_eq!(h.replies[0].status, 429);
}

#[test]
fn a_body_that_hides_its_operation_is_refused_400() {
    let mut h = MemoryHost::new();
    let root = root(&mut h, LOCAL);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}"#;
    let (_, action) = post(&mut h, root.as_ref(), "agent-a", body);
    assert_eq!(action, Action::Pause);
    assert_eq!(h.replies[0].status, 400);
    assert_eq!(h.replies[0].body_json()["error"]["code"], -32700);
}

#[test]
fn redis_decides_with_one_callout_to_the_configured_cluster() {
    let mut h = MemoryHost::new();
    let root = root(&mut h, REDIS);
    let (mut filter, action) = post(&mut h, root.as_ref(), "agent-a", &call(1));
    assert_eq!(action, Action::Pause, "the request waits for Redis");
    assert_eq!(h.callouts.len(), 1);
    let callout = h.callouts[0].clone();
    assert_eq!(callout.upstream, "gw_rate_limit_redis");
    let command = String::from_utf8(callout.body.clone()).unwrap();
    assert!(command.starts_with("EVALSHA/"), "{command}");
    assert!(
        !command.contains("agent-a"),
        "no raw agent id in Redis: {command}"
    );
    assert_eq!(
        filter.request_body(&mut h, 10, true),
        Action::Pause,
        "a late body callback keeps waiting"
    );

    // Another callout's answer is not this request's.
    redis_answers(
        &mut h,
        filter.as_mut(),
        callout.token + 7,
        Some("200"),
        &redis_result(true, 0, 1),
    );
    assert_eq!(h.resumed, 0);

    redis_answers(
        &mut h,
        filter.as_mut(),
        callout.token,
        Some("200"),
        &redis_result(true, 0, 1),
    );
    assert_eq!(h.resumed, 1, "admitted: the request goes on");
    assert!(h.replies.is_empty());
    let headers = respond(&mut h, filter.as_mut());
    assert!(header(&headers, "ratelimit").is_some(), "{headers:?}");
    assert_eq!(h.metric("gw.rate_limit.admitted"), 1);

    // Redis says no: 429 with Redis's Retry-After.
    let (mut filter, _) = post(&mut h, root.as_ref(), "agent-a", &call(2));
    let token = h.callouts[1].token;
    redis_answers(
        &mut h,
        filter.as_mut(),
        token,
        Some("200"),
        &redis_result(false, 30_000, 2),
    );
    assert_eq!(h.resumed, 1);
    assert_eq!(h.replies.len(), 1);
    assert_eq!(h.replies[0].status, 429);
    assert_eq!(h.replies[0].header("retry-after"), Some("30"));
    assert_eq!(h.metric("gw.rate_limit.limited"), 1);
}

#[test]
fn redis_lost_script_is_resent_once_with_eval() {
    let mut h = MemoryHost::new();
    let root = root(&mut h, REDIS);
    let (mut filter, _) = post(&mut h, root.as_ref(), "agent-a", &call(1));
    let first = h.callouts[0].clone();
    redis_answers(
        &mut h,
        filter.as_mut(),
        first.token,
        Some("200"),
        r#"{"EVALSHA":[false,"NOSCRIPT No matching script."]}"#,
    );
    assert_eq!(h.callouts.len(), 2);
    let second = h.callouts[1].clone();
    let command = String::from_utf8(second.body).unwrap();
    assert!(command.starts_with("EVAL/"), "{command}");
    let nonce = |body: &[u8]| String::from_utf8_lossy(body).contains("req-1");
    assert!(nonce(&first.body), "the nonce names the request");
    assert!(
        command.contains("req-1"),
        "the same nonce: Redis counts the call once"
    );
    assert!(h.replies.is_empty());
    redis_answers(
        &mut h,
        filter.as_mut(),
        second.token,
        Some("200"),
        &redis_result(true, 0, 1).replace("EVALSHA", "EVAL"),
    );
    assert_eq!(h.resumed, 1);

    // Lost again right after: not resent a second time, the store is unavailable.
    let (mut filter, _) = post(&mut h, root.as_ref(), "agent-a", &call(2));
    let token = h.callouts[2].token;
    redis_answers(
        &mut h,
        filter.as_mut(),
        token,
        Some("200"),
        r#"{"EVALSHA":[false,"NOSCRIPT"]}"#,
    );
    let token = h.callouts[3].token;
    redis_answers(
        &mut h,
        filter.as_mut(),
        token,
        Some("200"),
        r#"{"EVAL":[false,"NOSCRIPT"]}"#,
    );
    assert_eq!(h.callouts.len(), 4);
    assert_eq!(h.replies[0].status, 503);
}

#[test]
fn redis_down_fails_closed_by_default() {
    let mut h = MemoryHost::new();
    let root = root(&mut h, REDIS);
    for (i, (status, body)) in [
        (None, ""),
        (Some("502"), "upstream connect error"),
        (Some("200"), r#"{"EVALSHA":[false,"ERR redis down"]}"#),
    ]
    .into_iter()
    .enumerate()
    {
        let (mut filter, _) = post(&mut h, root.as_ref(), "agent-a", &call(1));
        let token = h.callouts[i].token;
        redis_answers(&mut h, filter.as_mut(), token, status, body);
        let reply = &h.replies[i];
        assert_eq!(reply.status, 503, "{status:?}");
        assert_eq!(reply.body_json()["error"], "rate_limit_unavailable");
    }
    assert_eq!(h.resumed, 0, "nothing reached the upstream");
    assert_eq!(h.metric("gw.rate_limit.redis_unavailable"), 3);
    assert_eq!(h.filter_state("gw_decision"), Some(&b"unavailable"[..]));
}

#[test]
fn redis_down_with_on_unavailable_local_decides_on_local_windows() {
    let mut h = MemoryHost::new();
    let root = root(&mut h, REDIS_LOCAL_FALLBACK);
    for i in 0..3 {
        let (mut filter, _) = post(&mut h, root.as_ref(), "agent-a", &call(1));
        let token = h.callouts[i].token;
        redis_answers(&mut h, filter.as_mut(), token, None, "");
    }
    assert_eq!(h.resumed, 2, "two admitted by the local windows");
    assert_eq!(h.replies.len(), 1);
    assert_eq!(h.replies[0].status, 429, "the third refused locally");
    assert_eq!(h.metric("gw.rate_limit.redis_unavailable"), 3);
}
