"""The 2024-11-05 HTTP+SSE transport through the gateway, with the official
Python SDK's SSE client (`mcp.client.sse`) and server (`MCPServer.sse_app`,
served by the example server at /mcp/sse and /mcp/messages/).

A client of this transport reads answers only from its GET stream; the POST
of each message is answered 202. A denied `tools/call` must therefore reach
the client on that stream, correlated by session and JSON-RPC id: the
gateway forwards a `ping` with the same id instead (the upstream runs
nothing) and puts the denial in place of the ping's answer on the stream.
Tool lists on the stream are filtered per agent. Rate-limit refusals take
the same way (the rate-limit filter keeps its own table and watches the GET
stream itself); a denied call is not counted by the rate limit; audit
records every POSTed message with the gateway's decision. Under a route that
rewrites the prefix, the `endpoint` event names the gateway's URL.
Identity: the test-only header of test_tool_acl.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gwstack import Stack
from support import ALCHEMY, SENTINEL, AclGateway, inject_test_identity, ident

pytestmark = pytest.mark.timeout(120)

# Guards against a hang (the failure this transport had): not a latency check.
HANG_GUARD_S = 30


@pytest.fixture(scope="module")
def gw(start_stack: Callable[..., Stack]) -> AclGateway:
    return AclGateway(start_stack("mcp_legacy_sse", config="envoy/gateway.yaml", patch=inject_test_identity), {})


@contextlib.asynccontextmanager
async def sse_session(gw: AclGateway, agent: str) -> AsyncIterator[Any]:
    import httpx2
    from mcp import Client
    from mcp.client.sse import sse_client

    def factory(headers: Any = None, timeout: Any = None, auth: Any = None) -> Any:
        return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, verify=gw.ssl_context())

    transport = sse_client(gw.url("/mcp/sse"), headers=ident(agent), httpx_client_factory=factory)
    async with Client(transport, mode="legacy") as client:
        yield client


def test_denied_call_reaches_the_client_on_its_stream(gw: AclGateway) -> None:
    from mcp import MCPError

    gw.upstream_reset()

    async def go() -> None:
        async with sse_session(gw, "sentinel-1") as client:
            tools = await asyncio.wait_for(client.list_tools(), HANG_GUARD_S)
            assert {t.name for t in tools.tools} == SENTINEL  # filtered on the GET stream
            ok = await asyncio.wait_for(client.call_tool("read_config", {"key": "region"}), HANG_GUARD_S)
            assert not ok.is_error and ok.structured_content["value"] == "eu-west-1"
            for tool, args in (("execute_code", {"code": "print(1)"}), ("write_file", {"path": "p", "content": "c"})):
                with pytest.raises(MCPError) as err:
                    await asyncio.wait_for(client.call_tool(tool, args), HANG_GUARD_S)
                assert err.value.error.code == -32001, err.value
                assert tool in err.value.error.message
                assert err.value.error.data["error"] == "tool_access_denied"
            # the session goes on
            again = await asyncio.wait_for(client.call_tool("search_patterns", {"query": "map"}), HANG_GUARD_S)
            assert not again.is_error

    asyncio.run(go())
    stats = gw.upstream_stats()
    assert stats["tools"].get("execute_code", 0) == 0 and stats["tools"].get("write_file", 0) == 0, stats
    assert stats["tools"].get("read_config") == 1 and stats["tools"].get("search_patterns") == 1, stats
    # what reached the upstream in place of the denied calls: pings, same ids
    assert stats["methods"].get("ping", 0) == 2, stats
    assert stats["http"].get("POST /mcp/messages/", 0) >= 4, stats


def test_each_agent_sees_its_tools_and_denials_stay_in_their_session(gw: AclGateway) -> None:
    """Two sessions at once, same JSON-RPC ids: a denial in one never lands
    in the other (correlated by session, not only id)."""
    from mcp import MCPError

    async def alchemy() -> None:
        async with sse_session(gw, "alchemy-1") as client:
            assert {t.name for t in (await client.list_tools()).tools} == ALCHEMY
            with pytest.raises(MCPError):
                await asyncio.wait_for(client.call_tool("delete_scene", {"scene_id": "s"}), HANG_GUARD_S)

    async def sentinel() -> None:
        async with sse_session(gw, "sentinel-2") as client:
            assert {t.name for t in (await client.list_tools()).tools} == SENTINEL
            ok = await asyncio.wait_for(client.call_tool("read_config", {"key": "region"}), HANG_GUARD_S)
            assert not ok.is_error

    async def both() -> None:
        await asyncio.gather(alchemy(), sentinel())

    asyncio.run(both())
    assert gw.tool_runs("delete_scene") == 0


# --------------------------------------------------------------------------- rate limits, audit, prefix rewrite

# Two tool calls per agent and window (a long window: nothing slides during
# the test); the recipe's refusal body.
LEGACY_LIMITS = """
limits:
  - path: /mcp/tools/call
    keySelector: "#[vars.agentId]"
    maxRequests: 2
    windowSeconds: 600
rateLimitResponse:
  statusCode: 429
  body: '{"error": "agent_rate_limited", "agentId": "#[vars.agentId]", "retryAfterSeconds": "#[vars.retryAfter]"}'
holdRequestHeaders: true
"""

# The transport also served under /mcp/legacy/ by a route that rewrites the
# prefix to the upstream's /mcp/: the upstream's `endpoint` event names
# /mcp/messages/, which the gateway must turn into /mcp/legacy/messages/.
LEGACY_PREFIX = "/mcp/legacy/"


def _legacy_route(cfg: dict[str, Any]) -> None:
    from gwstack import walk_dicts

    def patch(node: dict[str, Any]) -> None:
        if node.get("name") == "gateway" and isinstance(node.get("routes"), list):
            node["routes"].insert(0, {
                "name": "mcp_legacy_prefix",
                "match": {"prefix": LEGACY_PREFIX},
                "route": {"cluster": "mcp_upstream", "timeout": "0s", "idle_timeout": "300s",
                          "prefix_rewrite": "/mcp/"},
            })

    walk_dicts(cfg, patch)


@pytest.fixture(scope="module")
def limited(start_stack: Callable[..., Stack]) -> tuple[AclGateway, Any]:
    from support import Collector, sender, shipped_acl_config

    acl_config = shipped_acl_config()
    acl_config["legacySse"] = {"prefixRewrites": [{"gatewayPrefix": LEGACY_PREFIX, "upstreamPrefix": "/mcp/"}]}

    def patch(cfg: dict[str, Any]) -> None:
        inject_test_identity(cfg)
        _legacy_route(cfg)

    s = start_stack("mcp_legacy_limits", config="envoy/gateway.yaml", patch=patch,
                    filter_configs={"gw_rate_limit": LEGACY_LIMITS, "gw_tool_acl": acl_config,
                                    "gw_audit_sender": sender(batchSize=5, flushIntervalMs=200)})
    return AclGateway(s, {}), Collector(s)


@contextlib.asynccontextmanager
async def sse_session_at(gw: AclGateway, agent: str, path: str) -> AsyncIterator[Any]:
    import httpx2
    from mcp import Client
    from mcp.client.sse import sse_client

    def factory(headers: Any = None, timeout: Any = None, auth: Any = None) -> Any:
        return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, verify=gw.ssl_context())

    transport = sse_client(gw.url(path), headers=ident(agent), httpx_client_factory=factory)
    async with Client(transport, mode="legacy") as client:
        yield client


def legacy_events(collector: Any, agent: str, want: int) -> list[dict[str, Any]]:
    """The audit events of `agent`'s tools/call POSTs on this transport, once `want` arrived."""
    import time

    deadline = time.monotonic() + 20
    while True:
        got = [e for e in collector.events()
               if e.get("jsonrpcMethod") == "tools/call" and e.get("path", "").endswith("/messages")
               and (e.get("agent") or {}).get("id") == agent]
        if len(got) >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_rate_limit_refusal_reaches_the_client_on_its_stream(limited: tuple[AclGateway, Any]) -> None:
    from mcp import MCPError

    gw, collector = limited
    gw.upstream_reset()

    async def go() -> None:
        async with sse_session(gw, "sentinel-rl") as client:
            for _ in range(2):
                ok = await asyncio.wait_for(client.call_tool("read_config", {"key": "region"}), HANG_GUARD_S)
                assert not ok.is_error
            with pytest.raises(MCPError) as err:
                await asyncio.wait_for(client.call_tool("read_config", {"key": "region"}), HANG_GUARD_S)
            assert err.value.error.code == -32029, err.value
            assert err.value.error.data["error"] == "agent_rate_limited"
            assert err.value.error.data["agentId"] == "sentinel-rl"
            assert int(err.value.error.data["retryAfterSeconds"]) > 0
            # the session goes on (a tools/list is not limited)
            tools = await asyncio.wait_for(client.list_tools(), HANG_GUARD_S)
            assert {t.name for t in tools.tools} == SENTINEL

    asyncio.run(go())
    stats = gw.upstream_stats()
    # the third call never ran: a ping with its id went upstream instead
    assert stats["tools"].get("read_config") == 2, stats
    assert stats["methods"].get("ping", 0) == 1, stats
    events = legacy_events(collector, "sentinel-rl", 3)
    decisions = sorted(e["decision"] for e in events)
    assert decisions == ["allowed", "allowed", "rate_limited"], events
    limited_event = next(e for e in events if e["decision"] == "rate_limited")
    assert limited_event["toolName"] == "read_config", limited_event


def test_denied_calls_do_not_use_the_tools_window(limited: tuple[AclGateway, Any]) -> None:
    """A call the ACL denies is forwarded as a ping; the rate limit does not
    count it (as on Streamable HTTP, where a denied call never reaches it)."""
    from mcp import MCPError

    gw, collector = limited
    gw.upstream_reset()

    async def go() -> None:
        async with sse_session(gw, "sentinel-dn") as client:
            for _ in range(3):
                with pytest.raises(MCPError) as err:
                    await asyncio.wait_for(client.call_tool("execute_code", {"code": "1"}), HANG_GUARD_S)
                assert err.value.error.code == -32001, err.value
            for _ in range(2):
                ok = await asyncio.wait_for(client.call_tool("search_patterns", {"query": "q"}), HANG_GUARD_S)
                assert not ok.is_error
            with pytest.raises(MCPError) as err:
                await asyncio.wait_for(client.call_tool("search_patterns", {"query": "q"}), HANG_GUARD_S)
            assert err.value.error.code == -32029, err.value

    asyncio.run(go())
    stats = gw.upstream_stats()
    assert stats["tools"].get("execute_code", 0) == 0 and stats["tools"].get("search_patterns") == 2, stats
    assert stats["methods"].get("ping", 0) == 4, stats
    decisions = sorted(e["decision"] for e in legacy_events(collector, "sentinel-dn", 6))
    assert decisions == ["allowed"] * 2 + ["rate_limited"] + ["tool_denied"] * 3, decisions


def test_endpoint_event_names_the_gateways_prefix(limited: tuple[AclGateway, Any]) -> None:
    """Under a route that rewrites /mcp/legacy/ to the upstream's /mcp/, the
    client is told to POST to /mcp/legacy/messages/ and everything works and
    is governed there."""
    from mcp import MCPError

    gw, _ = limited
    gw.upstream_reset()
    with gw.http(ident("sentinel-px")) as c:
        with c.stream("GET", LEGACY_PREFIX + "sse", headers={"accept": "text/event-stream"}) as r:
            assert r.status_code == 200
            first = ""
            for line in r.iter_lines():
                if line.startswith("data:"):
                    first = line[5:].strip()
                    break
    assert first.startswith(LEGACY_PREFIX + "messages/?session_id="), first

    async def go() -> None:
        async with sse_session_at(gw, "sentinel-px", LEGACY_PREFIX + "sse") as client:
            assert {t.name for t in (await asyncio.wait_for(client.list_tools(), HANG_GUARD_S)).tools} == SENTINEL
            ok = await asyncio.wait_for(client.call_tool("read_config", {"key": "region"}), HANG_GUARD_S)
            assert not ok.is_error
            with pytest.raises(MCPError) as err:
                await asyncio.wait_for(client.call_tool("write_file", {"path": "p", "content": "c"}), HANG_GUARD_S)
            assert err.value.error.code == -32001

    asyncio.run(go())
    stats = gw.upstream_stats()
    assert stats["tools"].get("read_config") == 1 and stats["tools"].get("write_file", 0) == 0, stats
    assert stats["http"].get("POST /mcp/messages/", 0) >= 3, stats
