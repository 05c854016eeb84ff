"""Envoy-side protections the shipped configs turn on (docs in SECURITY.md)."""

from __future__ import annotations

import json
import pytest
import yaml

from conftest import DEMO_KEYS, ROOT, Gateway

pytestmark = pytest.mark.timeout(60)

MCP_HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25",
               "x-agent-api-key": DEMO_KEYS["sentinel-1"]}


def test_underscore_spelling_of_a_verified_header_is_refused(gateway: Gateway) -> None:
    """x_verified_agent_id is X-Verified-Agent-Id to an upstream that maps
    '_' and '-' alike; the identity filter strips only the dashed names, so
    Envoy refuses underscores in header names outright."""
    before = gateway.upstream_stats()["tools"].get("read_config", 0)
    with gateway.http(MCP_HEADERS) as c:
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                 "params": {"name": "read_config", "arguments": {"key": "region"}}},
                   headers={"x_verified_agent_id": "admin-1"})
        assert r.status_code == 400, r.text[:200]
        ok = c.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                  "params": {"name": "read_config", "arguments": {"key": "region"}}})
    assert ok.status_code == 200
    data = [line[5:] for line in ok.text.splitlines() if line.startswith("data:")]
    message = json.loads(data[-1]) if data else ok.json()
    verified = message["result"]["structuredContent"]["verified"]
    assert verified["agentId"] == "sentinel-1", verified
    assert gateway.upstream_stats()["tools"].get("read_config", 0) == before + 1


@pytest.mark.parametrize("name", ["gateway.yaml", "mcp-only.yaml", "a2a-only.yaml",
                                  "four-modules/gateway.yaml", "four-modules/mcp-only.yaml",
                                  "four-modules/a2a-only.yaml", "compose/gateway.yaml",
                                  "compose/four-modules.yaml"])
def test_shipped_configs_bound_requests_and_streams(name: str) -> None:
    cfg = yaml.safe_load((ROOT / "envoy" / name).read_text())
    hcms = []

    def visit(node: object) -> None:
        if isinstance(node, dict):
            if "stat_prefix" in node and "route_config" in node:
                hcms.append(node)
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(cfg)
    assert hcms
    for hcm in hcms:
        assert hcm["request_headers_timeout"] and hcm["request_timeout"] not in ("0s", None)
        assert hcm["common_http_protocol_options"]["headers_with_underscores_action"] == "REJECT_REQUEST"
        assert hcm["http2_protocol_options"]["max_concurrent_streams"] <= 100
    # every filter that may hold headers keeps its body callbacks running
    # (else a large body behind a slow key check hangs instead of 413)
    holders = []

    def wasm(node: object) -> None:
        if isinstance(node, dict):
            if str(node.get("@type", "")).endswith("filters.http.wasm.v3.Wasm"):
                holders.append(node["config"])
            for v in node.values():
                wasm(v)
        elif isinstance(node, list):
            for v in node:
                wasm(v)

    wasm(cfg)
    for plugin in holders:
        if plugin["root_id"] in ("gw_identity", "gw_tool_acl", "gw_rate_limit", "gw_gateway"):
            assert plugin.get("allow_on_headers_stop_iteration") is True, (name, plugin["root_id"])
    monitors = cfg["overload_manager"]["resource_monitors"]
    assert any(m["name"].endswith("global_downstream_max_connections") for m in monitors)
