#!/usr/bin/env python3
"""A walkthrough of the running demo gateway: allowed, denied, filtered,
limited, unauthenticated and audited traffic, with the official clients.

Start the demo (`./dev demo`), then in another terminal: `./dev walkthrough`.

Every step goes through the gateway over TLS (trusting only the demo's CA)
with the official MCP client (`mcp` 2.x) or A2A client (`a2a-sdk` 1.x), and
checks what it got: the script exits 1 if the gateway answered otherwise than
the step expects, so the tests run it as it is (tests/test_walkthrough.py).

Steps:
  1. sentinel-1 lists tools: the answer is filtered to its 3 allowed tools;
  2. sentinel-1 calls search_patterns: allowed, the server sees the verified id;
  3. sentinel-1 calls execute_code: denied (JSON-RPC error, the session lives on);
  4. alchemy-1 calls read_template until the limit (60/min + 10 burst): 429 + Retry-After;
  5. a wrong API key: 401;
  6. an OAuth token that expires (examples/oauth_server's `expiring-oauth`
     client): accepted, then 401 once expired (skipped if no OAuth server);
  7. admin-1 sends an A2A task, then streams one;
  8. the audit events those requests produced, read back from the example
     collector (metadata only: the gateway never logs content).

Step 4 keeps calling until refused, so running the walkthrough twice within
a minute still shows the limit (from the first call then).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import httpx2

ROOT = Path(__file__).resolve().parent.parent

SENTINEL_TOOLS = {"search_patterns", "classify_content", "read_config"}
# The shipped tools/call limit (envoy/gateway.yaml): 60 per minute + 10 burst.
TOOL_CALL_ALLOWANCE = 70


class StepFailed(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise StepFailed(what)


def say(text: str = "") -> None:
    print(text, flush=True)


class Walkthrough:
    def __init__(self, args: argparse.Namespace) -> None:
        self.url = args.url.rstrip("/")
        self.ca = args.ca
        self.oauth_url = args.oauth_url.rstrip("/") if args.oauth_url else ""
        self.collector_url = args.collector_url.rstrip("/") if args.collector_url else ""
        self.audit_wait = args.audit_wait
        # x-request-id of every response we got: the audit events' eventId.
        self.request_ids: list[str] = []
        # The first refusal (status >= 400) since a step cleared it: what the
        # client surfaced as an error (later requests, e.g. a session's
        # DELETE at close, must not replace it).
        self.refusal: dict[str, Any] = {}

    def ssl_context(self) -> ssl.SSLContext:
        # Only the demo's CA (full hostname checks); the system's when absent,
        # so a gateway with a public certificate needs no --ca.
        return ssl.create_default_context(cafile=self.ca if Path(self.ca).is_file() else None)

    async def _on_response(self, response: Any) -> None:
        rid = response.headers.get("x-request-id")
        if rid:
            self.request_ids.append(rid)
        if response.status_code >= 400 and not self.refusal:
            # the body of a refusal is the gateway's (never upstream content)
            await response.aread()
            self.refusal = {"status": response.status_code, "retry-after": response.headers.get("retry-after"),
                            "www-authenticate": response.headers.get("www-authenticate"), "body": response.text}

    @contextlib.asynccontextmanager
    async def mcp(self, headers: dict[str, str]) -> AsyncIterator[Any]:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        http = httpx2.AsyncClient(headers=headers, verify=self.ssl_context(), timeout=httpx2.Timeout(30, read=300),
                                  event_hooks={"response": [self._on_response]})
        async with http:
            async with Client(streamable_http_client(self.url + "/mcp", http_client=http)) as client:
                yield client

    @contextlib.asynccontextmanager
    async def a2a(self, headers: dict[str, str], streaming: bool) -> AsyncIterator[Any]:
        from a2a.client import A2ACardResolver, ClientConfig, ClientFactory

        http = httpx.AsyncClient(headers=headers, verify=self.ssl_context(), timeout=60,
                                 event_hooks={"response": [self._on_response]})
        async with http:
            card = await A2ACardResolver(http, self.url).get_agent_card()
            client = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)
            try:
                yield client
            finally:
                await client.close()

    # ------------------------------------------------------------------ steps

    async def step_sentinel(self) -> None:
        from mcp import MCPError

        async with self.mcp({"x-agent-api-key": "gw-demo-sentinel-1"}) as client:
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            say("1. tools/list as sentinel-1 (MCP client, key gw-demo-sentinel-1)")
            say(f"   -> {len(tools)} tools: {', '.join(tools)}  (the server has 10; the gateway filters the list)")
            expect(set(tools) == SENTINEL_TOOLS, f"sentinel-1 should see exactly {sorted(SENTINEL_TOOLS)}")

            r = await client.call_tool("search_patterns", {"query": "map"})
            data = r.structured_content or {}
            say("2. tools/call search_patterns as sentinel-1")
            say(f"   -> allowed: matches={data.get('matches')}, the server saw X-Verified-Agent-Id="
                f"{(data.get('verified') or {}).get('agentId')}")
            expect(not r.is_error and (data.get("verified") or {}).get("agentId") == "sentinel-1",
                   "search_patterns should be allowed and carry the verified agent id")

            say("3. tools/call execute_code as sentinel-1")
            try:
                await client.call_tool("execute_code", {"code": "print(1)"})
            except MCPError as e:
                say(f"   -> denied: JSON-RPC error {e.error.code}: {e.error.message}")
                expect(e.error.code == -32001, "a denied tool is JSON-RPC error -32001")
            else:
                raise StepFailed("execute_code should be denied for sentinel-1")
            r = await client.call_tool("read_config", {"key": "region"})
            say(f"   -> same session, next call read_config: allowed, value={(r.structured_content or {}).get('value')}")
            expect(not r.is_error, "the MCP session should survive a denied call")

    async def step_limit(self) -> None:
        say(f"4. tools/call read_template as alchemy-1, again and again (limit: {TOOL_CALL_ALLOWANCE - 10}/min + 10 burst)")
        allowed = 0
        self.refusal = {}
        async with self.mcp({"x-agent-api-key": "gw-demo-alchemy-1"}) as client:
            for _ in range(TOOL_CALL_ALLOWANCE + 1):
                try:
                    r = await client.call_tool("read_template", {"name": "intro"})
                except Exception:  # the MCP client surfaces the 429 as an error
                    break
                expect(not r.is_error, "read_template should be allowed for alchemy-1")
                allowed += 1
            else:
                raise StepFailed(f"no 429 after {TOOL_CALL_ALLOWANCE + 1} calls")
        last = self.refusal
        say(f"   -> {allowed} calls allowed, then HTTP {last.get('status')} Retry-After: {last.get('retry-after')}")
        say(f"      {_one_line(last.get('body'))}")
        expect(last.get("status") == 429 and str(last.get("retry-after") or "").isdigit(),
               "the limited call should be 429 with a Retry-After in seconds")

    async def step_bad_key(self) -> None:
        say("5. MCP client with a wrong API key (gw-not-a-key)")
        self.refusal = {}
        with contextlib.suppress(Exception):
            async with self.mcp({"x-agent-api-key": "gw-not-a-key"}) as client:
                await client.list_tools()
        last = self.refusal
        say(f"   -> HTTP {last.get('status')} {_one_line(last.get('body'))}")
        expect(last.get("status") == 401, "a wrong key should be 401")

    async def step_expired_token(self) -> None:
        if not self.oauth_url:
            say("6. expired OAuth token: skipped (no --oauth-url)")
            return
        async with httpx.AsyncClient(timeout=10) as http:
            try:
                r = await http.post(f"{self.oauth_url}/oauth/token",
                                    data={"grant_type": "client_credentials", "scope": "mcp:tools:invoke"},
                                    auth=("expiring-oauth", "expiring-secret"))
            except httpx.HTTPError as e:
                say(f"6. expired OAuth token: skipped (OAuth server {self.oauth_url} unreachable: {type(e).__name__})")
                return
        expect(r.status_code == 200, f"token request failed: {r.status_code} {r.text}")
        token, ttl = r.json()["access_token"], int(r.json()["expires_in"])
        bearer = {"authorization": f"Bearer {token}"}
        say(f"6. OAuth client credentials token of expiring-oauth (lives {ttl} s), used as a bearer token")
        async with self.mcp(bearer) as client:
            who = (await client.call_tool("search_patterns", {"query": "map"})).structured_content or {}
        say(f"   -> accepted: agent {(who.get('verified') or {}).get('agentId')} (from the introspected token)")
        expect((who.get("verified") or {}).get("agentId") == "sentinel-3", "the fresh token should be accepted")
        # Wait past the token's own expiry (its `exp`, not a guess): the
        # gateway caches an introspection result never past `exp`.
        await asyncio.sleep(ttl + 1)
        self.refusal = {}
        with contextlib.suppress(Exception):
            async with self.mcp(bearer) as client:
                await client.list_tools()
        last = self.refusal
        say(f"   -> after {ttl + 1} s: HTTP {last.get('status')} {last.get('www-authenticate') or ''}".rstrip())
        expect(last.get("status") == 401, "an expired token should be 401")

    async def step_a2a(self) -> None:
        from a2a.helpers import get_message_text, new_text_message
        from a2a.types import Role, SendMessageRequest, TaskState

        key = {"x-agent-api-key": "gw-demo-admin-1"}
        say("7. A2A as admin-1 (A2A client, agent card from /.well-known/agent-card.json)")
        async with self.a2a(key, streaming=False) as client:
            req = SendMessageRequest(message=new_text_message("hello gateway", role=Role.ROLE_USER))
            events = [ev async for ev in client.send_message(req)]
        expect(len(events) == 1 and events[0].WhichOneof("payload") == "task", "send should return one task")
        task = events[0].task
        state = TaskState.Name(task.status.state)
        say(f"   send:   task {task.id[:8]}… {state}: {get_message_text(task.status.message)!r}")
        expect(state == "TASK_STATE_COMPLETED", "the sent task should complete")

        async with self.a2a(key, streaming=True) as client:
            req = SendMessageRequest(message=new_text_message("stream please steps=3", role=Role.ROLE_USER))
            states = []
            async for ev in client.send_message(req):
                kind = ev.WhichOneof("payload")
                if kind == "status_update":
                    states.append(TaskState.Name(ev.status_update.status.state).removeprefix("TASK_STATE_"))
                elif kind:
                    states.append(kind)
        say(f"   stream: {' -> '.join(states)}")
        expect(bool(states) and states[-1] == "COMPLETED", "the streamed task should end COMPLETED")

    async def step_audit(self) -> None:
        if not self.collector_url:
            say("8. audit events: skipped (no --collector-url)")
            return
        wanted = set(self.request_ids)
        say(f"8. audit events of these {len(wanted)} requests (collector {self.collector_url}/events;"
            " batches leave every 5 s)")
        # Polls until every request's event arrived: the sender batches by
        # count or time, so when is not knowable from here.
        deadline = time.monotonic() + self.audit_wait
        events: dict[str, dict[str, Any]] = {}
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                r = await http.get(f"{self.collector_url}/events")
                for e in r.json().get("events", []):
                    if e.get("eventId") in wanted:
                        events[e["eventId"]] = e
                if len(events) == len(wanted) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        ordered = [events[i] for i in dict.fromkeys(self.request_ids) if i in events]
        rows: list[tuple[tuple[str, ...], int]] = []
        for e in ordered:
            row = (str(e.get("agentId") or (e.get("agent") or {}).get("id") or "-"), str(e.get("httpMethod")),
                   str(e.get("path")), str(e.get("protocolMethod") or e.get("jsonrpcMethod") or "-"),
                   str(e.get("toolName") or "-"), str(e.get("decision")), str(e.get("status", "-")))
            if rows and rows[-1][0] == row:  # collapse the rate-limit loop's repeats
                rows[-1] = (row, rows[-1][1] + 1)
            else:
                rows.append((row, 1))
        say(f"   {'agent':<12} {'http':<6} {'path':<29} {'method':<22} {'tool':<16} {'decision':<16} status")
        for row, n in rows:
            agent, method, path, proto, tool, decision, status = row
            times = f"  x{n}" if n > 1 else ""
            say(f"   {agent:<12} {method:<6} {path:<29} {proto:<22} {tool:<16} {decision:<16} {status}{times}")
        missing = len(wanted) - len(events)
        say(f"   -> {len(events)} events received, {missing} missing; no request or response content in any of them")
        expect(missing == 0, f"{missing} audit events did not arrive within {self.audit_wait} s")
        decisions = {e.get("decision") for e in ordered}
        expect({"allowed", "tool_denied", "rate_limited", "unauthenticated"} <= decisions,
               f"expected allowed, tool_denied, rate_limited and unauthenticated events, got {sorted(decisions)}")

    async def run(self) -> int:
        say(f"Walkthrough against {self.url} (trusting {self.ca})\n")
        try:
            await self.step_sentinel()
            await self.step_limit()
            await self.step_bad_key()
            await self.step_expired_token()
            await self.step_a2a()
            await self.step_audit()
        except Exception as e:  # a check inside a client's task group arrives wrapped in an ExceptionGroup
            failed = _step_failed(e)
            if failed is None:
                raise
            say(f"\nFAILED: {failed}")
            return 1
        say("\nAll steps behaved as expected.")
        return 0


def _step_failed(e: BaseException) -> StepFailed | None:
    if isinstance(e, StepFailed):
        return e
    for inner in getattr(e, "exceptions", ()):
        found = _step_failed(inner)
        if found is not None:
            return found
    return None


def _one_line(text: str | None) -> str:
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), separators=(", ", ": "))
    except ValueError:
        return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("GATEWAY_URL", "https://localhost:8443"),
                    help="the gateway (default https://localhost:8443, the demo's)")
    ap.add_argument("--ca", default=os.environ.get("GATEWAY_CA", str(ROOT / ".run" / "certs" / "ca.crt")),
                    help="CA certificate to trust (default: the demo's .run/certs/ca.crt)")
    ap.add_argument("--oauth-url", default="http://127.0.0.1:9000",
                    help="the example OAuth server ('' to skip the expired-token step)")
    ap.add_argument("--collector-url", default="http://127.0.0.1:9100",
                    help="the example audit collector ('' to skip the audit step)")
    ap.add_argument("--audit-wait", type=float, default=20.0, help="seconds to wait for the audit events")
    return asyncio.run(Walkthrough(ap.parse_args(argv)).run())


if __name__ == "__main__":
    sys.exit(main())
