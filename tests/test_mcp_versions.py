"""MCP protocol version pinning (tool ACL `protocolVersions`).

The stack here accepts only 2025-06-18 and 2026-07-28. Requests naming any
other revision (the `MCP-Protocol-Version` header, or `initialize`'s
`protocolVersion`) get the protocol's error from the gateway and never reach
the upstream: checked with the example server's method counters and Envoy's
count of upstream requests. Identity: the test-only header of test_tool_acl.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from gwstack import Stack
from support import SENTINEL, AclGateway, inject_test_identity, ident, listed, shipped_acl_config

pytestmark = pytest.mark.timeout(120)

PINNED = ["2025-06-18", "2026-07-28"]
ACCEPT = {"accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def gw(start_stack: Callable[..., Stack]) -> AclGateway:
    cfg = shipped_acl_config() | {"protocolVersions": PINNED}
    return AclGateway(start_stack("mcp_versions", config="envoy/gateway.yaml", patch=inject_test_identity,
                                  filter_configs={"gw_tool_acl": cfg}), {})


def mcp_error(exc: BaseException) -> Any:
    """The MCPError the client raised (anyio wraps it in exception groups)."""
    from mcp import MCPError

    if isinstance(exc, MCPError):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        if (found := mcp_error(inner)) is not None:
            return found
    return None


def initialize(version: Any, id_: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {},
                       "clientInfo": {"name": "pin-test", "version": "0"}}}


def test_official_client_offering_an_unlisted_version_gets_the_protocol_error(gw: AclGateway) -> None:
    """mcp 2.3.0's handshake client offers 2025-11-25: refused with -32602
    and the supported list; the upstream never sees the initialize."""
    gw.upstream_reset()
    before = gw.upstream_requests("mcp_upstream")

    async def connect() -> None:
        async with gw.mcp_client(headers=ident("sentinel-1"), mode="legacy") as client:
            await client.list_tools()

    with pytest.raises(BaseException) as raised:
        asyncio.run(connect())
    err = mcp_error(raised.value)
    assert err is not None, raised.value
    assert err.error.code == -32602, err
    assert err.error.data == {"supported": PINNED, "requested": "2025-11-25"}
    assert gw.upstream_requests("mcp_upstream") == before
    assert gw.upstream_count("initialize") == 0, gw.upstream_stats()


def test_official_client_on_a_listed_version_works(gw: AclGateway) -> None:
    """The 2026-07-28 client (server/discover, MCP-Protocol-Version on every
    request) is listed: it lists its tools, filtered as usual."""
    async def names() -> set[str]:
        async with gw.mcp_client(headers=ident("sentinel-1"), mode="auto") as client:
            return {t.name for t in (await client.list_tools()).tools}

    assert asyncio.run(names()) == SENTINEL


def test_raw_initialize_listed_and_unlisted(gw: AclGateway) -> None:
    gw.upstream_reset()
    with gw.http(ident("sentinel-1") | ACCEPT) as c:
        r = c.post("/mcp", json=initialize("2024-11-05", "old"))
        assert r.status_code == 200, r.text
        assert r.json()["id"] == "old" and r.json()["error"]["code"] == -32602
        assert r.json()["error"]["data"]["requested"] == "2024-11-05"
        assert r.headers.get("x-test-decision") == "bad_request"
        for bad in (None, 20250618):
            assert c.post("/mcp", json=initialize(bad)).json()["error"]["code"] == -32602
        assert gw.upstream_count("initialize") == 0
        ok = c.post("/mcp", json=initialize("2025-06-18"))
        assert ok.status_code == 200 and "result" in ok.text, ok.text
        assert gw.upstream_count("initialize") == 1


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_unlisted_protocol_version_header_is_400_before_the_upstream(gw: AclGateway, method: str) -> None:
    gw.upstream_reset()
    before = gw.upstream_requests("mcp_upstream")
    body = {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}
    with gw.http(ident("sentinel-1") | ACCEPT) as c:
        for version in ("2025-11-25", "2024-11-05", "1999-01-01"):
            kw: dict[str, Any] = {"json": body} if method == "POST" else {}
            r = c.request(method, "/mcp", headers={"mcp-protocol-version": version}, **kw)
            assert r.status_code == 400, (version, r.status_code, r.text)
            err = r.json()["error"]
            assert err["code"] == -32022 and err["data"] == {"supported": PINNED, "requested": version}
            if method == "POST":
                assert r.json()["id"] is None  # refused before the body is read
    assert gw.upstream_requests("mcp_upstream") == before
    assert gw.upstream_count("tools/list") == 0
    if method == "POST":
        # the same request on a listed version goes through, filtered
        with gw.http(ident("sentinel-1") | ACCEPT) as c:
            r = c.post("/mcp", json=body, headers={"mcp-protocol-version": "2025-06-18"})
            assert r.status_code == 200 and listed(r) == SENTINEL
        assert gw.upstream_requests("mcp_upstream") > before


def test_no_header_means_2025_03_26_which_is_not_listed(gw: AclGateway) -> None:
    """The transport spec: a server without the header assumes 2025-03-26.
    Leaving the header out cannot dodge the pin (initialize aside)."""
    gw.upstream_reset()
    with gw.http(ident("admin-1") | ACCEPT) as c:
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                                 "params": {"name": "read_config", "arguments": {"key": "region"}}})
        assert r.status_code == 400, r.text
        assert r.json()["id"] == 5 and r.json()["error"]["data"]["requested"] == "2025-03-26"
    assert gw.upstream_stats()["methods"] == {}
    assert gw.counter("protocol_version_refused") > 0
