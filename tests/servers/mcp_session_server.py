"""Test-only MCP server for the session features of Streamable HTTP that the
example server does not exercise: stateful sessions with an event store
(`Last-Event-ID` resumption), the standalone GET stream, DELETE, and
server-to-client requests (sampling, elicitation, roots) answered by the
client's POSTs. Official SDK (mcp 2.x). Used by tests/test_mcp_sessions.py.

Tools (the recipe's ACL allows `read_config` to sentinel-* agents and
everything to admin-* agents):

* `read_config`: a plain call;
* `ask_model` / `ask_user` / `client_roots`: send `sampling/createMessage`,
  `elicitation/create`, `roots/list` to the client and return its answer;
* `slow_steps`: a progress notification, then the server closes the POST's
  SSE stream (the client must resume with `Last-Event-ID`), then the result;
* `announce`: `notifications/tools/list_changed`, outside any request, so it
  goes to the standalone GET stream.

The 2024-11-05 HTTP+SSE transport is served too (`/mcp/sse`,
`/mcp/messages/`), for server-to-client requests on that transport.

`GET /stats`: requests by method (`POST`, `GET`, `GET+last-event-id`,
`DELETE`, prefixed `legacy ` on the 2024-11-05 transport), JSON-RPC
responses received from clients, tools run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import warnings
from typing import Any

import mcp_types as types
import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.streamable_http import EventMessage, EventStore
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

warnings.simplefilter("ignore")

stats: dict[str, collections.Counter[str]] = {"http": collections.Counter(), "tools": collections.Counter(),
                                               "client_answers": collections.Counter()}


class MemoryEventStore(EventStore):
    """Every event of every stream, in order (a test server lives minutes)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    async def store_event(self, stream_id: str, message: Any) -> str:
        event_id = str(len(self.events) + 1)
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: str, send_callback: Any) -> str | None:
        at = next((i for i, (e, _, _) in enumerate(self.events) if e == last_event_id), None)
        if at is None:
            return None
        stream = self.events[at][1]
        for event_id, s, message in self.events[at + 1:]:
            if s == stream and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream


mcp = MCPServer("session-features")


@mcp.tool(description="Read a named configuration value")
def read_config(key: str) -> dict[str, Any]:
    stats["tools"]["read_config"] += 1
    return {"key": key, "value": "eu-west-1"}


@mcp.tool(description="Execute a code snippet (simulated)")
def execute_code(code: str) -> dict[str, Any]:
    stats["tools"]["execute_code"] += 1
    return {"ran": code}


@mcp.tool(description="Ask the client's model (sampling)")
async def ask_model(prompt: str, ctx: Context) -> dict[str, Any]:
    stats["tools"]["ask_model"] += 1
    result = await ctx.session.create_message(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))],
        max_tokens=16, related_request_id=ctx.request_id)
    content = result.content
    return {"answer": getattr(content, "text", None)}


class Answer(BaseModel):
    answer: str


@mcp.tool(description="Ask the client's user (elicitation)")
async def ask_user(question: str, ctx: Context) -> dict[str, Any]:
    stats["tools"]["ask_user"] += 1
    result = await ctx.elicit(question, Answer)
    return {"action": result.action, "answer": result.data.answer if result.data else None}


@mcp.tool(description="List the client's roots")
async def client_roots(ctx: Context) -> dict[str, Any]:
    stats["tools"]["client_roots"] += 1
    result = await ctx.session.list_roots()
    return {"roots": [str(r.uri) for r in result.roots]}


@mcp.tool(description="Progress, then the stream is closed (resume with Last-Event-ID), then the result")
async def slow_steps(ctx: Context) -> dict[str, Any]:
    stats["tools"]["slow_steps"] += 1
    await ctx.report_progress(1, 2)
    await ctx.close_sse_stream()
    await asyncio.sleep(0.5)
    await ctx.report_progress(2, 2)
    return {"steps": 2}


@mcp.tool(description="Send tools/list_changed on the standalone GET stream")
async def announce(ctx: Context) -> dict[str, Any]:
    stats["tools"]["announce"] += 1
    await ctx.session.send_tool_list_changed()
    return {"announced": True}


@mcp.custom_route("/stats", methods=["GET"])
async def get_stats(request: Request) -> Response:
    return JSONResponse({k: dict(v) for k, v in stats.items()})


@mcp.custom_route("/healthz", methods=["GET"])
async def healthz(request: Request) -> Response:
    return Response("ok")


def build_app() -> Any:
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = mcp.streamable_http_app(streamable_http_path="/mcp", stateless_http=False, event_store=MemoryEventStore(),
                                  retry_interval=200, transport_security=security)

    # The 2024-11-05 HTTP+SSE transport on the same server (answers to the
    # server's requests are POSTed to the messages URL there).
    legacy = mcp.sse_app(sse_path="/mcp/sse", message_path="/mcp/messages/", transport_security=security)

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        is_legacy = path == "/mcp/sse" or path.startswith("/mcp/messages")
        target = legacy if is_legacy else app
        if scope["type"] != "http" or not (path == "/mcp" or is_legacy):
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = scope["method"] + ("+last-event-id" if b"last-event-id" in headers else "")
        stats["http"][("legacy " if is_legacy else "") + key] += 1
        if scope["method"] != "POST":
            await target(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict) and "method" not in parsed and ("result" in parsed or "error" in parsed):
                kind = "result" if "result" in parsed else "error"
                stats["client_answers"][("legacy " if is_legacy else "") + kind] += 1
        except ValueError:
            pass
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await target(scope, replay, send)

    return counting


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
