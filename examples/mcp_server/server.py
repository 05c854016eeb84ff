"""Example MCP tool server behind the gateway (official `mcp` Python SDK, 2.x).

Streamable HTTP transport at `/mcp` (and the 2024-11-05 HTTP+SSE transport
at `/mcp/sse`, messages to `/mcp/messages/`), stateless by default: every POST is
self-contained, so it works behind a proxy with many workers and survives
gateway restarts. `--stateful` makes it a stateful server instead (it issues
`Mcp-Session-Id`s and keeps each session in this process: requests of a
session must come back here, see docs/mcp.md "Session affinity"), and
`--replica NAME` names this process in tool results and `/stats`.
The SDK answers both handshake-era clients (`initialize`, 2025-xx revisions)
and 2026-07-28 clients (`server/discover`, `Mcp-Method` headers) on the same
endpoint.

Tools are the recipe's tool names with small, deterministic results. Things the
gateway tests rely on:

* every tool result carries `structuredContent.verified` = the
  `X-Verified-Agent-Id/Name/Owner` headers this server received (and `whoami`
  returns only that), so tests can prove what the gateway injected or stripped;
* `generate_video` sends progress notifications, so its reply is an SSE stream;
* `execute_code` returns `isError: true` when the code contains "raise";
* `announce_tools_changed` sends `notifications/tools/list_changed` on its
  reply stream (SSE), so tests can prove gateway caches drop the tool list;
* with `--stateful`, `/stats` "http" counts `session_own` / `session_foreign`:
  requests carrying an `Mcp-Session-Id` this process issued, or did not
  (a request of a session routed to the wrong replica);
* `GET /stats` returns counters of the JSON-RPC methods and tools served
  (e.g. `methods["tools/list"]`), so tests can prove gateway-side caching;
  `POST /stats/reset` zeroes them;
* `GET /requests?since=N` lists every request that reached this server
  (headers, first 16 KiB of the body, whether the body ended), recorded as it
  arrives, so tests can prove what the gateway let through, even requests
  the SDK refuses.

Run, from the repository root (it imports examples/recording.py):
  python -m examples.mcp_server.server --port 3000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import logging
import threading
from typing import Any, Literal

import mcp_types as types
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from examples.recording import RecordingMiddleware

log = logging.getLogger("example-mcp")

VERIFIED_HEADERS = {
    "agentId": "x-verified-agent-id",
    "agentName": "x-verified-agent-name",
    "agentOwner": "x-verified-agent-owner",
}

# ---------------------------------------------------------------- counters
_lock = threading.Lock()
_methods: collections.Counter[str] = collections.Counter()
_tools: collections.Counter[str] = collections.Counter()
_http: collections.Counter[str] = collections.Counter()
# Mcp-Session-Ids this process issued (--stateful), and its name (--replica).
_sessions: set[str] = set()
REPLICA = {"name": ""}


def _count(counter: collections.Counter[str], key: str) -> None:
    with _lock:
        counter[key] += 1


class CountingMiddleware:
    """SDK context-tier middleware: sees every inbound JSON-RPC method."""

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        method = getattr(ctx, "method", None) or "?"
        _count(_methods, method)
        if method == "tools/call":
            params = getattr(ctx, "params", None) or {}
            name = params.get("name") if isinstance(params, dict) else getattr(params, "name", None)
            _count(_tools, str(name))
        return await call_next(ctx)


# ---------------------------------------------------------------- server
mcp = MCPServer(
    name="gateway-example-tools",
    version="0.1.0",
    instructions="Example tools behind the MCP/A2A gateway. Deterministic results.",
    middleware=[CountingMiddleware()],
)


def _verified(ctx: Context) -> dict[str, str | None]:
    headers = ctx.headers or {}
    lower = {k.lower(): v for k, v in headers.items()}
    return {key: lower.get(header) for key, header in VERIFIED_HEADERS.items()}


def _result(ctx: Context, tool: str, **data: Any) -> dict[str, Any]:
    """Tool result: JSON text content + the same dict as structuredContent."""
    return {"tool": tool, **data, "verified": _verified(ctx)}


@mcp.tool(description="Echo the X-Verified-Agent-* headers this server received from the gateway.")
def whoami(ctx: Context) -> dict[str, Any]:
    return {"verified": _verified(ctx), "requestHeaders": sorted((ctx.headers or {}).keys()),
            "replica": REPLICA["name"]}


@mcp.tool(description="Search DataWeave patterns by keyword or category")
def search_patterns(query: str, ctx: Context, category: str | None = None) -> dict[str, Any]:
    catalog = ["map-object", "filter-array", "group-by", "reduce-sum", "pluck-keys", "join-arrays"]
    hits = [p for p in catalog if query.lower() in p or (category and category.lower() in p)]
    return _result(ctx, "search_patterns", query=query, category=category, matches=hits)


@mcp.tool(description="Classify a piece of text into a coarse content category")
def classify_content(text: str, ctx: Context) -> dict[str, Any]:
    lowered = text.lower()
    label = "code" if any(t in lowered for t in ("def ", "function", "{", ";")) else "prose"
    return _result(ctx, "classify_content", label=label, length=len(text))


@mcp.tool(description="Read a named configuration value")
def read_config(key: str, ctx: Context) -> dict[str, Any]:
    values = {"region": "eu-west-1", "replicas": "3", "log_level": "info"}
    return _result(ctx, "read_config", key=key, value=values.get(key))


@mcp.tool(description="Execute a code snippet (simulated). Returns isError=true if the code contains 'raise'.")
def execute_code(code: str, ctx: Context, language: str = "python") -> dict[str, Any]:
    if "raise" in code:
        # ToolError makes the SDK answer a normal result with isError=true and this text.
        raise ToolError(f"execution failed: {code!r} raised")
    digest = hashlib.sha256(code.encode()).hexdigest()[:12]
    return _result(ctx, "execute_code", language=language, exitCode=0, outputDigest=digest)


@mcp.tool(description="Write a file (simulated, nothing touches the disk)")
def write_file(path: str, content: str, ctx: Context) -> dict[str, Any]:
    return _result(ctx, "write_file", path=path, bytesWritten=len(content.encode()))


@mcp.tool(description="Generate a video from a prompt; streams progress notifications (reply is SSE)")
async def generate_video(prompt: str, ctx: Context, steps: int = 3, delay_ms: int = 50) -> dict[str, Any]:
    steps = max(1, min(steps, 50))
    for i in range(1, steps + 1):
        await ctx.report_progress(progress=i, total=steps, message=f"rendering frame batch {i}/{steps}")
        await asyncio.sleep(max(0, min(delay_ms, 10_000)) / 1000)
    return _result(ctx, "generate_video", prompt=prompt, frames=steps * 24, uri="video://" + hashlib.sha256(prompt.encode()).hexdigest()[:8])


@mcp.tool(description="Render a 3D scene by id")
def render_scene(scene_id: str, ctx: Context, quality: Literal["draft", "final"] = "draft") -> dict[str, Any]:
    return _result(ctx, "render_scene", sceneId=scene_id, quality=quality, uri=f"render://{scene_id}/{quality}")


@mcp.tool(description="Read a named template")
def read_template(name: str, ctx: Context) -> dict[str, Any]:
    return _result(ctx, "read_template", name=name, body=f"<template name={name!r}/>")


@mcp.tool(description="Delete a scene by id (simulated)")
def delete_scene(scene_id: str, ctx: Context) -> dict[str, Any]:
    return _result(ctx, "delete_scene", sceneId=scene_id, deleted=True)


@mcp.tool(description="Deploy a Mule application to CloudHub 2.0 (simulated)")
def deploy_application(
    appName: str,  # noqa: N803 - the recipe's schema uses camelCase
    environment: Literal["dev", "staging", "prod"],
    ctx: Context,
    runtimeVersion: str | None = None,  # noqa: N803
) -> dict[str, Any]:
    return _result(
        ctx,
        "deploy_application",
        appName=appName,
        environment=environment,
        runtimeVersion=runtimeVersion or "4.9.0",
        status="deployed",
    )


@mcp.tool(description="Announce that the tool list changed (sends notifications/tools/list_changed)")
async def announce_tools_changed(ctx: Context) -> dict[str, Any]:
    # Request-scoped, so a stateless server sends it on this reply's stream
    # (connection-wide notifications have no channel without a session).
    await ctx.session.send_notification(types.ToolListChangedNotification(), related_request_id=ctx.request_id)
    return _result(ctx, "announce_tools_changed", announced=True)


@mcp.resource("config://gateway-example", description="Static example resource")
def example_resource() -> str:
    return json.dumps({"example": True})


@mcp.resource("scene://default", description="A second resource, outside config:// (ACL tests)")
def scene_resource() -> str:
    return json.dumps({"scene": "default"})


@mcp.prompt(description="Summarize a text (ACL tests: allowed by summarize_*)")
def summarize_text(text: str) -> str:
    return f"Summarize: {text}"


@mcp.prompt(description="Draft an e-mail (ACL tests: not allowed by summarize_*)")
def draft_email(subject: str) -> str:
    return f"Draft an e-mail about {subject}"


@mcp.custom_route("/stats", methods=["GET"])
async def stats(request: Request) -> Response:
    _count(_http, "GET /stats")
    with _lock:
        body = {"methods": dict(_methods), "tools": dict(_tools), "http": dict(_http),
                "replica": REPLICA["name"], "sessions": len(_sessions)}
    return JSONResponse(body)


@mcp.custom_route("/stats/reset", methods=["POST"])
async def stats_reset(request: Request) -> Response:
    with _lock:
        _methods.clear()
        _tools.clear()
        _http.clear()
    return JSONResponse({"ok": True})


@mcp.custom_route("/healthz", methods=["GET"])
async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


# ---------------------------------------------------------------- request recorder
# Every request that arrived here, judged or not, for the tests
# (examples/recording.py, shared with the other example backend).

def build_app(stateful: bool = False) -> Any:
    # Host/Origin (DNS-rebinding) checks are the gateway's job; this server only
    # ever listens on loopback behind it, and the Host it sees is the gateway's.
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=not stateful,
        transport_security=security,
    )

    # The 2024-11-05 HTTP+SSE transport on the same server: GET /mcp/sse
    # opens the stream, whose `endpoint` event names /mcp/messages/?session_id=...
    # for the client's POSTs (answers come on the stream).
    legacy = mcp.sse_app(sse_path="/mcp/sse", message_path="/mcp/messages/", transport_security=security)

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        # Request headers the gateway must not pass on (tests read them in
        # /stats "http"): an Accept-Encoding would let the answer come back
        # compressed, past the tool-list filter.
        if scope["type"] == "http" and (scope["path"] == "/mcp/sse" or scope["path"].startswith("/mcp/messages")):
            _count(_http, f'{scope["method"]} {scope["path"]}')
            await legacy(scope, receive, send)
            return
        if scope["type"] != "http" or scope["path"] != "/mcp":
            await app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                _count(_http, "accept-encoding")
            if name == b"mcp-session-id" and stateful:
                # Session affinity tests: was this session issued here?
                with _lock:
                    own = value.decode("latin-1") in _sessions
                _count(_http, "session_own" if own else "session_foreign")

        async def remember(message: Any) -> None:
            if message["type"] == "http.response.start" and stateful:
                for name, value in message.get("headers", []):
                    if name.lower() == b"mcp-session-id":
                        with _lock:
                            _sessions.add(value.decode("latin-1"))
            await send(message)

        await app(scope, receive, remember)

    # Every request is recorded as it arrives (GET /requests), whichever
    # transport it is for.
    return RecordingMiddleware(recording)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--stateful", action="store_true",
                        help="issue Mcp-Session-Ids and keep sessions in this process")
    parser.add_argument("--replica", default="", help="name of this process in tool results")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper())
    REPLICA["name"] = args.replica
    uvicorn.run(build_app(stateful=args.stateful), host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
