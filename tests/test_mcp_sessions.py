"""Streamable HTTP session features through the gateway, each passing and
governed: the standalone GET stream, `Last-Event-ID` resumption, DELETE of
a session, and server-to-client requests (sampling, elicitation, roots)
whose answers the client POSTs back.

Official SDK client (mcp 2.3.0, handshake mode) and a test server built on
the official SDK (tests/servers/mcp_session_server.py: stateful, with an
event store) behind the shipped envoy/gateway.yaml, both deployments.
Identity: the test-only header of test_tool_acl.py; the recipe's ACL
(sentinel-* may call only read_config here; admin-* everything). What
reached the server is read from its /stats, what was audited from the
example collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gwstack import PYTHON, Stack, free_port
from support import AclGateway, inject_test_identity, ident

pytestmark = pytest.mark.timeout(120)

HANG_GUARD_S = 30


class SessionGateway(AclGateway):
    port: int

    def server_stats(self) -> dict[str, Any]:
        return httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=5).json()

    def events(self, agent: str) -> list[dict[str, Any]]:
        url = self.stack.upstream_url("audit_collector") + "/events"
        return [e for e in httpx.get(url, timeout=5).json()["events"] if (e.get("agent") or {}).get("id") == agent]

    def wait_events(self, agent: str, ok: Any) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 20
        while True:
            got = self.events(agent)
            if ok(got) or time.monotonic() > deadline:
                return got
            time.sleep(0.1)


@pytest.fixture(scope="module")
def gw(wasm_built: Path, run_root: Path) -> Iterator[SessionGateway]:
    from support import sender

    port = free_port()

    def patch(cfg: dict[str, Any]) -> None:
        inject_test_identity(cfg)
        for cluster in cfg["static_resources"]["clusters"]:
            if cluster["name"] == "mcp_upstream":
                cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]

    stack = Stack(run_dir=run_root / "mcp_sessions", config="envoy/gateway.yaml", patch=patch, backends=("audit",),
                  filter_configs={"gw_audit_sender": sender(batchSize=5, flushIntervalMs=200)})
    stack.add_process("mcp_session_server", [PYTHON, "tests/servers/mcp_session_server.py", "--port", str(port)],
                      ready_url=f"http://127.0.0.1:{port}/healthz")
    stack.start()
    try:
        g = SessionGateway(stack, {})
        g.port = port
        yield g
    finally:
        stack.stop()


@contextlib.asynccontextmanager
async def session(gw: SessionGateway, agent: str, wire: list[tuple[str, dict[str, str], int]],
                  **client_kw: Any) -> AsyncIterator[Any]:
    """An official-client session; `wire` gets (method, request headers, status) of every HTTP exchange."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def record(response: Any) -> None:
        wire.append((response.request.method, dict(response.request.headers), response.status_code))

    http = httpx2.AsyncClient(headers=ident(agent), verify=gw.ssl_context(), timeout=httpx2.Timeout(30, read=300),
                              event_hooks={"response": [record]})
    async with http:
        async with Client(streamable_http_client(gw.url("/mcp"), http_client=http), mode="legacy",
                          **client_kw) as client:
            yield client


def test_server_to_client_requests_are_answered_and_governed(gw: SessionGateway) -> None:
    import mcp_types as types
    from mcp import MCPError

    asked: list[str] = []

    async def sampling(context: Any, params: Any) -> Any:
        asked.append("sampling")
        return types.CreateMessageResult(role="assistant", model="test-model",
                                         content=types.TextContent(type="text", text="forty-two"))

    async def elicitation(context: Any, params: Any) -> Any:
        asked.append("elicitation")
        return types.ElicitResult(action="accept", content={"answer": "blue"})

    async def roots(context: Any) -> Any:
        asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    callbacks = {"sampling_callback": sampling, "elicitation_callback": elicitation, "list_roots_callback": roots}
    before = gw.server_stats()
    wire: list[tuple[str, dict[str, str], int]] = []

    async def go() -> None:
        async with session(gw, "admin-s2c", wire, **callbacks) as client:
            r = await asyncio.wait_for(client.call_tool("ask_model", {"prompt": "6*7?"}), HANG_GUARD_S)
            assert r.structured_content == {"answer": "forty-two"}, r
            r = await asyncio.wait_for(client.call_tool("ask_user", {"question": "colour?"}), HANG_GUARD_S)
            assert r.structured_content == {"action": "accept", "answer": "blue"}, r
            r = await asyncio.wait_for(client.call_tool("client_roots", {}), HANG_GUARD_S)
            assert r.structured_content == {"roots": ["file:///work/project"]}, r
        # governed: an agent the ACL does not allow these tools never gets
        # the server's request (the call is refused before the server)
        async with session(gw, "sentinel-s2c", [], **callbacks) as client:
            for tool in ("ask_model", "ask_user", "client_roots"):
                with pytest.raises(MCPError) as err:
                    await asyncio.wait_for(client.call_tool(tool, {"prompt": "x", "question": "x"}), HANG_GUARD_S)
                assert err.value.error.code == -32001

    asyncio.run(go())
    assert asked == ["sampling", "elicitation", "roots"]
    after = gw.server_stats()
    # the three answers reached the server as the client POSTed them
    assert after["client_answers"].get("result", 0) - before["client_answers"].get("result", 0) == 3, after
    for tool in ("ask_model", "ask_user", "client_roots"):
        assert after["tools"][tool] - before["tools"].get(tool, 0) == 1, after
    answers = [w for w in wire if w[0] == "POST" and w[2] == 202]
    assert len(answers) >= 3, wire
    # audited: the answer POSTs too, under the agent that sent them
    events = gw.wait_events("admin-s2c", lambda es: sum(1 for e in es if e.get("status") == 202) >= 3)
    assert sum(1 for e in events if e.get("httpMethod") == "POST" and e.get("status") == 202
               and e["decision"] == "allowed") >= 3, events
    denied = gw.wait_events("sentinel-s2c", lambda es: sum(e["decision"] == "tool_denied" for e in es) >= 3)
    assert sorted(e["toolName"] for e in denied if e["decision"] == "tool_denied") == \
        ["ask_model", "ask_user", "client_roots"], denied


def test_last_event_id_resumption_passes_and_is_audited(gw: SessionGateway) -> None:
    before = gw.server_stats()
    wire: list[tuple[str, dict[str, str], int]] = []
    progress: list[float] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(p)

    async def go() -> None:
        async with session(gw, "admin-resume", wire) as client:
            r = await asyncio.wait_for(client.call_tool("slow_steps", {}, progress_callback=on_progress),
                                       HANG_GUARD_S)
            assert r.structured_content == {"steps": 2}, r

    asyncio.run(go())
    assert progress == [1, 2]
    resumed = [w for w in wire if w[0] == "GET" and "last-event-id" in w[1]]
    assert resumed and all(status == 200 for _, _, status in resumed), wire
    after = gw.server_stats()
    assert after["http"].get("GET+last-event-id", 0) > before["http"].get("GET+last-event-id", 0), after
    assert after["tools"]["slow_steps"] - before["tools"].get("slow_steps", 0) == 1
    events = gw.wait_events("admin-resume", lambda es: any(e.get("httpMethod") == "GET" for e in es))
    assert any(e.get("httpMethod") == "GET" and e["decision"] == "allowed" for e in events), events


def test_standalone_get_stream_and_delete(gw: SessionGateway) -> None:
    before = gw.server_stats()
    wire: list[tuple[str, dict[str, str], int]] = []

    async def go() -> None:
        got = asyncio.Event()

        async def handler(message: Any) -> None:
            import mcp_types as types

            root = getattr(message, "root", message)
            if isinstance(root, types.ToolListChangedNotification):
                got.set()

        async with session(gw, "admin-get", wire, message_handler=handler) as client:
            r = await asyncio.wait_for(client.call_tool("announce", {}), HANG_GUARD_S)
            assert r.structured_content == {"announced": True}
            await asyncio.wait_for(got.wait(), HANG_GUARD_S)

    asyncio.run(go())
    gets = [w for w in wire if w[0] == "GET" and "last-event-id" not in w[1]]
    assert gets and gets[0][2] == 200, wire
    deletes = [w for w in wire if w[0] == "DELETE"]
    assert deletes and deletes[0][2] in (200, 204), wire
    assert deletes[0][1].get("mcp-session-id"), deletes
    after = gw.server_stats()
    # the DELETE reached the server (which ends the session)
    assert after["http"].get("DELETE", 0) - before["http"].get("DELETE", 0) >= 1, after
    # (the GET's event is written when its stream ends, after the DELETE;
    # events reach the collector in batches per worker, so the POSTs'
    # events may arrive after the GET's and DELETE's: wait for all three)
    expected = {"GET", "DELETE", "POST"}
    events = gw.wait_events("admin-get", lambda es: expected <= {e.get("httpMethod") for e in es})
    methods = {e.get("httpMethod") for e in events}
    assert expected <= methods, events


def test_server_to_client_requests_on_the_2024_11_05_transport(gw: SessionGateway) -> None:
    """The same on the HTTP+SSE transport: the server's request arrives on
    the GET stream, the client POSTs its answer to the messages URL."""
    import httpx2
    import mcp_types as types
    from mcp import Client, MCPError
    from mcp.client.sse import sse_client

    asked: list[str] = []

    async def sampling(context: Any, params: Any) -> Any:
        asked.append("sampling")
        return types.CreateMessageResult(role="assistant", model="test-model",
                                         content=types.TextContent(type="text", text="forty-two"))

    async def roots(context: Any) -> Any:
        asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/legacy", name="legacy")])

    def factory(headers: Any = None, timeout: Any = None, auth: Any = None) -> Any:
        return httpx2.AsyncClient(headers=headers, timeout=timeout, auth=auth, verify=gw.ssl_context())

    def legacy_client(agent: str) -> Any:
        return Client(sse_client(gw.url("/mcp/sse"), headers=ident(agent), httpx_client_factory=factory),
                      mode="legacy", sampling_callback=sampling, list_roots_callback=roots)

    before = gw.server_stats()

    async def go() -> None:
        async with legacy_client("admin-legacy-s2c") as client:
            r = await asyncio.wait_for(client.call_tool("ask_model", {"prompt": "6*7?"}), HANG_GUARD_S)
            assert r.structured_content == {"answer": "forty-two"}, r
            r = await asyncio.wait_for(client.call_tool("client_roots", {}), HANG_GUARD_S)
            assert r.structured_content == {"roots": ["file:///work/legacy"]}, r
        async with legacy_client("sentinel-legacy-s2c") as client:
            with pytest.raises(MCPError) as err:
                await asyncio.wait_for(client.call_tool("ask_model", {"prompt": "x"}), HANG_GUARD_S)
            assert err.value.error.code == -32001

    asyncio.run(go())
    assert asked == ["sampling", "roots"]
    after = gw.server_stats()
    answers = after["client_answers"].get("legacy result", 0) - before["client_answers"].get("legacy result", 0)
    assert answers == 2, after
    assert after["tools"]["ask_model"] - before["tools"].get("ask_model", 0) == 1, after
    events = gw.wait_events("admin-legacy-s2c", lambda es: sum(
        1 for e in es if e.get("httpMethod") == "POST" and "jsonrpcMethod" not in e) >= 2)
    assert sum(1 for e in events if e.get("httpMethod") == "POST" and "jsonrpcMethod" not in e
               and e["decision"] == "allowed") >= 2, events
