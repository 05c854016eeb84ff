"""The ready client configs and snippets of examples/clients/, each used
against the running gateway as a user would: the mcp.json entries through the
official MCP client, the recipe's registration JSON's endpoint and tools,
and the Python snippets run as they are."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from conftest import Gateway
from gwstack import ROOT, filter_configuration
from gwstack.support import run

CLIENTS = ROOT / "examples" / "clients"
DEMO_BASE = "https://localhost:8443"
SENTINEL_TOOLS = {"search_patterns", "classify_content", "read_config"}


def on_gateway(url: str, gateway: Gateway) -> str:
    """The demo URL a config names, moved to the test gateway's port."""
    assert url.startswith(DEMO_BASE + "/"), url
    return gateway.base_url + url[len(DEMO_BASE):]


def mcp_upstream(gateway: Gateway) -> dict[str, int]:
    return gateway.upstream_stats("mcp_upstream")["tools"]


async def use_entry(gateway: Gateway, url: str, headers: dict[str, str]) -> tuple[set[str], dict[str, Any]]:
    """Connect the official MCP client with exactly a config's URL and headers."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers=headers, verify=gateway.ssl_context(), timeout=30)
    async with http, Client(streamable_http_client(on_gateway(url, gateway), http_client=http)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        r = await client.call_tool("search_patterns", {"query": "map"})
        return tools, r.structured_content


def test_mcp_json_entry_connects_through_the_gateway(gateway: Gateway) -> None:
    entry = json.loads((CLIENTS / "mcp.json").read_text())["mcpServers"]["gateway"]
    assert entry["type"] == "http" and urlsplit(entry["url"]).path == "/mcp"
    before = mcp_upstream(gateway).get("search_patterns", 0)
    tools, result = run(use_entry(gateway, entry["url"], entry["headers"]))
    assert tools == SENTINEL_TOOLS  # the gateway filtered tools/list for the key's agent
    assert result["verified"]["agentId"] == "sentinel-1"  # what the MCP server received
    assert mcp_upstream(gateway)["search_patterns"] == before + 1


def test_vscode_entry_is_the_same_server_with_a_prompted_key(gateway: Gateway) -> None:
    doc = json.loads((CLIENTS / "vscode-mcp.json").read_text())
    entry = doc["servers"]["gateway"]
    same = json.loads((CLIENTS / "mcp.json").read_text())["mcpServers"]["gateway"]
    assert entry["type"] == "http" and entry["url"] == same["url"]
    [(header, value)] = entry["headers"].items()
    [prompt] = doc["inputs"]
    assert value == f"${{input:{prompt['id']}}}" and prompt["password"] is True
    # what the editor sends once the user typed the demo key
    tools, result = run(use_entry(gateway, entry["url"], {header: "gw-demo-sentinel-1"}))
    assert tools == SENTINEL_TOOLS and result["verified"]["agentId"] == "sentinel-1"


def test_recipe_registration_points_at_the_gateway(gateway: Gateway) -> None:
    """Section 6 of the recipe: the endpoint is the gateway's /mcp, the header
    is the one the shipped identity filter reads, and every registered tool is
    served behind it with the registered schema."""
    reg = json.loads((CLIENTS / "mcp-registration.json").read_text())["mcpServer"]
    identity = yaml.safe_load(filter_configuration(ROOT / "envoy/gateway.yaml", "gw_identity"))
    assert reg["authentication"] == {"type": "apiKey", "header": identity["authMethods"][0]["headerName"]}
    assert urlsplit(reg["endpoint"]).path == "/mcp"

    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    with gateway.http({"accept": "application/json, text/event-stream",
                       reg["authentication"]["header"]: "gw-demo-admin-1"}) as c:
        r = c.post(on_gateway(reg["endpoint"], gateway), json=body)
        served = {t["name"]: t for t in jsonrpc_result(r)["tools"]}
        for tool in reg["tools"]:
            schema, got = tool["inputSchema"], served[tool["name"]]["inputSchema"]
            assert set(got["properties"]) == set(schema["properties"]), tool["name"]
            assert set(got.get("required", [])) == set(schema["required"]), tool["name"]
        before = mcp_upstream(gateway).get("deploy_application", 0)
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "deploy_application", "arguments": {"appName": "orders", "environment": "dev"}}}
        r = c.post(on_gateway(reg["endpoint"], gateway), json=call)
        assert jsonrpc_result(r)["structuredContent"]["status"] == "deployed", r.text
    assert mcp_upstream(gateway)["deploy_application"] == before + 1


def jsonrpc_result(r: httpx.Response) -> Any:
    """The JSON-RPC answer, sent as JSON or as one SSE event."""
    assert r.status_code == 200, r.text
    if r.headers["content-type"].startswith("text/event-stream"):
        [data] = [line[5:] for line in r.text.splitlines() if line.startswith("data:")]
        return json.loads(data)["result"]
    return r.json()["result"]


def snippet(gateway: Gateway, name: str, key: str) -> str:
    env = {**os.environ, "GATEWAY_URL": gateway.base_url, "GATEWAY_CA": str(gateway.ca_path), "AGENT_API_KEY": key}
    proc = subprocess.run([sys.executable, str(CLIENTS / name)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_mcp_python_snippet_runs(gateway: Gateway) -> None:
    before = mcp_upstream(gateway)
    out = snippet(gateway, "mcp_python.py", "gw-demo-sentinel-1")
    assert "tools: classify_content, read_config, search_patterns\n" in out
    assert "'agentId': 'sentinel-1'" in out
    assert "execute_code: -32001 Agent 'sentinel-1' is not authorized to invoke tool 'execute_code'" in out
    after = mcp_upstream(gateway)
    assert after["search_patterns"] == before.get("search_patterns", 0) + 1
    assert after.get("execute_code", 0) == before.get("execute_code", 0)  # the denied call never arrived


def test_a2a_python_snippet_runs(gateway: Gateway) -> None:
    a2a = gateway.stack.upstream_url("a2a_upstream") + "/stats"
    before = httpx.get(a2a, timeout=5).json()["executions"]
    out = snippet(gateway, "a2a_python.py", "gw-demo-admin-1")
    assert f"at {gateway.a2a_url}" in out  # the card sends the client back through the gateway
    assert "sent: TASK_STATE_COMPLETED done: hello" in out
    streamed = [line for line in out.splitlines() if line.startswith("streamed:")]
    assert streamed.count("streamed: TASK_STATE_WORKING") == 3 and streamed[-1] == "streamed: TASK_STATE_COMPLETED"
    assert httpx.get(a2a, timeout=5).json()["executions"] == before + 2
