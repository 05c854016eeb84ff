"""Rate-limit filter, end to end through stock Envoy (2+ workers) with the
official MCP and A2A clients: the recipe's three limits as shipped in
envoy/gateway.yaml, exactness under concurrency, sliding windows,
Retry-After, per-agent isolation, identity spoofing, the JSON-RPC error form.
Multi-replica mode (Redis) is in test_rate_limit_redis.py.

Identity comes from the test-only `set_filter_state` stand-in described in
rate_limit_support.py (the filter reads only filter state)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any, Callable

import httpx
import pytest

from conftest import WORKERS, Gateway
from gwstack.support import MCP_HEADERS, run
from rate_limit_support import (
    a2a_send,
    agent,
    as_agent,
    counters,
    identity_patch,
    parse_ratelimit,
    tool_call,
    worker_connections,
)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def recipe(start_stack: Callable[..., Any]) -> Gateway:
    """envoy/gateway.yaml exactly as shipped (the recipe's limits), 2+ workers."""
    s = start_stack("rl-recipe", config="envoy/gateway.yaml", workers=max(2, WORKERS), patch=identity_patch())
    return Gateway(s, {})


SHORT = """
limits:
  - path: /mcp/tools/call
    keySelector: "#[attributes.headers['x-verified-agent-id']]"
    maxRequests: 3
    windowSeconds: 3
  - path: /a2a/tasks/send
    keySelector: "#[vars.agentId]"
    maxRequests: 2
    windowSeconds: 2
    burstAllowance: 1
"""


@pytest.fixture(scope="module")
def short(start_stack: Callable[..., Any]) -> Gateway:
    """Short windows, to watch them slide."""
    s = start_stack("rl-short", config="envoy/gateway.yaml", workers=max(2, WORKERS), patch=identity_patch(),
                    filter_configs={"gw_rate_limit": SHORT})
    return Gateway(s, {})


JSONRPC_PER_TOOL = """
limits:
  - name: per-tool
    path: /mcp/tools/call
    keySelector: "#[vars.agentId]/#[vars.toolName]"
    maxRequests: 2
    windowSeconds: 60
  - path: /a2a/tasks/send
    maxRequests: 5
    windowSeconds: 60
rateLimitResponse:
  statusCode: 429
  body: '{"error": "agent_rate_limited", "agentId": "#[vars.agentId]", "tool": "#[vars.toolName]"}'
  jsonRpcError:
    code: -32029
onMissingIdentity: deny
"""


def tool_acl_without_a2a() -> str:
    """The shipped tool ACL config without its `a2a:` section: the A2A access
    rules would refuse an anonymous send before the rate limit could (see
    test_missing_identity_is_denied_when_configured)."""
    import yaml

    import gwstack as stack_mod

    acl = yaml.safe_load(stack_mod.filter_configuration(stack_mod.ENVOY_DIR / "gateway.yaml", "gw_tool_acl"))
    acl.pop("a2a")
    return yaml.safe_dump(acl)


@pytest.fixture(scope="module")
def per_tool(start_stack: Callable[..., Any]) -> Gateway:
    s = start_stack("rl-per-tool", config="envoy/gateway.yaml", workers=max(2, WORKERS), patch=identity_patch(),
                    filter_configs={"gw_rate_limit": JSONRPC_PER_TOOL, "gw_tool_acl": tool_acl_without_a2a()})
    return Gateway(s, {})


def post_tool(c: httpx.Client, who: str | None, i: int = 1, name: str = "search_patterns",
              path: str = "/mcp", **headers: str) -> httpx.Response:
    return c.post(path, json=tool_call(i, name), headers={**MCP_HEADERS, **as_agent(who, **headers)})


def tools_served(gw: Gateway) -> int:
    return gw.upstream_stats()["methods"].get("tools/call", 0)


# --------------------------------------------------------------------------- recipe limits, official clients


def test_recipe_tool_call_limit_with_official_mcp_client(recipe: Gateway) -> None:
    """60/min + burst 10: the official client gets 70 tool calls, the 71st is
    refused with the recipe's 429 (which the client surfaces as an error)."""
    who = agent()
    before = tools_served(recipe)

    async def go() -> None:
        async with recipe.mcp_client(headers=as_agent(who)) as client:
            for i in range(70):
                r = await client.call_tool("search_patterns", {"query": "map"})
                assert not r.is_error, i
            with pytest.raises(Exception):
                await client.call_tool("search_patterns", {"query": "map"})

    run(go())
    assert tools_served(recipe) == before + 70

    with recipe.http() as c:
        r = post_tool(c, who, path="/mcp/tools/call")  # the recipe's path: same window
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == "agent_rate_limited"
    assert body["agentId"] == who
    assert body["retryAfterSeconds"] == r.headers["retry-after"]
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["ratelimit-policy"] == '"tools/call";q=70;w=60, "tools/call:2w";q=120;w=120'
    state = parse_ratelimit(r.headers["ratelimit"])
    assert state["tools/call"]["r"] == 0 and state["tools/call:2w"]["r"] == 50


@pytest.mark.parametrize("first", ["1.0", "0.3"])
def test_recipe_task_send_limit_across_a2a_versions(recipe: Gateway, first: str) -> None:
    """30/min for A2A send, one window for every protocol version and path."""
    from a2a.helpers import new_text_message
    from a2a.types import Role, SendMessageRequest

    who = agent("alchemy-rl")
    second = "0.3" if first == "1.0" else "1.0"

    async def send(version: str, n: int) -> None:
        async with recipe.a2a_client(headers=as_agent(who), version=version, streaming=False) as client:
            for _ in range(n):
                req = SendMessageRequest(message=new_text_message("hello", role=Role.ROLE_USER))
                events = [ev async for ev in client.send_message(req)]
                assert events[0].WhichOneof("payload") == "task"

    run(send(first, 10))
    run(send(second, 10))
    with recipe.http() as c:
        for i in range(10):  # the recipe's 0.1 path (message/send body): same window
            r = c.post("/a2a/tasks/send", json=a2a_send(i), headers=as_agent(who))
            assert r.status_code == 200, (i, r.text)
        r = c.post("/a2a", json=a2a_send(99, "SendMessage"), headers=as_agent(who, **{"a2a-version": "1.0"}))
        assert r.status_code == 429, r.text
        assert r.json()["agentId"] == who
        assert r.headers["ratelimit-policy"] == '"tasks/send";q=30;w=60'
        r = c.post("/a2a", json=a2a_send(100, "tasks/send"), headers=as_agent(who))
        assert r.status_code == 429
    # the official client sees the refusal too
    with pytest.raises(Exception):
        run(send(first, 1))


def test_recipe_stream_limit_with_official_a2a_client(recipe: Gateway) -> None:
    """10/min for A2A streams; streams and sends are separate windows."""
    from a2a.helpers import new_text_message
    from a2a.types import Role, SendMessageRequest

    who = agent("alchemy-rl")

    async def stream(version: str, n: int) -> None:
        async with recipe.a2a_client(headers=as_agent(who), version=version, streaming=True) as client:
            for _ in range(n):
                req = SendMessageRequest(message=new_text_message("stream steps=1", role=Role.ROLE_USER))
                events = [ev async for ev in client.send_message(req)]
                assert len(events) >= 2

    run(stream("1.0", 5))
    run(stream("0.3", 5))
    with pytest.raises(Exception):
        run(stream("1.0", 1))
    with recipe.http() as c:
        r = c.post("/a2a/tasks/sendSubscribe", json=a2a_send(1, "message/stream"), headers=as_agent(who))
        assert r.status_code == 429
        assert r.headers["ratelimit-policy"] == '"tasks/sendSubscribe";q=10;w=60'
        # the send window is untouched
        r = c.post("/a2a", json=a2a_send(2), headers=as_agent(who))
        assert r.status_code == 200, r.text
        assert parse_ratelimit(r.headers["ratelimit"])["tasks/send"]["r"] == 29


def test_unlimited_operations_pass_without_headers(recipe: Gateway) -> None:
    with recipe.http() as c:
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                   headers={**MCP_HEADERS, **as_agent(agent())})
        assert r.status_code == 200
        assert "ratelimit" not in r.headers
        assert c.get("/.well-known/agent-card.json").status_code == 200


# --------------------------------------------------------------------------- exactness


def _concurrent(gw: Gateway, n: int, make: Callable[[int], tuple[str, dict[str, Any], dict[str, str]]],
                connections: int = 16) -> list[httpx.Response]:
    """n requests at once over `connections` HTTP/1.1 connections."""

    async def go() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with gw.ahttp(limits=limits) as c:
            async def one(i: int) -> httpx.Response:
                path, body, headers = make(i)
                return await c.post(path, json=body, headers=headers)

            return await asyncio.gather(*(one(i) for i in range(n)))

    return run(go())


def test_exact_under_concurrency_across_workers(recipe: Gateway) -> None:
    """2 x the limit sent at once over many connections spread over every
    worker: exactly the limit is admitted, exactly that many reach upstream."""
    who = agent()
    before_tools = tools_served(recipe)
    before_workers = worker_connections(recipe.admin_url)
    rs = _concurrent(recipe, 140, lambda i: ("/mcp", tool_call(i), {**MCP_HEADERS, **as_agent(who)}))
    codes = [r.status_code for r in rs]
    assert codes.count(200) == 70, codes
    assert codes.count(429) == 70, codes
    assert tools_served(recipe) == before_tools + 70
    after_workers = worker_connections(recipe.admin_url)
    used = [w for w in after_workers if after_workers[w] > before_workers.get(w, 0)]
    assert len(used) >= 2, (before_workers, after_workers)

    who = agent("alchemy-rl")
    rs = _concurrent(recipe, 60, lambda i: ("/a2a", a2a_send(i), as_agent(who)))
    codes = [r.status_code for r in rs]
    assert codes.count(200) == 30 and codes.count(429) == 30, codes


def test_batch_counts_every_operation(recipe: Gateway) -> None:
    who = agent()
    with recipe.http() as c:
        r = c.post("/mcp", json=[tool_call(1), tool_call(2), tool_call(3)], headers={**MCP_HEADERS, **as_agent(who)})
        assert r.status_code != 429
        assert parse_ratelimit(r.headers["ratelimit"])["tools/call"]["r"] == 67
        rs = [post_tool(c, who, i) for i in range(66)]
        assert all(r.status_code == 200 for r in rs)
        # 1 slot left: a batch of 2 is refused whole, a single call fits
        r = c.post("/mcp", json=[tool_call(1), tool_call(2)], headers={**MCP_HEADERS, **as_agent(who)})
        assert r.status_code == 429
        assert post_tool(c, who).status_code == 200
        assert post_tool(c, who).status_code == 429


def test_unparseable_bodies_are_refused(recipe: Gateway) -> None:
    """A body the strict parser rejects could hide a tool call (duplicate keys)."""
    with recipe.http() as c:
        dup = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}'
        r = c.post("/mcp", content=dup, headers={**MCP_HEADERS, "content-type": "application/json",
                                                **as_agent(agent())})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == -32700


# --------------------------------------------------------------------------- isolation and spoofing


def test_two_agents_never_share_a_window(recipe: Gateway) -> None:
    a, b = agent(), agent()
    rs = _concurrent(recipe, 71, lambda i: ("/mcp", tool_call(i), {**MCP_HEADERS, **as_agent(a)}))
    assert [r.status_code for r in rs].count(429) == 1
    with recipe.http() as c:
        r = post_tool(c, b)
        assert r.status_code == 200
        assert parse_ratelimit(r.headers["ratelimit"])["tools/call"]["r"] == 69
        assert post_tool(c, a).status_code == 429


def test_spoofed_identity_headers_do_not_move_the_window(recipe: Gateway) -> None:
    attacker, victim = agent(), agent()
    spoof = {"x-verified-agent-id": victim, "x-verified-agent-name": victim, "x-verified-agent-owner": "x"}
    rs = _concurrent(recipe, 71, lambda i: ("/mcp", tool_call(i), {**MCP_HEADERS, **as_agent(attacker), **spoof}))
    assert [r.status_code for r in rs].count(429) == 1
    with recipe.http() as c:
        limited = post_tool(c, attacker, **spoof)
        assert limited.status_code == 429
        assert limited.json()["agentId"] == attacker
        # no verified identity + spoofed header: the anonymous window, not the victim's
        r = post_tool(c, None, **spoof)
        assert r.status_code in (200, 429)
        r = post_tool(c, victim)
        assert r.status_code == 200
        assert parse_ratelimit(r.headers["ratelimit"])["tools/call"]["r"] == 69


# --------------------------------------------------------------------------- sliding windows


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def test_window_slides_continuously(short: Gateway) -> None:
    """3 per 3 s. Admissions at ~0 s and ~1.5 s (x2): full until the first is
    3 s old, then exactly one frees; the other two free 3 s after theirs. A
    fixed window would instead free all three at a boundary. Deadlines are
    taken from measured send/answer times, so a slow machine cannot make the
    test pass or fail by accident."""
    who = agent()
    with short.http() as c:
        t0 = time.monotonic()
        assert post_tool(c, who).status_code == 200
        first_done = time.monotonic()
        _sleep_until(t0 + 1.5)
        second_sent = time.monotonic()
        assert post_tool(c, who).status_code == 200
        assert post_tool(c, who).status_code == 200
        second_done = time.monotonic()
        assert post_tool(c, who).status_code == 429
        _sleep_until(first_done + 3 + 0.15)
        assert time.monotonic() < second_sent + 3
        assert post_tool(c, who).status_code == 200   # the ~0 s admission aged out
        fourth_sent = time.monotonic()
        assert post_tool(c, who).status_code == 429   # ... and only that one
        _sleep_until(second_done + 3 + 0.15)
        assert time.monotonic() < fourth_sent + 3
        assert post_tool(c, who).status_code == 200   # the ~1.5 s admissions aged out
        assert post_tool(c, who).status_code == 200
        assert post_tool(c, who).status_code == 429


def test_retry_after_is_when_a_slot_frees(short: Gateway) -> None:
    who = agent()
    with short.http() as c:
        t_first = time.monotonic()
        for _ in range(3):
            assert post_tool(c, who).status_code == 200
        _sleep_until(t_first + 0.6)
        t_ask = time.monotonic()
        r = post_tool(c, who)
        assert r.status_code == 429
        retry = int(r.headers["retry-after"])
        expected = t_first + 3 - t_ask          # the first admission ages out then
        assert abs(retry - expected) < 1, (retry, expected)
        assert retry == math.ceil(expected) or retry == math.ceil(expected - 0.05), (retry, expected)
        assert r.json()["retryAfterSeconds"] == str(retry)
        # still refused shortly before, admitted once Retry-After has passed
        _sleep_until(t_first + 2.7)
        assert post_tool(c, who).status_code == 429
        _sleep_until(t_ask + retry + 0.05)
        assert post_tool(c, who).status_code == 200


def test_burst_allowance_is_paid_back(short: Gateway) -> None:
    """2 per 2 s + burst 1: 3 at once, then only 1 in the next window
    (at most 2 x 2 = 4 in any 4 s), then full quota again."""
    who = agent("alchemy-rl")
    with short.http() as c:
        t0 = time.monotonic()
        codes = [c.post("/a2a", json=a2a_send(i), headers=as_agent(who)).status_code for i in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.post("/a2a", json=a2a_send(9), headers=as_agent(who))
        assert r.headers["ratelimit-policy"] == '"tasks/send";q=3;w=2, "tasks/send:2w";q=4;w=4'
        _sleep_until(t0 + 2.3)
        codes = [c.post("/a2a", json=a2a_send(i), headers=as_agent(who)).status_code for i in range(2)]
        assert codes == [200, 429]
        r = c.post("/a2a", json=a2a_send(9), headers=as_agent(who))
        state = parse_ratelimit(r.headers["ratelimit"])
        assert state["tasks/send:2w"]["r"] == 0 and state["tasks/send"]["r"] == 2
        _sleep_until(t0 + 4.3)
        codes = [c.post("/a2a", json=a2a_send(i), headers=as_agent(who)).status_code for i in range(2)]
        assert codes == [200, 200]


# --------------------------------------------------------------------------- per-tool keys, JSON-RPC form


def test_per_tool_limit_with_json_rpc_error_for_the_official_client(per_tool: Gateway) -> None:
    from mcp.shared.exceptions import MCPError

    who = agent()

    async def go() -> None:
        async with per_tool.mcp_client(headers=as_agent(who)) as client:
            for _ in range(2):
                assert not (await client.call_tool("search_patterns", {"query": "x"})).is_error
            with pytest.raises(MCPError) as err:
                await client.call_tool("search_patterns", {"query": "x"})
            assert err.value.error.code == -32029
            assert err.value.error.data["retryAfterSeconds"] >= 1
            assert err.value.error.data["agentId"] == who
            # same session, another tool: its own window
            assert not (await client.call_tool("classify_content", {"text": "x"})).is_error

    run(go())
    with per_tool.http() as c:
        r = post_tool(c, who, 41)
        assert r.status_code == 200 and r.json()["id"] == 41
        assert r.json()["error"]["code"] == -32029
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["ratelimit-policy"] == '"per-tool";q=2;w=60'


def test_missing_identity_is_denied_when_configured(per_tool: Gateway) -> None:
    """(An unauthenticated tools/call or A2A send is already refused by the
    tool ACL in the shipped chain, so this stack runs without the ACL's `a2a:`
    section and uses the A2A send limit.)"""
    with per_tool.http() as c:
        r = c.post("/a2a", json=a2a_send(1))
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "unauthenticated"
        r = c.post("/a2a", json=a2a_send(2), headers=as_agent(agent("alchemy-rl")))
        assert r.status_code == 200
        # operations no limit counts need no identity here
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=MCP_HEADERS)
        assert r.status_code == 200


def test_metrics_count_decisions(recipe: Gateway) -> None:
    before = counters(recipe.admin_url)
    who = agent()
    rs = _concurrent(recipe, 72, lambda i: ("/mcp", tool_call(i), {**MCP_HEADERS, **as_agent(who)}))
    assert [r.status_code for r in rs].count(429) == 2
    after = counters(recipe.admin_url)
    assert after["wasmcustom.gw.rate_limit.admitted"] - before["wasmcustom.gw.rate_limit.admitted"] == 70
    assert after["wasmcustom.gw.rate_limit.limited"] - before["wasmcustom.gw.rate_limit.limited"] == 2
    assert after["wasmcustom.gw.rate_limit.store_errors"] == 0
    assert after["wasmcustom.gw.rate_limit.table_full"] == 0


@pytest.mark.timeout(120)
def test_bad_config_is_refused_by_envoy_with_its_key_path(wasm_built: Any, run_root: Any) -> None:
    import subprocess

    import gwstack as stack_mod

    bad = "limits:\n  - {path: /mcp/tools/cal, maxRequests: 60, windowSeconds: 60}\n"
    cfg = stack_mod.render_config("envoy/gateway.yaml", certs=stack_mod.generate_certs(run_root / "rl-bad" / "certs"),
                                  filter_configs={"gw_rate_limit": bad})
    out = stack_mod.write_config(cfg, run_root / "rl-bad" / "envoy.yaml")
    p = subprocess.run([stack_mod.envoy_binary(), "--mode", "validate", "-c", str(out), "--disable-hot-restart",
                        "--log-level", "warn"], capture_output=True, text=True, timeout=100)
    assert p.returncode != 0
    assert "invalid configuration at `limits[0].path`" in p.stdout + p.stderr


def test_real_identity_filter_keys_the_window(start_stack: Callable[..., Any]) -> None:
    """With the identity filter of the shipped config (demo static keys): the
    window is the verified agent's, whatever X-Verified-Agent-* the client sends."""
    conf = ("limits:\n  - path: /mcp/tools/call\n"
            "    keySelector: \"#[attributes.headers['x-verified-agent-id']]\"\n"
            "    maxRequests: 3\n    windowSeconds: 60\n")
    s = start_stack("rl-real-identity", config="envoy/gateway.yaml", workers=max(2, WORKERS), backends=("mcp",),
                    filter_configs={"gw_rate_limit": conf})
    gw = Gateway(s, {})
    sentinel = {"x-agent-api-key": "gw-demo-sentinel-1", "x-verified-agent-id": "alchemy-1",
                "x-verified-agent-name": "Alchemy One", "x-verified-agent-owner": "media-team"}
    try:
        with gw.http() as c:
            codes = [c.post("/mcp", json=tool_call(i), headers={**MCP_HEADERS, **sentinel}).status_code
                     for i in range(4)]
            assert codes == [200, 200, 200, 429], codes
            r = c.post("/mcp", json=tool_call(9), headers={**MCP_HEADERS, **sentinel})
            assert r.json()["agentId"] == "sentinel-1"
            r = c.post("/mcp", json=tool_call(10, "read_template"),
                       headers={**MCP_HEADERS, "x-agent-api-key": "gw-demo-alchemy-1"})
            assert r.status_code == 200, r.text
            assert parse_ratelimit(r.headers["ratelimit"])["tools/call"]["r"] == 2
    finally:
        s.stop()


def test_tracked_keys_are_bounded_and_live_windows_are_kept(start_stack: Callable[..., Any]) -> None:
    """One slot of two keys: a third agent is refused until a window expires
    (fail closed); the tracked agents keep their windows (no eviction)."""
    conf = ("limits:\n  - {path: /mcp/tools/call, maxRequests: 5, windowSeconds: 2}\n"
            "localStore: {slots: 1, keysPerSlot: 2}\n")
    s = start_stack("rl-bound", config="envoy/gateway.yaml", workers=max(2, WORKERS), backends=("mcp",),
                    patch=identity_patch(), filter_configs={"gw_rate_limit": conf})
    gw = Gateway(s, {})
    a, b, newcomer = agent(), agent(), agent()
    try:
        with gw.http() as c:
            t0 = time.monotonic()
            assert post_tool(c, a).status_code == 200
            assert post_tool(c, b).status_code == 200
            r = post_tool(c, newcomer)
            assert r.status_code == 429
            assert 1 <= int(r.headers["retry-after"]) <= 2
            assert r.json()["agentId"] == newcomer
            r = post_tool(c, a)
            assert r.status_code == 200
            assert parse_ratelimit(r.headers["ratelimit"])["tools/call"]["r"] == 3
            _sleep_until(t0 + 2.3)  # b's window (and a's first admission) expired
            assert post_tool(c, newcomer).status_code == 200
        assert counters(gw.admin_url)["wasmcustom.gw.rate_limit.table_full"] >= 1
    finally:
        s.stop()



@pytest.mark.timeout(120)
def test_limited_requests_never_reach_the_upstream(gateway: Gateway) -> None:
    """The shipped config holds request headers until the body is counted
    (holdRequestHeaders + allow_on_headers_stop_iteration): a 429 costs the
    A2A agent nothing, where without the hold it would see the headers and
    then a reset. Every admitted send reaches it exactly once."""
    from conftest import DEMO_KEYS

    send = {"jsonrpc": "2.0", "id": 1, "method": "message/send",
            "params": {"message": {"role": "user", "messageId": "m-1", "kind": "message",
                                   "parts": [{"kind": "text", "text": "hold"}]}}}
    headers = {"x-agent-api-key": DEMO_KEYS["alchemy-1"], "a2a-version": "0.3"}
    before = gateway.upstream_requests("a2a_upstream")
    statuses = []
    with gateway.http(headers) as c:
        for _ in range(40):  # the recipe allows 30 sends a minute
            statuses.append(c.post("/a2a", json=send).status_code)
            if statuses[-1] == 429 and statuses.count(429) >= 3:
                break
    assert set(statuses) <= {200, 429} and statuses.count(429) >= 3, statuses
    assert gateway.upstream_requests("a2a_upstream") - before == statuses.count(200)
