"""Every MCP transport revision through the gateway, governed the same way.

The matrix: transport revision × (tools/list filtered, allowed, denied,
limited, audited), with the official Python SDK client (mcp 2.3.0) and the
example server (the SDK's server) through the shipped envoy/gateway.yaml,
in both deployments (`./dev test` runs every file twice, the second time
with GW_FOUR_MODULES=1).

How each revision is spoken, with one installed SDK (pinning an SDK of each
era in its own venv would cost minutes per run for no more coverage of the
gateway, whose behaviour depends only on what is on the wire):

- 2024-11-05: the HTTP+SSE transport (`mcp.client.sse`, GET /mcp/sse plus
  POSTs to the messages URL), the client announcing 2024-11-05;
- 2025-03-26, 2025-06-18, 2025-11-25: Streamable HTTP with the initialize
  handshake, the client announcing that revision (the SDK's handshake
  offers its latest; the test sets the module constant it reads) and then
  sending it as `MCP-Protocol-Version` on every request, which the test
  checks on the wire;
- 2026-07-28: Streamable HTTP in the SDK's modern mode (no initialize,
  `Mcp-Method` headers).

Each revision has its own agent, so each has its own rate-limit window
(three tool calls). What reached the upstream is checked through the
example server's counters, what was audited through the example collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gwstack import Stack
from support import SENTINEL, AclGateway, inject_test_identity, ident

pytestmark = pytest.mark.timeout(180)

# Guards against a hang (a refusal the client never reads): not a latency check.
HANG_GUARD_S = 30

REVISIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]

# Three tool calls per agent (per revision) in a long window; refusals as
# JSON-RPC errors, so every transport's client raises the same MCPError.
LIMITS = """
limits:
  - path: /mcp/tools/call
    keySelector: "#[vars.agentId]"
    maxRequests: 3
    windowSeconds: 600
rateLimitResponse:
  statusCode: 429
  body: '{"error": "agent_rate_limited", "agentId": "#[vars.agentId]"}'
  jsonRpcError:
    code: -32029
holdRequestHeaders: true
"""


@pytest.fixture(scope="module")
def matrix(start_stack: Callable[..., Stack]) -> tuple[AclGateway, Any]:
    from support import Collector, sender

    s = start_stack("mcp_matrix", config="envoy/gateway.yaml", patch=inject_test_identity,
                    filter_configs={"gw_rate_limit": LIMITS,
                                    "gw_audit_sender": sender(batchSize=5, flushIntervalMs=200)})
    return AclGateway(s, {}), Collector(s)


@contextlib.asynccontextmanager
async def client_for(gw: AclGateway, revision: str, agent: str, sent: list[str],
                     monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The official client speaking `revision`; `sent` collects the
    MCP-Protocol-Version header of every request it makes."""
    import httpx2
    import mcp.client.session
    from mcp import Client

    async def record(request: Any) -> None:
        sent.append(request.headers.get("mcp-protocol-version", ""))

    if revision != "2026-07-28":
        # The handshake offers this revision (the server accepts any it knows).
        monkeypatch.setattr(mcp.client.session, "LATEST_HANDSHAKE_VERSION", revision)
    if revision == "2024-11-05":
        from mcp.client.sse import sse_client

        def factory(headers: Any = None, timeout: Any = None, auth: Any = None) -> Any:
            return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, verify=gw.ssl_context(),
                                      event_hooks={"request": [record]})

        transport = sse_client(gw.url("/mcp/sse"), headers=ident(agent), httpx_client_factory=factory)
        async with Client(transport, mode="legacy") as client:
            yield client
        return
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers=ident(agent), verify=gw.ssl_context(), timeout=httpx2.Timeout(30, read=300),
                              event_hooks={"request": [record]})
    async with http:
        transport = streamable_http_client(gw.url("/mcp"), http_client=http)
        mode = "2026-07-28" if revision == "2026-07-28" else "legacy"
        async with Client(transport, mode=mode) as client:
            yield client


def audit_events(collector: Any, agent: str, calls: int) -> list[dict[str, Any]]:
    """`agent`'s audit events with a JSON-RPC method, once `calls` tools/call
    and a tools/list arrived (each worker sends its own batches, so the list's
    event may come after the calls')."""
    deadline = time.monotonic() + 20
    while True:
        got = [e for e in collector.events()
               if (e.get("agent") or {}).get("id") == agent and "jsonrpcMethod" in e]
        done = (sum(e["jsonrpcMethod"] == "tools/call" for e in got) >= calls
                and any(e["jsonrpcMethod"] == "tools/list" for e in got))
        if done or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


@pytest.mark.parametrize("revision", REVISIONS)
def test_revision_is_governed(matrix: tuple[AclGateway, Any], revision: str,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp import MCPError

    gw, collector = matrix
    agent = f"sentinel-{revision}"
    sent: list[str] = []
    gw.upstream_reset()

    async def go() -> str:
        async with client_for(gw, revision, agent, sent, monkeypatch) as client:
            negotiated = client.protocol_version
            # filtered
            tools = await asyncio.wait_for(client.list_tools(), HANG_GUARD_S)
            assert {t.name for t in tools.tools} == SENTINEL
            # allowed
            ok = await asyncio.wait_for(client.call_tool("read_config", {"key": "region"}), HANG_GUARD_S)
            assert not ok.is_error and ok.structured_content["value"] == "eu-west-1"
            # denied (and not counted by the rate limit)
            with pytest.raises(MCPError) as denied:
                await asyncio.wait_for(client.call_tool("execute_code", {"code": "1"}), HANG_GUARD_S)
            assert denied.value.error.code == -32001, denied.value
            assert denied.value.error.data["error"] == "tool_access_denied"
            for tool, args in (("search_patterns", {"query": "map"}), ("classify_content", {"text": "x"})):
                r = await asyncio.wait_for(client.call_tool(tool, args), HANG_GUARD_S)
                assert not r.is_error, r
            # limited: the fourth call of the window
            with pytest.raises(MCPError) as limited:
                await asyncio.wait_for(client.call_tool("read_config", {"key": "region"}), HANG_GUARD_S)
            assert limited.value.error.code == -32029, limited.value
            assert limited.value.error.data["agentId"] == agent
            return negotiated

    negotiated = asyncio.run(go())
    assert negotiated == revision
    if revision != "2024-11-05":
        # every request after the handshake named the revision on the wire
        # (the SSE transport's requests carry none)
        assert sent and all(v == revision for v in sent[1:]), sent
    stats = gw.upstream_stats()
    tools = stats["tools"]
    assert tools.get("execute_code", 0) == 0, stats
    assert (tools.get("read_config"), tools.get("search_patterns"), tools.get("classify_content")) == (1, 1, 1), stats
    # audited: one event per message, with the gateway's decision
    events = audit_events(collector, agent, 5)
    calls = sorted((e["decision"], e.get("toolName")) for e in events if e["jsonrpcMethod"] == "tools/call")
    assert calls == [("allowed", "classify_content"), ("allowed", "read_config"), ("allowed", "search_patterns"),
                     ("rate_limited", "read_config"), ("tool_denied", "execute_code")], events
    lists = [e for e in events if e["jsonrpcMethod"] == "tools/list"]
    assert lists and all(e["decision"] == "allowed" for e in lists), events
