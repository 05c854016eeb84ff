"""The example backends' request recorder, shared by examples/mcp_server and
examples/a2a_agent (run as `python -m examples.mcp_server.server`, from the
repository root, so that both import this one module).

Tests of the gateway's "nothing unjudged reaches the upstream" promise need
to see every request that arrived at a backend, including ones its SDK
refuses before any handler runs (a batch, a malformed body) and ones whose
body never completed: the backends' own counters only see what the SDK
dispatched.
"""

from __future__ import annotations

import collections
import json
import threading
from typing import Any

RECORD_MAX_REQUESTS = 1000
RECORD_MAX_BODY = 16 * 1024


class RecordingMiddleware:
    """ASGI middleware: records each request as it starts (method, path, query,
    headers), then its body as the app reads it (first RECORD_MAX_BODY bytes,
    total size, whether it ended). `GET /requests?since=N` returns the records
    with seq >= N and `next`; bodies as latin-1 text (one char per byte)."""

    def __init__(self, app: Any, skip: tuple[str, ...] = ("/stats", "/healthz")) -> None:
        self.app = app
        self.skip = skip
        self.lock = threading.Lock()
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECORD_MAX_REQUESTS)
        self.seq = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == "/requests":
            await self._answer(scope, send)
            return
        if path.startswith(self.skip):
            await self.app(scope, receive, send)
            return
        rec: dict[str, Any] = {
            "method": scope.get("method"), "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope.get("headers", [])],
            "body": bytearray(), "bodyBytes": 0, "complete": False,
        }
        with self.lock:
            rec["seq"] = self.seq
            self.seq += 1
            self.records.append(rec)

        async def recording_receive() -> Any:
            msg = await receive()
            if msg.get("type") == "http.request":
                chunk = msg.get("body", b"")
                with self.lock:
                    rec["bodyBytes"] += len(chunk)
                    room = RECORD_MAX_BODY - len(rec["body"])
                    if room > 0:
                        rec["body"] += chunk[:room]
                    if not msg.get("more_body", False):
                        rec["complete"] = True
            return msg

        await self.app(scope, recording_receive, send)

    async def _answer(self, scope: Any, send: Any) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        since = 0
        for part in query.split("&"):
            key, _, value = part.partition("=")
            if key == "since" and value.isdigit():
                since = int(value)
        with self.lock:
            out = [{**r, "body": bytes(r["body"]).decode("latin-1")} for r in self.records if r["seq"] >= since]
            body = json.dumps({"next": self.seq, "requests": out}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
