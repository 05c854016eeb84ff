"""The 2024-11-05 HTTP+SSE transport through the gateway, with the official
Python SDK's SSE client (`mcp.client.sse`) and server (`MCPServer.sse_app`,
served by the example server at /mcp/sse and /mcp/messages/).

A client of this transport reads answers only from its GET stream; the POST
of each message is answered 202. A denied `tools/call` must therefore reach
the client on that stream, correlated by session and JSON-RPC id: the
gateway forwards a `ping` with the same id instead (the upstream runs
nothing) and puts the denial in place of the ping's answer on the stream.
Tool lists on the stream are filtered per agent. Identity: the test-only
header of test_tool_acl.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from stack import Stack
from test_tool_acl import ALCHEMY, SENTINEL, AclGateway, _inject_test_identity, ident

pytestmark = pytest.mark.timeout(120)

# Guards against a hang (the failure this transport had): not a latency check.
HANG_GUARD_S = 30


@pytest.fixture(scope="module")
def gw(start_stack: Callable[..., Stack]) -> AclGateway:
    return AclGateway(start_stack("mcp_legacy_sse", config="envoy/gateway.yaml", patch=_inject_test_identity), {})


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
