"""tools/list answered from the gateway's cache in the form the upstream used.

Streamable HTTP lets a server answer a POST with JSON or with an SSE stream;
the example server (official Python SDK, stateless) answers a 2025-11-25
`tools/list` as SSE. A cached answer must look like a fresh one: SSE when the
upstream sent SSE (the MCP conformance suite's `server-sse-multiple-streams`
expects every POST stream to be SSE), unless the client accepts only JSON.
Per-agent filtering still applies to every cached answer.

Identity: the test-only `x-test-identity` header of test_tool_acl.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from gwstack import Stack
from support import ALCHEMY, SENTINEL, AclGateway, inject_test_identity, ident, listed, rpc_body

pytestmark = pytest.mark.timeout(120)

LIST = {"jsonrpc": "2.0", "method": "tools/list"}


@pytest.fixture(scope="module")
def gw(start_stack: Callable[..., Stack]) -> AclGateway:
    return AclGateway(start_stack("mcp_cache_form", config="envoy/gateway.yaml", patch=inject_test_identity), {})


def post_list(gw: AclGateway, agent: str, id_: Any, accept: str, version: str = "2025-11-25") -> Any:
    with gw.http(ident(agent)) as c:
        return c.post("/mcp", json=LIST | {"id": id_},
                      headers={"accept": accept, "mcp-protocol-version": version})


def test_cached_answer_is_sse_when_the_upstream_answered_sse(gw: AclGateway) -> None:
    gw.announce_tools_changed()  # empties the cache
    gw.upstream_reset()
    both = "application/json, text/event-stream"
    first = post_list(gw, "sentinel-1", "miss", both)
    assert first.headers["content-type"].startswith("text/event-stream"), first.headers
    assert listed(first) == SENTINEL
    hits = gw.counter("tools_list_cache_hit")

    # a hit for another agent: SSE like the upstream's, its own id, its own view
    hit = post_list(gw, "alchemy-1", "hit-sse", both)
    assert hit.status_code == 200
    assert hit.headers["content-type"].startswith("text/event-stream"), hit.headers
    assert rpc_body(hit)["id"] == "hit-sse" and listed(hit) == ALCHEMY
    assert "event: message" in hit.text

    # a client that takes only JSON gets JSON (it could not read SSE)
    js = post_list(gw, "sentinel-1", 7, "application/json")
    assert js.headers["content-type"].startswith("application/json"), js.headers
    assert js.json()["id"] == 7 and listed(js) == SENTINEL
    # ... and one that refuses JSON explicitly gets SSE
    sse = post_list(gw, "sentinel-2", 8, "application/json;q=0, text/event-stream")
    assert sse.headers["content-type"].startswith("text/event-stream") and listed(sse) == SENTINEL

    assert gw.counter("tools_list_cache_hit") - hits == 3
    assert gw.upstream_count() == 1, gw.upstream_stats()


def test_official_client_reads_cached_sse_answers(gw: AclGateway) -> None:
    """The official client (mcp 2.x, 2025-11-25) lists tools twice as two
    agents: one upstream call; both answers were SSE; each agent its view."""
    gw.announce_tools_changed()
    gw.upstream_reset()
    seen: list[tuple[str, str]] = []

    async def record(response: Any) -> None:
        try:
            method = json.loads(response.request.content or b"{}").get("method", "")
        except (ValueError, AttributeError):
            method = ""
        seen.append((method, response.headers.get("content-type", "")))

    async def names(agent: str) -> set[str]:
        async with gw.mcp_client(headers=ident(agent), on_response=record) as client:
            return {t.name for t in (await client.list_tools()).tools}

    assert asyncio.run(names("admin-1")) >= SENTINEL | ALCHEMY
    assert asyncio.run(names("sentinel-1")) == SENTINEL
    assert asyncio.run(names("alchemy-1")) == ALCHEMY
    assert gw.upstream_count() == 1, gw.upstream_stats()
    lists = [ct for method, ct in seen if method == "tools/list"]
    assert len(lists) == 3 and all(ct.startswith("text/event-stream") for ct in lists), seen
