"""Audit attacks: every refused request audited exactly once with the
decision of the filter that refused it; no content (canary strings) in any
event; client-controlled text (id, method, tool name, path) cannot forge
events or inflate them without bound; a padded body still names its tool.

One fixture sends every attack request, then waits once for the shipped
sender (batches of 50 or every 5 s) to deliver; each case checks its event.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from attacks.support import (
    ALLOWED_CALL, CANARY, DENIED, DENIED_CALL, AttackGateway, a2a_send, body_of, tools_call,
)

pytestmark = pytest.mark.timeout(120)

# The bounds issue 10 asks for (documented by the audit filter): no string
# field of an event longer than this, no event larger than MAX_EVENT.
MAX_FIELD = 4096
MAX_EVENT = 16 * 1024
FORGED = "forged-event-7c1d"


class Sent:
    def __init__(self) -> None:
        self.rids: dict[str, str] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.all_events: list[dict[str, Any]] = []
        self.raw = ""


def collector_events(atk: AttackGateway) -> list[dict[str, Any]]:
    return list(httpx.get(atk.stack.upstream_url("audit_collector") + "/events", timeout=10).json()["events"])


@pytest.fixture(scope="module")
def sent(atk: AttackGateway) -> Sent:
    s = Sent()

    def keep(name: str, r: Any) -> None:
        rid = r.headers["x-request-id"] if isinstance(r, httpx.Response) else r
        assert rid, name
        s.rids[name] = rid

    keep("unauthenticated", atk.post("/mcp", ALLOWED_CALL, key=None,
                                     headers={"x-verified-agent-id": "admin-1", "x-verified-agent-name": "Admin"}))
    keep("denied_mcp", atk.post("/mcp", body_of(tools_call(DENIED, 1, code=CANARY))))
    keep("denied_recipe", atk.post("/mcp/tools/call", body_of(tools_call(DENIED, 2, code=CANARY))))
    keep("allowed", atk.post("/mcp", body_of(tools_call("search_patterns", 3, query=CANARY))))
    keep("a2a", atk.post("/a2a/tasks/send", a2a_send(text=CANARY), key=atk.fresh("alchemy")))
    keep("too_large", atk.post("/mcp", body_of(tools_call(DENIED, 4, code=CANARY + "x" * (2 * 1024 * 1024)))))
    keep("bad_type", atk.post("/mcp", DENIED_CALL, headers={"content-type": "text/plain"}))
    keep("dup_keys", atk.post("/mcp", b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
                                      b'"params":{"name":"search_patterns","name":"execute_code"}}'))
    keep("no_route", atk.post("/nowhere", DENIED_CALL))
    keep("spoofed_rid", atk.post("/mcp", ALLOWED_CALL, headers={"x-request-id": FORGED + "-rid"}))
    # padding between audit's 512 KiB parse limit and the ACL's 1 MiB (issue 10 finding 3)
    keep("padded", atk.post("/mcp", body_of(tools_call(DENIED, 5, code=CANARY + "p" * (600 * 1024)))))
    # client-controlled text (issue 10 finding 4)
    keep("huge_id", atk.post("/mcp", body_of(tools_call(DENIED, "i" * (500 * 1024)))))
    keep("huge_method", atk.post("/mcp", body_of({"jsonrpc": "2.0", "id": 6, "method": "m" * (100 * 1024)})))
    keep("huge_path", atk.post("/mcp/" + "a" * 20_000, DENIED_CALL))
    keep("huge_tool", atk.post("/mcp", body_of(tools_call("t" * (200 * 1024), 7))))
    injected = "x\n" + json.dumps({"eventId": FORGED, "decision": "allowed"}) + "\r\n"
    keep("inject_id", atk.post("/mcp", body_of(tools_call(DENIED, injected))))
    keep("inject_tool", atk.post("/mcp", body_of(tools_call(DENIED + injected, 8))))
    # trailers (issue 10 finding 1): the event must say what the gateway did
    with atk.h2() as c:
        st = c.wait(c.request(DENIED_CALL, trailers=[("x-rt", "1")]))
        keep("trailers", st.header("x-request-id") or "")
    # the rate limit: a fresh agent, one call over its 70
    key = atk.fresh("sentinel")
    with atk.http({"x-agent-api-key": key, "accept": "application/json, text/event-stream",
                   "content-type": "application/json"}) as c:
        for i in range(70):
            assert c.post("/mcp", content=body_of(tools_call("read_config", i, key="region"))).status_code == 200
        r = c.post("/mcp", content=body_of(tools_call("read_config", 70, key="region")))
        assert r.status_code == 429
        keep("rate_limited", r)
    # pipelined HTTP/1.1: three requests, three events (allowed, denied,
    # allowed: after two local replies in a row Envoy itself closes a
    # pipelined connection without reading the third request, even for its
    # own 404, so that pattern has no third event to check)
    bodies = [ALLOWED_CALL, DENIED_CALL, ALLOWED_CALL]
    pipelined = atk.h1(b"".join(atk.mcp_req(length=len(b), close=(i == 2)) + b for i, b in enumerate(bodies)), expect=3)
    assert len(pipelined) == 3, pipelined
    for i, r in enumerate(pipelined):
        keep(f"pipelined{i}", r.header("x-request-id"))

    wanted = set(s.rids.values())
    deadline = time.monotonic() + 40
    while True:
        s.all_events = collector_events(atk)
        ids = [e.get("eventId") for e in s.all_events]
        if wanted <= set(ids) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for e in s.all_events:
        if e.get("eventId") in wanted:
            assert e["eventId"] not in s.events, f"event {e['eventId']} delivered twice"
            s.events[e["eventId"]] = e
    s.raw = atk.stack.audit_events_path.read_text(errors="replace")
    return s


def event(sent: Sent, name: str) -> dict[str, Any]:
    rid = sent.rids[name]
    assert rid in sent.events, f"no audit event for {name} ({rid})"
    return sent.events[rid]


@pytest.mark.parametrize("name,decision", [
    ("unauthenticated", "unauthenticated"), ("denied_mcp", "tool_denied"), ("denied_recipe", "tool_denied"),
    ("allowed", "allowed"), ("a2a", "allowed"), ("too_large", "bad_request"), ("bad_type", "bad_request"),
    ("dup_keys", "bad_request"), ("no_route", "rejected"), ("padded", "tool_denied"), ("huge_id", "tool_denied"),
    ("inject_id", "tool_denied"), ("inject_tool", "tool_denied"), ("trailers", "tool_denied"),
    ("rate_limited", "rate_limited"), ("pipelined0", "allowed"), ("pipelined1", "tool_denied"),
    ("pipelined2", "allowed"),
])
def test_every_request_audited_once_with_its_decision(sent: Sent, name: str, decision: str) -> None:
    assert event(sent, name)["decision"] == decision, event(sent, name)


def test_spoofed_identity_headers_never_enter_the_event(sent: Sent) -> None:
    e = event(sent, "unauthenticated")
    assert "agent" not in e and e.get("agentId") != "admin-1" and "Admin" not in json.dumps(e), e


def test_client_request_id_is_not_the_event_id(sent: Sent) -> None:
    e = event(sent, "spoofed_rid")
    assert FORGED not in json.dumps(e)
    assert not any(FORGED in str(x.get("eventId")) for x in sent.all_events)


def test_no_content_in_any_event(sent: Sent) -> None:
    assert CANARY not in sent.raw
    assert not any(CANARY in json.dumps(e) for e in sent.all_events)


def test_log_injection_cannot_forge_an_event(sent: Sent) -> None:
    assert not any(e.get("eventId") == FORGED for e in sent.all_events)
    for line in sent.raw.splitlines():
        if line.strip():
            json.loads(line)  # every stored line is one whole event
    for name in ("inject_id", "inject_tool"):
        e = event(sent, name)
        assert e["decision"] == "tool_denied" and e["agentId"] == "sentinel-1", e


def test_padded_body_keeps_method_and_tool(sent: Sent) -> None:
    """Issue 10 finding 3: a body between 512 KiB and 1 MiB still names its tool."""
    e = event(sent, "padded")
    assert e.get("jsonrpcMethod") == "tools/call" and e.get("toolName") == DENIED, e


def test_denied_call_events_name_the_tool(sent: Sent) -> None:
    for name in ("denied_mcp", "denied_recipe", "pipelined1"):
        e = event(sent, name)
        assert e.get("jsonrpcMethod") == "tools/call" and e.get("toolName") == DENIED, e


@pytest.mark.parametrize("name", ["huge_id", "huge_method", "huge_path", "huge_tool", "inject_id"])
def test_client_controlled_fields_are_bounded(sent: Sent, name: str) -> None:
    """Issue 10 finding 4: every field and the whole event have a maximum size."""
    e = event(sent, name)
    text = json.dumps(e)
    assert len(text) <= MAX_EVENT, f"{name}: event of {len(text)} bytes"

    def walk(v: Any) -> None:
        if isinstance(v, str):
            assert len(v) <= MAX_FIELD, f"{name}: a field of {len(v)} chars"
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(e)
