"""Session affinity: an MCP server run as two stateful replicas behind the
shipped gateway (envoy/gateway.yaml's `stateful_session` filter, envelope
state on `Mcp-Session-Id`).

Two example servers (`--stateful`: each keeps its sessions in its own
process and answers 404 to a session id it did not issue) are the two
endpoints of the `mcp_upstream` cluster. Official clients, each on its own
connections (so both Envoy workers carry sessions), run whole sessions:
initialize, the standalone GET stream, tools/list, several tools/call,
DELETE. Every request of every session must land on the replica that issued
its id: each replica counts requests carrying an id it did not issue
(`session_foreign`), which must stay 0, and every tool result names the
replica that ran it. Identity: the test-only header of test_tool_acl.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import WORKERS
from gwstack import PYTHON, Stack, free_port
from support import SENTINEL, AclGateway, inject_test_identity, ident

pytestmark = pytest.mark.timeout(120)

REPLICAS = ("replica-a", "replica-b")


@pytest.fixture(scope="module")
def gw(wasm_built: Path, run_root: Path) -> Iterator[tuple[AclGateway, dict[str, int]]]:
    ports = {name: free_port() for name in REPLICAS}

    def patch(cfg: dict[str, Any]) -> None:
        inject_test_identity(cfg)
        for cluster in cfg["static_resources"]["clusters"]:
            if cluster["name"] == "mcp_upstream":
                cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}
                    for p in ports.values()]}]

    stack = Stack(run_dir=run_root / "mcp_affinity", workers=max(WORKERS, 2), config="envoy/gateway.yaml",
                  patch=patch, backends=("audit",))
    for name, port in ports.items():
        stack.add_process(name, [PYTHON, "-m", "examples.mcp_server.server", "--port", str(port), "--stateful",
                                 "--replica", name], ready_url=f"http://127.0.0.1:{port}/healthz")
    stack.start()
    try:
        yield AclGateway(stack, {}), ports
    finally:
        stack.stop()


def replica_stats(port: int) -> dict[str, Any]:
    return httpx.get(f"http://127.0.0.1:{port}/stats", timeout=5).json()


def worker_connections(gw: AclGateway) -> list[int]:
    """Downstream connections each Envoy worker accepted on the gateway listener."""
    out = []
    for line in gw.admin("/stats?filter=^listener\\..*\\.worker_[0-9]+\\.downstream_cx_total$").splitlines():
        name, _, value = line.partition(": ")
        if "admin" not in name:
            out.append(int(value))
    return out


def test_every_request_of_a_session_stays_on_the_replica_that_issued_it(
        gw: tuple[AclGateway, dict[str, int]]) -> None:
    acl, ports = gw
    before_cx = worker_connections(acl)
    calls_per_session = 4

    async def session(i: int) -> tuple[set[str], str]:
        agent = "sentinel-1" if i % 2 else "admin-1"
        async with acl.mcp_client(headers=ident(agent)) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert SENTINEL <= names
            served = set()
            for _ in range(calls_per_session):
                tool = "read_config" if agent == "sentinel-1" else "whoami"
                r = await client.call_tool(tool, {"key": "region"} if tool == "read_config" else {})
                assert not r.is_error, r
                served.add((r.structured_content or {}).get("replica", "sentinel"))
            return served, agent

    async def all_sessions() -> list[tuple[set[str], str]]:
        # one at a time: each client opens its own connections, which Envoy's
        # listener hands to either worker
        return [await session(i) for i in range(8)]

    results = asyncio.run(all_sessions())
    for served, agent in results:
        if agent == "admin-1":
            assert len(served) == 1 and served <= set(REPLICAS), results
    stats = {name: replica_stats(port) for name, port in ports.items()}
    for name, st in stats.items():
        assert st["http"].get("session_foreign", 0) == 0, (name, st)
    # both replicas issued sessions and served requests of their own sessions
    assert all(st["sessions"] > 0 and st["http"].get("session_own", 0) > 0 for st in stats.values()), stats
    own = sum(st["http"].get("session_own", 0) for st in stats.values())
    # per session at least: tools/list, the calls, the initialized notification
    assert own >= 8 * (calls_per_session + 2), stats
    # both Envoy workers carried connections of these sessions
    after_cx = worker_connections(acl)
    assert len(after_cx) >= 2 and all(a > b for a, b in zip(after_cx, before_cx)), (before_cx, after_cx)


def test_the_client_sees_an_enveloped_id_the_server_its_own(gw: tuple[AclGateway, dict[str, int]]) -> None:
    """Raw: the id the client gets carries the replica; sent back, Envoy
    strips it and routes to that replica, which knows the session."""
    acl, ports = gw
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "affinity", "version": "0"}}}
    hdrs = ident("admin-1") | {"accept": "application/json, text/event-stream"}
    with acl.http(hdrs) as c:
        r = c.post("/mcp", json=init)
        assert r.status_code == 200, r.text
        sid = r.headers["mcp-session-id"]
    for i in range(6):
        with acl.http(hdrs | {"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}) as c:
            r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                                     "params": {"name": "whoami", "arguments": {}}})
            assert r.status_code == 200, r.text
    stats = [replica_stats(p) for p in ports.values()]
    assert all(st["http"].get("session_foreign", 0) == 0 for st in stats), stats
