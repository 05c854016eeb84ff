"""Connect to the gateway with the official MCP Python SDK (mcp 2.x).

    GATEWAY_URL=https://localhost:8443 GATEWAY_CA=.run/certs/ca.crt \
    AGENT_API_KEY=gw-demo-sentinel-1 .venv/bin/python examples/clients/mcp_python.py

The gateway authenticates the key, filters tools/list to what this agent may
call, refuses the other tools and rate-limits calls; the client needs nothing
but the key header (and to trust the demo's self-signed CA).
"""

import asyncio
import os
import ssl

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

URL = os.environ.get("GATEWAY_URL", "https://localhost:8443")
CA = os.environ.get("GATEWAY_CA", ".run/certs/ca.crt")
KEY = os.environ.get("AGENT_API_KEY", "gw-demo-sentinel-1")


async def main() -> None:
    tls = ssl.create_default_context(cafile=CA)  # the demo's CA; drop cafile for a public certificate
    http = httpx2.AsyncClient(headers={"x-agent-api-key": KEY}, verify=tls, timeout=httpx2.Timeout(30, read=300))
    async with http, Client(streamable_http_client(f"{URL}/mcp", http_client=http)) as client:
        tools = await client.list_tools()
        print("tools:", ", ".join(sorted(t.name for t in tools.tools)))
        result = await client.call_tool("search_patterns", {"query": "map"})
        print("search_patterns:", result.structured_content)
        try:
            await client.call_tool("execute_code", {"code": "print(1)"})
        except MCPError as e:  # a tool this agent may not call: JSON-RPC error, session intact
            print("execute_code:", e.error.code, e.error.message)


asyncio.run(main())
