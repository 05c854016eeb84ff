"""Example A2A agent behind the gateway (official `a2a-sdk` 1.x).

One JSON-RPC endpoint at `/a2a` that speaks both protocol versions:

* A2A 1.0: `SendMessage`, `SendStreamingMessage`, `GetTask`, `CancelTask`, ...
  (clients send the `A2A-Version: 1.0` header);
* A2A 0.3: `message/send`, `message/stream`, `tasks/get`, `tasks/cancel`, ...
  (`enable_v0_3_compat=True`; no version header means 0.3).

and the HTTP+JSON (REST) binding under `/a2a/rest`: 1.0 routes
(`POST /a2a/rest/message:send`, `GET /a2a/rest/tasks/{id}`, ...) and 0.3's
under `/a2a/rest/v1`. Both bindings share one task store.

The agent card is served at `/.well-known/agent-card.json` and lists the
four interfaces (JSON-RPC and HTTP+JSON, 1.0 and 0.3) with the *public* URL (`--public-url`, i.e. the gateway's
`https://host:8443/a2a`), so clients that read the card talk to the gateway,
not to this process. The agent serves `/a2a` itself (no prefix rewrite needed
for the main endpoint); the recipe's `/a2a/tasks/*` and `/a2a/agent-card`
paths are rewritten by Envoy onto these two.

Behaviour (deterministic):

* send: one `Task` that ends `completed`, with an artifact echoing the text;
* stream: `submitted` → `working` ×N (N = `--stream-steps`, or `steps=<n>` in
  the message text; `delay_ms=<n>` between steps) → `completed`;
* text containing "fail" ends `failed`;
* every status message and the task metadata carry `verified` = the
  `X-Verified-Agent-Id/Name/Owner` headers this agent received.

`GET /stats` counts executions and cancels; `GET /requests?since=N` lists
every request that reached the agent (headers, first 16 KiB of the body),
recorded as it arrives, so tests can prove what the gateway let through.

Run, from the repository root (it imports examples/recording.py):
  python -m examples.a2a_agent.agent --port 4000 --public-url https://localhost:8443/a2a
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
from typing import Any

import uvicorn
from a2a.helpers import get_message_text, new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    TaskState,
)
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, TransportProtocol
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from examples.recording import RecordingMiddleware

log = logging.getLogger("example-a2a")

VERIFIED_HEADERS = {
    "agentId": "x-verified-agent-id",
    "agentName": "x-verified-agent-name",
    "agentOwner": "x-verified-agent-owner",
}

STATS: dict[str, int] = {"executions": 0, "cancels": 0}


def _verified(context: RequestContext) -> dict[str, str]:
    headers = {}
    try:
        headers = context.call_context.state.get("headers", {}) or {}
    except Exception:  # no call context (should not happen over HTTP)
        headers = {}
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    return {key: lower.get(h, "") for key, h in VERIFIED_HEADERS.items()}


class EchoAgentExecutor(AgentExecutor):
    def __init__(self, stream_steps: int, step_delay: float) -> None:
        self.stream_steps = stream_steps
        self.step_delay = step_delay

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        STATS["executions"] += 1
        verified = _verified(context)
        text = get_message_text(context.message) if context.message else ""
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        meta = {"verified": verified}

        def msg(s: str):
            return new_text_message(
                s + " verified=" + json.dumps(verified, sort_keys=True),
                context_id=task.context_id,
                task_id=task.id,
            )

        steps = self.stream_steps
        m = re.search(r"steps=(\d+)", text)
        if m:
            steps = max(0, min(int(m.group(1)), 1000))
        delay = self.step_delay
        m = re.search(r"delay_ms=(\d+)", text)
        if m:
            delay = min(int(m.group(1)), 60_000) / 1000
        for i in range(1, steps + 1):
            await updater.update_status(TaskState.TASK_STATE_WORKING, msg(f"step {i}/{steps}"), metadata=meta)
            await asyncio.sleep(delay)

        if "fail" in text.lower():
            await updater.update_status(TaskState.TASK_STATE_FAILED, msg("failed on request"), metadata=meta)
            return
        await updater.add_artifact([new_text_part(f"echo: {text}")], name="echo")
        await updater.update_status(TaskState.TASK_STATE_COMPLETED, msg(f"done: {text}"), metadata=meta)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        STATS["cancels"] += 1
        task = context.current_task
        if task is not None:
            await TaskUpdater(event_queue, task.id, task.context_id).cancel()


# Where the REST binding lives, below the JSON-RPC endpoint's URL (the
# gateway routes /a2a/rest/ here unchanged).
REST_SUFFIX = "/rest"


def build_card(public_url: str) -> AgentCard:
    return AgentCard(
        name="gateway-example-agent",
        description="Echo agent behind the MCP/A2A gateway; streams status updates.",
        version="0.1.0",
        supported_interfaces=[
            AgentInterface(
                url=public_url,
                protocol_binding=TransportProtocol.JSONRPC,
                protocol_version=PROTOCOL_VERSION_1_0,
            ),
            AgentInterface(
                url=public_url,
                protocol_binding=TransportProtocol.JSONRPC,
                protocol_version=PROTOCOL_VERSION_0_3,
            ),
            AgentInterface(
                url=public_url + REST_SUFFIX,
                protocol_binding=TransportProtocol.HTTP_JSON,
                protocol_version=PROTOCOL_VERSION_1_0,
            ),
            AgentInterface(
                url=public_url + REST_SUFFIX,
                protocol_binding=TransportProtocol.HTTP_JSON,
                protocol_version=PROTOCOL_VERSION_0_3,
            ),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id="echo",
                name="Echo",
                description="Echoes the message; 'steps=<n>' streams n working updates; 'fail' fails.",
                tags=["example"],
                examples=["hello", "steps=5 render", "please fail"],
            )
        ],
    )


# ---------------------------------------------------------------- request recorder
# Every request that arrived here, judged or not, for the tests
# (examples/recording.py, shared with the other example backend).

def build_app(public_url: str, stream_steps: int = 3, step_delay: float = 0.05) -> Any:
    card = build_card(public_url)
    handler = DefaultRequestHandler(
        agent_executor=EchoAgentExecutor(stream_steps, step_delay),
        task_store=InMemoryTaskStore(),
        agent_card=card,
    )

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(STATS)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    routes = [
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, rpc_url="/a2a", enable_v0_3_compat=True),
        # The same endpoint with a trailing slash: clients that join the
        # card's URL with "/" (the A2A TCK's JSON-RPC client) post there.
        *create_jsonrpc_routes(handler, rpc_url="/a2a/", enable_v0_3_compat=True),
        # Only the prefixed routes: the SDK also mounts `/{tenant}/...`
        # routes, which under a prefix would catch unrelated paths.
        *[r for r in create_rest_routes(handler, enable_v0_3_compat=True, path_prefix="/a2a" + REST_SUFFIX)
          if getattr(r, "path", "").startswith("/a2a" + REST_SUFFIX)],
        Route("/stats", stats, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return RecordingMiddleware(Starlette(routes=routes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument(
        "--public-url",
        default=None,
        help="URL clients use for JSON-RPC (the gateway's /a2a). Default: http://HOST:PORT/a2a",
    )
    parser.add_argument("--stream-steps", type=int, default=3)
    parser.add_argument("--step-delay", type=float, default=0.05)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper())
    public_url = args.public_url or f"http://{args.host}:{args.port}/a2a"
    app = build_app(public_url, args.stream_steps, args.step_delay)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
