"""The per-protocol instances (envoy/mcp-only.yaml, envoy/a2a-only.yaml) run on
their own, and the stack API used by later tests (extra processes, filter
configuration overrides, several Envoys side by side on free ports) works."""

from __future__ import annotations

from typing import Any, Callable

import httpx
import pytest

from gwstack import PYTHON, Stack, free_port


def _client(s: Stack) -> httpx.Client:
    import ssl

    from conftest import DEMO_KEYS

    # the identity filter requires a credential: the demo key of admin-1
    return httpx.Client(base_url=s.base_url, verify=ssl.create_default_context(cafile=str(s.ca_path)), timeout=30,
                        headers={"x-agent-api-key": DEMO_KEYS["admin-1"]})


@pytest.mark.timeout(120)
def test_mcp_only_instance(start_stack: Callable[..., Stack]) -> None:
    s = start_stack("mcp_only", config="envoy/mcp-only.yaml", workers=1,
                    filter_configs={"gw_audit": {}})  # override path exercised
    assert "a2a_upstream" not in s.ports
    with _client(s) as c:
        r = c.post("/mcp/tools/list", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                   headers={"accept": "application/json, text/event-stream"})
        assert r.status_code == 200 and "generate_video" in r.text
        assert c.get("/.well-known/agent-card.json").status_code == 404
    assert "gw_audit" in s.rendered.read_text()


@pytest.mark.timeout(120)
def test_a2a_only_instance_with_extra_process(gateway: Any) -> None:
    """Stack used directly (not via start_stack) with an extra process; the
    default gateway runs at the same time on other ports."""
    port = free_port()
    s = Stack(config="envoy/a2a-only.yaml", workers=1, run_dir=gateway.stack.run_dir.parent / "a2a_only")
    s.add_process("extra_http", [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                  ready_url=f"http://127.0.0.1:{port}/")
    try:
        s.start()
        assert s.gateway_port != gateway.stack.gateway_port  # never two Envoys on one port
        with _client(s) as c:
            assert c.get("/.well-known/agent-card.json").json()["name"] == "gateway-example-agent"
            # No MCP route on the A2A instance. (A POST with a body would be
            # judged by the rate limit first, which holds headers until it has
            # read the body: `{}` is not JSON-RPC, so 400 before any routing.)
            assert c.get("/mcp").status_code == 404
            assert c.post("/mcp", json={}).status_code == 400
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
    finally:
        s.stop()
    assert all(not p.alive() for p in s.procs)
