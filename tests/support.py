"""Helpers several test modules share, one definition each: test modules
import from here (and from gwstack.support, which the benches share too),
never from each other.

* tool ACL stacks: identity from the TEST-ONLY `x-test-identity` header,
  the recipe's tool sets, the example MCP server's counters;
* audit: the example collector of a stack, the audit counters, the sender
  configuration;
* A2A: the HTTP+JSON (REST) binding, the official A2A client;
* identity: credentials and denial checks.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import yaml

import gwstack as stack_mod
from conftest import DEMO_KEYS, ROOT, Gateway
from gwstack import Stack, walk_dicts
from gwstack.support import MCP_HEADERS, TEST_IDENTITY_HEADER, identity_from_header


# --------------------------------------------------------------------------- tool ACL stacks


SENTINEL = {"search_patterns", "classify_content", "read_config"}
ALCHEMY = {"generate_video", "render_scene", "read_template"}


def ident(agent_id: str | None, name: str = "") -> dict[str, str]:
    if agent_id is None:
        return {}
    return {TEST_IDENTITY_HEADER: json.dumps({"agentId": agent_id, "agentName": name or agent_id})}


def inject_test_identity(cfg: dict[str, Any]) -> None:
    """TEST-ONLY: swap the identity filter for set_filter_state fed by a header,
    and surface the filter state `gw_decision` as `x-test-decision` on local replies."""

    def patch(node: dict[str, Any]) -> None:
        filters = node.get("http_filters")
        if isinstance(filters, list):
            for i, f in enumerate(filters):
                if f.get("name") == "gw.identity":
                    filters[i] = identity_from_header()
        if "http_filters" in node and "stat_prefix" in node:
            # Local replies carry the decision the filter stored as filter
            # state (the access log has it too, but file flushes lag).
            node["local_reply_config"] = {"mappers": [{
                "filter": {"status_code_filter": {"comparison": {
                    "op": "GE", "value": {"default_value": 100, "runtime_key": "tool_acl_test.unused"}}}},
                "headers_to_add": [{"header": {"key": "x-test-decision",
                                               "value": "%FILTER_STATE(wasm.gw_decision:PLAIN)%"}}],
            }]}

    walk_dicts(cfg, patch)


def shipped_acl_config() -> dict[str, Any]:
    return yaml.safe_load(stack_mod.filter_configuration(ROOT / "envoy" / "gateway.yaml", "gw_tool_acl"))


class AclGateway(Gateway):
    def upstream_reset(self) -> None:
        httpx.post(self.stack.upstream_url("mcp_upstream") + "/stats/reset", timeout=5)

    def upstream_count(self, method: str = "tools/list") -> int:
        return self.upstream_stats()["methods"].get(method, 0)

    def tool_runs(self, tool: str) -> int:
        return self.upstream_stats()["tools"].get(tool, 0)

    def counter(self, name: str) -> int:
        for line in self.admin("/stats?filter=gw.tool_acl").splitlines():
            k, _, v = line.partition(": ")
            if k == f"wasmcustom.gw.tool_acl.{name}":
                return int(v)
        raise KeyError(name)

    def announce_tools_changed(self) -> None:
        with self.http(ident("admin-1") | MCP_HEADERS) as c:
            r = c.post("/mcp", json={"jsonrpc": "2.0", "id": "chg", "method": "tools/call",
                                     "params": {"name": "announce_tools_changed", "arguments": {}}})
            assert r.status_code == 200 and "notifications/tools/list_changed" in r.text, r.text


def sse_messages(text: str) -> list[dict[str, Any]]:
    out = []
    for block in re.split(r"\r?\n\r?\n", text):
        data = "\n".join(line[5:].lstrip() for line in block.splitlines() if line.startswith("data:"))
        if data:
            out.append(json.loads(data))
    return out


def rpc_body(r: httpx.Response) -> Any:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        msgs = [m for m in sse_messages(r.text) if "id" in m]
        assert len(msgs) == 1, r.text
        return msgs[0]
    return r.json()


def listed(r: httpx.Response) -> set[str]:
    return {t["name"] for t in rpc_body(r)["result"]["tools"]}


# --------------------------------------------------------------------------- audit


class Collector:
    """The example collector process of a stack (examples/audit_collector)."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.url = stack.upstream_url("audit_collector")

    def get(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=5).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return httpx.post(self.url + path, json=body, timeout=5).json()

    def stats(self) -> dict[str, Any]:
        return self.get("/stats")

    def events(self) -> list[dict[str, Any]]:
        return self.get("/events")["events"]

    def by_id(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for e in self.events():
            out.setdefault(e.get("eventId", ""), []).append(e)
        return out

    def wait_for(self, ids: list[str], timeout: float = 20) -> dict[str, dict[str, Any]]:
        """Wait until an event for every id arrived; return them (asserting once each)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.by_id()
            if all(i in got for i in ids):
                for i in ids:
                    assert len(got[i]) == 1, f"event {i} delivered {len(got[i])} times"
                return {i: got[i][0] for i in ids}
            if time.monotonic() > deadline:
                missing = [i for i in ids if i not in got]
                raise AssertionError(f"no event for {missing}; collector {self.stats()}")
            time.sleep(0.1)

    def proc(self) -> stack_mod.Proc:
        return next(p for p in self.stack.procs if p.name == "audit_collector")


def audit_counters(stack: Stack) -> dict[str, int]:
    status, body = stack.admin("/stats?filter=^wasmcustom.gw.audit")
    assert status == 200
    out = {}
    for line in body.splitlines():
        k, _, v = line.partition(": ")
        if v.strip().isdigit():
            out[k.removeprefix("wasmcustom.gw.audit.")] = int(v)
    return out


def wait_until(cond: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def sender(**dest: Any) -> str:
    d = {"cluster": "audit_collector", **dest}
    return yaml.safe_dump({"role": "sender", "logDestination": d}, sort_keys=False)


# --------------------------------------------------------------------------- A2A


REST = "/a2a/rest"
V1 = {"a2a-version": "1.0"}


def demo_key(agent: str) -> dict[str, str]:
    """The demo API key header of `agent` (conftest.DEMO_KEYS)."""
    return {"x-agent-api-key": DEMO_KEYS[agent]}


def rest_send_body(text: str = "hello") -> dict[str, Any]:
    # The request of issue 11, as a REST client sends it.
    return {"message": {"messageId": f"m-{uuid.uuid4().hex}", "role": "ROLE_USER", "parts": [{"text": text}]}}


def raw(gw: Gateway, headers: dict[str, str]) -> httpx.Client:
    """httpx over TLS with exactly `headers` (no default credential)."""
    return httpx.Client(base_url=gw.base_url, verify=gw.ssl_context(), headers=headers, timeout=30)


@contextlib.asynccontextmanager
async def client(gw: Gateway, headers: dict[str, str], version: str = "1.0", binding: str = "HTTP+JSON",
                 streaming: bool = False, on_response: Callable[[Any], Any] | None = None) -> AsyncIterator[Any]:
    """Official A2A client on the card's `binding` interface of `version`."""
    from a2a.client import A2ACardResolver, ClientConfig, ClientFactory

    http = httpx.AsyncClient(headers=headers, verify=gw.ssl_context(), timeout=60,
                             event_hooks={"response": [on_response]} if on_response else None)
    async with http:
        card = await A2ACardResolver(http, gw.base_url).get_agent_card()
        keep = [i for i in card.supported_interfaces
                if i.protocol_version == version and i.protocol_binding == binding]
        assert keep, f"agent card has no {binding} {version} interface: {card.supported_interfaces}"
        if binding == "HTTP+JSON":
            assert keep[0].url == gw.base_url + REST
        del card.supported_interfaces[:]
        card.supported_interfaces.extend(keep)
        c = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming,
                                       supported_protocol_bindings=[binding])).create(card)
        try:
            yield c
        finally:
            await c.close()


async def send(c: Any, text: str) -> list[Any]:
    from a2a.helpers import new_text_message
    from a2a.types import Role, SendMessageRequest

    req = SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))
    return [ev async for ev in c.send_message(req)]


def final_task(events: list[Any]) -> Any:
    tasks = [ev.task for ev in events if ev.WhichOneof("payload") == "task"]
    assert tasks, events
    return tasks[-1]


def wait_for_events(gw: Gateway, ids: list[str], timeout: float = 20) -> dict[str, dict[str, Any]]:
    url = gw.stack.upstream_url("audit_collector") + "/events"
    deadline = time.monotonic() + timeout
    while True:
        got = {e.get("eventId"): e for e in httpx.get(url, timeout=5).json()["events"]}
        if all(i in got for i in ids):
            return {i: got[i] for i in ids}
        assert time.monotonic() < deadline, f"no audit events for {[i for i in ids if i not in got]}"
        time.sleep(0.2)


# --------------------------------------------------------------------------- A2A governance


def recorder(gw: Gateway) -> Callable[[], list[dict[str, Any]]]:
    """The A2A requests that reached the agent from now on (not the agent
    card fetches every client starts with)."""
    url = gw.stack.upstream_url("a2a_upstream") + "/requests"
    start = httpx.get(url, timeout=5).json()["next"]
    return lambda: [r for r in httpx.get(url, params={"since": start}, timeout=5).json()["requests"]
                    if not r["path"].endswith("agent-card.json")]


def tool_acl_config(**a2a: Any) -> str:
    acl = yaml.safe_load(stack_mod.filter_configuration(stack_mod.ENVOY_DIR / "gateway.yaml", "gw_tool_acl"))
    acl["a2a"].update(a2a)
    return yaml.safe_dump(acl)


# --------------------------------------------------------------------------- identity


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def api_key(value: str) -> dict[str, str]:
    return {"x-agent-api-key": value}


def assert_denied(r: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == error, body
    assert body["message"], body
    return body
