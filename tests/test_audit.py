"""Audit filter end to end: real Envoy, the audit .wasm as HTTP filter and as
singleton sender, the example collector as a real process, official MCP and
A2A SDK clients.

The identity filter is the real one (demo API keys). The filters after it
that answer requests themselves (tool ACL, rate limit) are stood in for by
stock Envoy filters inserted before the router in the test stack only:
`set_filter_state` writes the `wasm.gw_decision` entry those filters set
(from a test header), `buffer` holds the request until its body is complete
(as a body-reading filter does) and `fault` answers with a local reply
(header `x-envoy-fault-abort-request`). That checks, on Envoy 1.40, that
audit sees a later filter's verdict and local reply.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import gwstack as stack_mod
from conftest import Gateway
from gwstack import Stack
from gwstack.support import run
from support import Collector, sender, wait_until
from support import audit_counters as counters

CANARY = "CANARY-7f3a9c-do-not-log"
RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MCP_ACCEPT = {"accept": "application/json, text/event-stream"}


# --------------------------------------------------------------------------- helpers


def add_stand_in_filters(cfg: dict[str, Any], access_log: Path | None = None) -> None:
    """patch= callback: stand-ins for the later filters, right before the router."""
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    state_from = lambda key, header: {  # noqa: E731
        "object_key": f"wasm.{key}",
        "factory_key": "envoy.string",
        "format_string": {"text_format_source": {"inline_string": f"%REQ({header})%"}, "omit_empty_values": True},
        "skip_if_empty": True,
    }
    stand_ins = [
        {
            "name": "test.set_filter_state",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
                "on_request_headers": [state_from("gw_decision", "x-test-decision")],
            },
        },
        {
            # Holds the request until its body is complete, as a body-reading
            # filter (tool ACL, rate limit) does before it answers.
            "name": "test.buffer",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": 1048576,
            },
        },
        {
            "name": "test.fault",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
                "abort": {"header_abort": {}, "percentage": {"numerator": 100, "denominator": "HUNDRED"}},
            },
        },
    ]
    hcm["http_filters"][-1:-1] = stand_ins
    if access_log is not None:
        # What the first body parser (audit) published for later filters.
        hcm["access_log"].append({
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": str(access_log),
                "log_format": {"text_format_source": {
                    "inline_string": "%REQ(X-REQUEST-ID)% %FILTER_STATE(wasm.gw_request:PLAIN)%\n"}},
            },
        })


def gateway_audit_config() -> str:
    return stack_mod.filter_configuration("envoy/gateway.yaml", "gw_audit")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def audit(start_stack: Callable[..., Stack], run_root: Path,
          default_headers: dict[str, str]) -> Iterator[tuple[Gateway, Collector, Path]]:
    """The gateway's own audit config (the recipe block), fast batches."""
    access_log = run_root / "audit-access.log"
    filter_cfg = yaml.safe_load(gateway_audit_config())
    filter_cfg["maxRequestBodyBytes"] = 65536
    s = start_stack(
        "audit",
        config="envoy/gateway.yaml",
        filter_configs={
            "gw_audit": filter_cfg,
            "gw_audit_sender": sender(batchSize=5, flushIntervalMs=200,
                                      retry={"initialBackoffMs": 100, "maxBackoffMs": 400}),
        },
        patch=lambda cfg: add_stand_in_filters(cfg, access_log),
    )
    yield Gateway(s, default_headers), Collector(s), access_log


@pytest.fixture(scope="module")
def batching(start_stack: Callable[..., Stack],
             default_headers: dict[str, str]) -> Iterator[tuple[Gateway, Collector]]:
    """Small batches and buffer, slow flush, long POST timeout: every rule observable."""
    s = start_stack(
        "audit-batching",
        config="envoy/gateway.yaml",
        backends=("mcp", "audit"),
        filter_configs={"gw_audit_sender": sender(
            batchSize=4, flushIntervalMs=1500, maxBufferedEvents=10, timeoutMs=30000,
            retry={"initialBackoffMs": 100, "maxBackoffMs": 300})},
    )
    yield Gateway(s, default_headers), Collector(s)


@pytest.fixture(scope="module")
def shipped(start_stack: Callable[..., Stack],
            default_headers: dict[str, str]) -> Iterator[tuple[Gateway, Collector]]:
    """envoy/gateway.yaml as shipped (audit's default body limit, real tool
    ACL and rate limit); only the sender delivers faster."""
    s = start_stack(
        "audit-shipped",
        config="envoy/gateway.yaml",
        backends=("mcp", "audit"),
        filter_configs={"gw_audit_sender": sender(batchSize=5, flushIntervalMs=200)},
    )
    yield Gateway(s, default_headers), Collector(s)


@pytest.fixture(scope="module")
def refusing(start_stack: Callable[..., Stack],
             default_headers: dict[str, str]) -> Iterator[tuple[Gateway, Collector]]:
    """Batches of 20, a long POST timeout (the tests hold the collector
    while events pile up), a buffer large enough to lose nothing."""
    s = start_stack(
        "audit-refusing",
        config="envoy/gateway.yaml",
        backends=("mcp", "audit"),
        filter_configs={"gw_audit_sender": sender(
            batchSize=20, flushIntervalMs=300, maxBufferedEvents=1000, timeoutMs=30000,
            retry={"initialBackoffMs": 100, "maxBackoffMs": 400})},
    )
    yield Gateway(s, default_headers), Collector(s)


def quiesce(stack: Stack, collector: Collector) -> dict[str, int]:
    """Wait until the sender holds nothing, then forget what the collector saw."""
    wait_until(lambda: counters(stack).get("buffered_events", 0) == 0, what="sender buffer to drain")
    collector.post("/admin/reset", {})
    return counters(stack)


def mcp_post(c: httpx.Client, body: dict[str, Any], path: str = "/mcp", **headers: str) -> httpx.Response:
    return c.post(path, json=body, headers={**MCP_ACCEPT, **headers})


def tools_list(i: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": "tools/list"}


def tools_call(name: str, arguments: dict[str, Any], i: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


# --------------------------------------------------------------------------- config


def test_sender_and_filter_name_the_same_destination() -> None:
    """gateway.yaml carries logDestination twice (recipe block in the filter,
    delivery settings in the sender): they must not drift apart."""
    for config in ("envoy/gateway.yaml", "envoy/four-modules/gateway.yaml"):
        filt = yaml.safe_load(stack_mod.filter_configuration(config, "gw_audit"))
        send = yaml.safe_load(stack_mod.filter_configuration(config, "gw_audit_sender"))
        assert send["role"] == "sender"
        assert filt["logDestination"] == send["logDestination"]
        # the sender runs in the filter's VM (its queue is that VM's)
        cfg = stack_mod.load_config(config)
        plugins = stack_mod.wasm_filters(cfg)
        vm = stack_mod.GATEWAY_VM if config == "envoy/gateway.yaml" else "gw_audit"
        assert plugins["gw_audit_sender"]["vm_config"]["vm_id"] == plugins[vm]["vm_config"]["vm_id"] == vm
        services = [b["typed_config"] for b in cfg["bootstrap_extensions"] if b["name"] == "envoy.bootstrap.wasm"]
        assert services and services[0]["singleton"] is True


@pytest.mark.timeout(60)
def test_bad_config_is_refused_with_the_key_path(start_stack: Callable[..., Stack], run_root: Path) -> None:
    bad = "captureFields:\n  request:\n    - jsonPath: '$..name'\n      as: toolName\n"
    with pytest.raises(stack_mod.StackError):
        start_stack("audit-bad", config="envoy/gateway.yaml", backends=(), filter_configs={"gw_audit": bad},
                    start_timeout=20)
    text = (run_root / "audit-bad" / "envoy.log").read_text(errors="replace")
    assert "captureFields.request[0].jsonPath" in text, text[-3000:]


# --------------------------------------------------------------------------- events with SDK clients


@pytest.mark.timeout(90)
def test_mcp_sdk_session_one_event_per_request(audit: tuple[Gateway, Collector, Path]) -> None:
    gw, collector, access_log = audit
    seen: list[tuple[str, str, int]] = []

    async def hook(response: Any) -> None:
        seen.append((response.request.method, response.headers.get("x-request-id"), response.status_code))

    async def go() -> None:
        async with gw.mcp_client(on_response=hook) as client:
            await client.list_tools()
            r = await client.call_tool("search_patterns", {"query": f"map {CANARY}"})
            assert not r.is_error
            r = await client.call_tool("execute_code", {"code": f"raise {CANARY}"})
            assert r.is_error
            r = await client.call_tool("generate_video", {"prompt": CANARY, "steps": 3, "delay_ms": 20})
            assert not r.is_error

    before = counters(gw.stack)
    run(go())
    ids = [rid for _, rid, _ in seen]
    assert all(ids) and len(set(ids)) == len(ids), seen
    events = collector.wait_for(ids)
    after = counters(gw.stack)
    assert after["events"] - before["events"] == len(ids), "one event per request, no more"

    calls = {e.get("toolName"): e for e in events.values() if e.get("jsonrpcMethod") == "tools/call"}
    assert set(calls) == {"search_patterns", "execute_code", "generate_video"}
    assert calls["search_patterns"]["toolError"] is False
    assert calls["execute_code"]["toolError"] is True
    assert calls["generate_video"]["toolError"] is False  # result came after progress events (SSE)
    for (method, rid, status) in seen:
        e = events[rid]
        assert e["correlationId"] == rid
        assert e["status"] == status and e["httpMethod"] == method
        assert RFC3339_MS.match(e["timestamp"]), e
        assert isinstance(e["durationMs"], int) and e["durationMs"] >= 0
        assert e["path"] == "/mcp"
        assert e["decision"] == "allowed"
        if "jsonrpcMethod" in e:
            assert e["protocolMethod"] == e["jsonrpcMethod"]
    assert calls["generate_video"]["durationMs"] >= 40  # 3 progress steps of 20 ms
    init = [e for e in events.values() if e.get("jsonrpcMethod") == "initialize"]
    assert len(init) == 1 and "toolName" not in init[0]

    # Never content: not in the collector's file, not in what audit handed on.
    assert CANARY not in gw.stack.audit_events_path.read_text()
    search_rid = calls["search_patterns"]["eventId"]
    # Envoy flushes file access logs about once a second.
    wait_until(lambda: search_rid in access_log.read_text(), what="the access log line")
    published = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in access_log.read_text().splitlines()}
    assert json.loads(published[search_rid]) == {
        "messages": [{"method": "tools/call", "id": calls["search_patterns"]["jsonrpcId"], "name": "search_patterns"}]}
    assert CANARY not in access_log.read_text()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_a2a_sdk_send_and_stream_task_states(audit: tuple[Gateway, Collector, Path], version: str) -> None:
    from a2a.helpers import new_text_message
    from a2a.types import Role, SendMessageRequest

    gw, collector, _ = audit
    seen: list[str] = []

    async def hook(response: Any) -> None:
        seen.append(response.headers.get("x-request-id"))

    async def go(streaming: bool, text: str) -> None:
        async with gw.a2a_client(version=version, streaming=streaming, on_response=hook) as client:
            req = SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))
            [_ async for _ in client.send_message(req)]

    run(go(False, f"hello {CANARY}"))
    run(go(True, f"stream steps=3 {CANARY}"))
    run(go(True, f"please fail {CANARY}"))
    events = collector.wait_for(seen)
    sends = [e for e in events.values() if "jsonrpcMethod" in e]
    by_method = {e["jsonrpcMethod"]: [] for e in sends}
    for e in sends:
        by_method[e["jsonrpcMethod"]].append(e)
    send_m, stream_m = ("SendMessage", "SendStreamingMessage") if version == "1.0" else ("message/send", "message/stream")
    done, failed = ("TASK_STATE_COMPLETED", "TASK_STATE_FAILED") if version == "1.0" else ("completed", "failed")
    [send] = by_method[send_m]
    assert send["taskState"] == done and send["messageKind"] == "text" and send["path"] == "/a2a"
    streams = by_method[stream_m]
    assert sorted(e["taskState"] for e in streams) == sorted([done, failed]), streams
    for e in streams:
        assert "messageKind" not in e  # the recipe's messageKind capture is for the send family only
    cards = [e for e in events.values() if e["path"] == "/.well-known/agent-card.json"]
    assert cards and all(e["httpMethod"] == "GET" and "jsonrpcMethod" not in e for e in cards)
    assert CANARY not in gw.stack.audit_events_path.read_text()


# --------------------------------------------------------------------------- raw HTTP edge cases


@pytest.mark.timeout(60)
def test_recipe_paths_and_method_families(audit: tuple[Gateway, Collector, Path]) -> None:
    gw, collector, _ = audit
    msg = {"kind": "message", "messageId": "m-1", "role": "user", "parts": [{"kind": "data", "data": {"x": CANARY}}]}
    rids = {}
    with gw.http() as c:
        r = c.post("/a2a/tasks/send", json={"jsonrpc": "2.0", "id": "s1", "method": "message/send", "params": {"message": msg}})
        assert r.status_code == 200, r.text
        rids["recipe_path"] = r.headers["x-request-id"]
        r = mcp_post(c, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                         "params": {"name": "read_config", "arguments": {"key": "region"}}}, path="/mcp/tools/call")
        assert r.status_code == 200, r.text
        rids["mcp_path"] = r.headers["x-request-id"]
        r = mcp_post(c, [tools_list(1), {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                         "params": {"name": "read_config", "arguments": {"key": "x"}}}])
        rids["batch"] = r.headers["x-request-id"]
    ev = collector.wait_for(list(rids.values()))
    a = ev[rids["recipe_path"]]
    assert (a["path"], a["messageKind"], a["taskState"], a["jsonrpcId"]) == ("/a2a/tasks/send", "data", "completed", "s1")
    m = ev[rids["mcp_path"]]
    assert (m["path"], m["toolName"], m["toolError"], m["jsonrpcId"]) == ("/mcp/tools/call", "read_config", False, 9)
    b = ev[rids["batch"]]
    assert b["batchSize"] == 2 and "jsonrpcMethod" not in b and b["toolName"] == "read_config"


@pytest.mark.timeout(60)
def test_identity_comes_from_the_verified_identity_never_the_client(audit: tuple[Gateway, Collector, Path]) -> None:
    """With the real identity filter: the X-Verified-Agent-* captures are the
    identity it verified, whatever the client sent; a request it refuses is
    audited as unauthenticated, without an agent."""
    gw, collector, _ = audit
    forged = {"x-verified-agent-id": "admin-forged", "x-verified-agent-name": "Forged",
              "x-verified-agent-owner": "mallory"}
    with gw.http() as c:
        ok = mcp_post(c, tools_list(), **forged, **{"x-agent-api-key": "gw-demo-sentinel-1"})
        assert ok.status_code == 200
    with gw.http() as c:
        c.headers.pop("x-agent-api-key")
        refused = mcp_post(c, tools_list(), **forged)
        assert refused.status_code == 401
    ev = collector.wait_for([ok.headers["x-request-id"], refused.headers["x-request-id"]])
    e = ev[ok.headers["x-request-id"]]
    assert (e["agentId"], e["agentName"], e["agentOwner"]) == ("sentinel-1", "Sentinel One", "security-team")
    assert e["agent"] == {"id": "sentinel-1", "name": "Sentinel One", "owner": "security-team", "authMethod": "apiKey"}
    e = ev[refused.headers["x-request-id"]]
    assert (e["status"], e["decision"]) == (401, "unauthenticated")
    for key in ("agentId", "agentName", "agentOwner", "agent"):
        assert key not in e, e
    for e in ev.values():
        assert "forged" not in json.dumps(e).lower() and "mallory" not in json.dumps(e)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("status,decision", [
    (401, "unauthenticated"), (403, "forbidden"), (429, "rate_limited"), (503, "unavailable"),
])
def test_local_replies_of_later_filters_are_audited(audit: tuple[Gateway, Collector, Path], status: int,
                                                    decision: str) -> None:
    """A later decoder filter answers itself: audit (first) still logs exactly
    one event, with that filter's decision, and the client gets x-request-id."""
    gw, collector, _ = audit
    body = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "write_file", "arguments": {"content": CANARY}}}
    with gw.http() as c:
        r = mcp_post(c, body, **{"x-envoy-fault-abort-request": str(status), "x-test-decision": decision})
    assert r.status_code == status
    rid = r.headers["x-request-id"]
    e = collector.wait_for([rid])[rid]
    assert (e["status"], e["decision"], e["toolName"], e["jsonrpcId"]) == (status, decision, "write_file", 4)
    assert e["detail"] == "fault_filter_abort"
    assert "toolError" not in e
    # Answered before any body (e.g. identity refusing a request without
    # credentials at header time): still one event, without JSON-RPC fields.
    with gw.http() as c:
        r = c.get("/mcp", headers={"x-envoy-fault-abort-request": str(status), "x-test-decision": decision})
    rid = r.headers["x-request-id"]
    e = collector.wait_for([rid])[rid]
    assert (e["status"], e["decision"], e["httpMethod"]) == (status, decision, "GET")
    assert "jsonrpcMethod" not in e


@pytest.mark.timeout(60)
def test_envoy_and_upstream_answers_are_classified(audit: tuple[Gateway, Collector, Path]) -> None:
    gw, collector, _ = audit
    with gw.http() as c:
        r_404 = c.get("/no/such/route")
        # tools/call: a tools/list could be answered from the tool ACL's cache
        # before the request ever reaches the fault filter.
        r_abort = mcp_post(c, tools_call("search_patterns", {"query": "x"}), **{"x-envoy-fault-abort-request": "502"})
        r_escaped = c.get("/mcp%2Ftools")  # refused by the connection manager's path rules
    assert r_escaped.status_code == 400
    ev = collector.wait_for([r_404.headers["x-request-id"], r_abort.headers["x-request-id"]])
    # Refused before Envoy assigned a request id: still audited, under a local id.
    early = wait_until(lambda: [e for e in collector.events() if e.get("detail") == "path_normalization_failed"],
                       what="the event of the refused path")
    assert len(early) == 1 and (early[0]["status"], early[0]["decision"]) == (400, "rejected"), early
    assert "correlationId" not in early[0] and early[0]["eventId"]
    e = ev[r_404.headers["x-request-id"]]
    assert (e["status"], e["decision"], e["detail"]) == (404, "rejected", "route_not_found")
    e = ev[r_abort.headers["x-request-id"]]
    assert (e["status"], e["decision"]) == (502, "rejected")


@pytest.mark.timeout(60)
def test_bad_and_oversized_bodies_flow_and_are_recorded(audit: tuple[Gateway, Collector, Path]) -> None:
    """Audit never answers for a body: it records what it saw and lets the
    request go on. The malformed body is then refused by the tool ACL (the
    next filter that must judge it), and audit records that decision."""
    gw, collector, _ = audit
    big = {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
           "params": {"name": "classify_content", "arguments": {"text": "x" * 100_000 + CANARY}}}

    def chunks() -> Iterator[bytes]:  # no content-length: a streamed request body
        data = json.dumps(big).encode()
        for i in range(0, len(data), 8192):
            yield data[i:i + 8192]

    with gw.http() as c:
        bad = c.post("/mcp", content=b'{"jsonrpc":"2.0","id":1,"method":', headers={**MCP_ACCEPT, "content-type": "application/json"})
        sized = mcp_post(c, big)
        streamed = c.post("/mcp", content=chunks(), headers={**MCP_ACCEPT, "content-type": "application/json"})
    for r in (bad, sized, streamed):
        assert r.headers.get("server") != "envoy" or r.status_code < 500, r.text
    assert sized.status_code == 200 and streamed.status_code == 200, (sized.text[:200], streamed.text[:200])
    ev = collector.wait_for([r.headers["x-request-id"] for r in (bad, sized, streamed)])
    e = ev[bad.headers["x-request-id"]]
    assert e["requestBody"] == "invalid: invalid_json" and e["decision"] == "bad_request"
    assert e["status"] == bad.status_code
    for r in (sized, streamed):
        # Over audit's own limit (64 KiB here): the tool ACL judged the body
        # and the event carries the facts it published.
        e = ev[r.headers["x-request-id"]]
        assert "requestBody" not in e and e["status"] == 200, e
        assert (e["jsonrpcMethod"], e["jsonrpcId"], e["toolName"]) == ("tools/call", 5, "classify_content"), e
    assert CANARY not in gw.stack.audit_events_path.read_text()


# --------------------------------------------------------------------------- delivery


@pytest.mark.timeout(60)
def test_batch_size_and_flush_interval(batching: tuple[Gateway, Collector]) -> None:
    gw, collector = batching
    quiesce(gw.stack, collector)
    with gw.http() as c:
        for i in range(4):
            assert mcp_post(c, tools_list(i)).status_code == 200
        # a full batch (4) leaves at once, without waiting for the 1.5 s interval
        wait_until(lambda: collector.stats()["batch_sizes"] == [4], timeout=10, what="a batch of 4")
        sent_at = time.time()
        assert mcp_post(c, tools_list(9)).status_code == 200
    wait_until(lambda: len(collector.stats()["batch_sizes"]) == 2, timeout=10, what="the flush of the 5th event")
    st = collector.stats()
    assert st["batch_sizes"] == [4, 1]
    # the lone event waited for the flush interval (lower bound only: never flaky)
    assert st["batch_times"][1] - sent_at >= 1.4, st


@pytest.mark.timeout(90)
def test_collector_down_then_back_delivers_every_buffered_event_once(batching: tuple[Gateway, Collector]) -> None:
    gw, collector = batching
    before = quiesce(gw.stack, collector)
    proc = collector.proc()
    proc.stop()
    rids = []
    with gw.http() as c:
        for i in range(8):
            r = mcp_post(c, tools_list(i))
            assert r.status_code == 200
            rids.append(r.headers["x-request-id"])
    wait_until(lambda: counters(gw.stack)["batches_failed"] > before["batches_failed"] + 1, what="failed batches")
    proc.start()
    collector.stack._wait([proc])
    collector.wait_for(rids, timeout=30)
    # the collector stores a batch before it answers: wait for the sender to hear back
    after = wait_until(lambda: (c := counters(gw.stack))["events_sent"] - before["events_sent"] == 8 and c,
                       what="8 events acknowledged")
    assert after["events_retried"] > before["events_retried"]
    assert after["events_dropped"] == before["events_dropped"]
    assert collector.stats()["duplicates"] == 0


@pytest.mark.timeout(60)
def test_collector_failing_with_5xx_is_retried(batching: tuple[Gateway, Collector]) -> None:
    gw, collector = batching
    before = quiesce(gw.stack, collector)
    collector.post("/admin/fail", {"status": 503, "count": 3})
    with gw.http() as c:
        rids = [mcp_post(c, tools_list(i)).headers["x-request-id"] for i in range(4)]
    collector.wait_for(rids)
    after = wait_until(lambda: (c := counters(gw.stack))["events_sent"] - before["events_sent"] == 4 and c,
                       what="4 events acknowledged")
    assert collector.stats()["failures_injected"] == 3
    assert after["batches_failed"] - before["batches_failed"] == 3
    assert after["events_retried"] - before["events_retried"] == 12
    assert after["events_sent"] - before["events_sent"] == 4


@pytest.mark.timeout(90)
def test_stalled_collector_never_slows_traffic_and_buffer_is_bounded(batching: tuple[Gateway, Collector]) -> None:
    """The collector holds every POST unanswered. Requests keep completing
    (generous bound, not a latency assertion: see scripts/bench_audit.py for
    numbers); the sender holds at most maxBufferedEvents (10) and counts the
    rest as dropped; once the collector answers, the 10 arrive exactly once."""
    gw, collector = batching
    before = quiesce(gw.stack, collector)
    collector.post("/admin/block", {"block": True})
    try:
        rids = []
        with gw.http(timeout=10) as c:
            for i in range(16):
                t0 = time.monotonic()
                r = mcp_post(c, tools_list(i))
                assert r.status_code == 200 and time.monotonic() - t0 < 5
                rids.append(r.headers["x-request-id"])
        wait_until(lambda: collector.stats()["held"] == 1, what="the collector to hold a batch")
        wait_until(lambda: counters(gw.stack)["events_dropped"] - before["events_dropped"] == 6, what="6 drops")
        assert counters(gw.stack)["buffered_events"] == 10
    finally:
        collector.post("/admin/block", {"block": False})
    got = wait_until(lambda: collector.stats()["events"] == 10 and collector.by_id(), what="10 events")
    assert set(got) == set(rids[:10]), "the first 10 (buffered) events, each once"
    assert collector.stats()["duplicates"] == 0
    after = wait_until(lambda: (c := counters(gw.stack))["events_sent"] - before["events_sent"] == 10 and c,
                       what="10 events acknowledged")
    assert after["events_dropped"] - before["events_dropped"] == 6


@pytest.mark.timeout(60)
def test_default_body_limit_never_makes_envoy_refuse(gateway: Gateway) -> None:
    """The shipped config (default maxRequestBodyBytes) with a body just under
    Envoy's 1 MiB buffer limit: audit stops buffering in time, no 413."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "classify_content", "arguments": {"text": "y" * 1_000_000}}}
    with gw_http(gateway) as c:
        r = mcp_post(c, body)
    assert r.status_code == 200, r.text[:300]


def gw_http(gateway: Gateway) -> httpx.Client:
    return gateway.http(timeout=60)


@pytest.mark.timeout(60)
def test_without_a_sender_traffic_flows_and_drops_are_counted(start_stack: Callable[..., Stack],
                                                              default_headers: dict[str, str]) -> None:
    """The bootstrap service forgotten: the filter cannot find the queue. It
    must neither block nor fail requests; it counts and logs the loss."""
    s = start_stack("audit-nosender", config="envoy/gateway.yaml", backends=("mcp",),
                    patch=lambda cfg: cfg.pop("bootstrap_extensions"))
    with Gateway(s, default_headers).http() as c:
        for i in range(3):
            assert mcp_post(c, tools_list(i)).status_code == 200
    # Events leave the worker's outbox on its next tick (at most 250 ms).
    wait_until(lambda: counters(s)["events_dropped"] >= 3, timeout=10, what="the outbox flush")
    after = counters(s)
    assert after["events"] == 3 and after["events_dropped"] == 3, after
    assert "events are dropped (is the audit WasmService in bootstrap_extensions?)" in s.log_path("envoy").read_text()


@pytest.mark.timeout(60)
def test_otlp_destination(start_stack: Callable[..., Stack], default_headers: dict[str, str]) -> None:
    s = start_stack("audit-otlp", config="envoy/gateway.yaml", backends=("mcp", "audit"),
                    filter_configs={"gw_audit_sender": sender(type="otlp", url="http://otel-collector:4318/v1/logs",
                                                              batchSize=2, flushIntervalMs=200, serviceName="gw-test")})
    gw, collector = Gateway(s, default_headers), Collector(s)
    with gw.http() as c:
        r = mcp_post(c, {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                         "params": {"name": "search_patterns", "arguments": {"query": CANARY}}}, path="/mcp/tools/call")
    rid = r.headers["x-request-id"]
    ev = collector.wait_for([rid])
    e = ev[rid]
    assert (e["toolName"], e["toolError"], e["jsonrpcId"], e["status"]) == ("search_patterns", False, 3, 200)
    assert e["otlp"]["service"] == "gw-test" and e["otlp"]["scope"] == "gw.audit"
    assert e["otlp"]["severityText"] == "INFO" and e["otlp"]["body"] == "tools/call allowed 200"
    assert int(e["otlp"]["timeUnixNano"]) // 10**6 > 0
    st = collector.stats()
    # parsed with the official OpenTelemetry protos (unknown fields would be a 400)
    assert st["otlp_schema"] == "opentelemetry-proto" and st["rejected"] == 0, st
    bogus = httpx.post(collector.url + "/v1/logs", json={"resourceLogs": [{"bogus": 1}]}, timeout=5)
    assert bogus.status_code == 400
    assert CANARY not in s.audit_events_path.read_text()

    # Log injection and bounds on the OTLP path: the forged line stays in its
    # attribute and in the record's body, the cut id is named in `truncated`.
    forged = 'tools/list\n{"eventId":"forged-2"}\r\u0085\u2028'
    with gw.http() as c:
        r = mcp_post(c, {"jsonrpc": "2.0", "id": "j" * 1000, "method": forged})
    rid = r.headers["x-request-id"]
    e = collector.wait_for([rid])[rid]
    assert e["jsonrpcMethod"] == forged and e["truncated"] == ["jsonrpcId"], e
    assert e["jsonrpcId"].endswith("…") and len(e["jsonrpcId"].encode()) <= 128
    assert e["otlp"]["body"].startswith(forged + " ")
    assert "forged-2" not in collector.by_id()
    assert collector.stats()["raw_line_breaks"] == 0


# --------------------------------------------------------------------------- judged bodies, bounds, refusals


def rpc_reply(r: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer of a JSON or an SSE response."""
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        for line in r.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                msg = json.loads(line[5:])
                if "id" in msg:
                    return msg
        raise AssertionError(f"no answer in the stream: {r.text[:300]}")
    return r.json()


def body_counters(stack: Stack) -> dict[str, int]:
    status, text = stack.admin("/stats?filter=^wasmcustom\\.gw\\.body\\.")
    assert status == 200
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        out[name.strip().rsplit(".", 1)[-1]] = int(value.strip() or 0)
    return out


@pytest.mark.timeout(90)
def test_bodies_over_the_audit_limit_keep_what_the_acl_judged(shipped: tuple[Gateway, Collector]) -> None:
    """Finding 3 of issue 10: a tools/call padded to 700 KiB (over audit's
    512 KiB parse limit, under the tool ACL's 1 MiB) is judged by the ACL;
    its event must still name the method and the tool, allowed or denied,
    and the body is parsed once (by the ACL), not twice."""
    gw, collector = shipped
    pad = "p" * (700 * 1024) + CANARY
    sentinel = {"x-agent-api-key": "gw-demo-sentinel-1"}
    httpx.post(gw.stack.upstream_url("mcp_upstream") + "/stats/reset", timeout=5)
    before = body_counters(gw.stack)
    with gw.http(headers=sentinel, timeout=60) as c:
        allowed = mcp_post(c, tools_call("classify_content", {"text": pad}, i=71))
        denied = mcp_post(c, tools_call("execute_code", {"code": pad}, i=72))
        denied_path = mcp_post(c, tools_call("execute_code", {"code": pad}, i=73), path="/mcp/tools/call")
    assert allowed.status_code == 200 and "error" not in rpc_reply(allowed), allowed.text[:300]
    assert denied.status_code == 200 and rpc_reply(denied)["error"], denied.text[:300]
    assert denied_path.status_code == 403, denied_path.text[:300]
    # What reached the MCP server: the allowed call only.
    tools = gw.upstream_stats()["tools"]
    assert tools.get("classify_content") == 1 and "execute_code" not in tools, tools
    rids = [r.headers["x-request-id"] for r in (allowed, denied, denied_path)]
    ev = collector.wait_for(rids)
    want = [("allowed", "classify_content", 71), ("tool_denied", "execute_code", 72),
            ("tool_denied", "execute_code", 73)]
    for rid, (decision, tool, rpc_id) in zip(rids, want):
        e = ev[rid]
        assert (e["decision"], e["jsonrpcMethod"], e["toolName"], e["jsonrpcId"]) == (decision, "tools/call",
                                                                                     tool, rpc_id), e
        assert e["protocolMethod"] == "tools/call" and e["agentId"] == "sentinel-1"
        assert "requestBody" not in e, e
    assert ev[rids[0]]["toolError"] is False  # the response capture still followed
    after = body_counters(gw.stack)
    assert after["parsed"] - before.get("parsed", 0) == 3, (before, after)
    assert CANARY not in gw.stack.audit_events_path.read_text()


@pytest.mark.timeout(90)
def test_client_fields_are_bounded_marked_and_delivered(shipped: tuple[Gateway, Collector]) -> None:
    """Finding 4: a 500 KB JSON-RPC id, a 100 KB method and a 60 KB path.
    The gateway answers as usual (the upstream gets the id whole and echoes
    it), each event stays under maxEventBytes with the cut fields named in
    `truncated`, and the batch they travel in is delivered."""
    gw, collector = shipped
    big_id = "i" * 500_000
    with gw.http(timeout=60) as c:
        by_id = mcp_post(c, {"jsonrpc": "2.0", "id": big_id, "method": "tools/call",
                             "params": {"name": "search_patterns", "arguments": {"query": "x"}}})
        by_method = mcp_post(c, {"jsonrpc": "2.0", "id": 2, "method": "m" * 100_000})
        by_path = c.get("/mcp/" + "q" * 60_000)
    assert by_id.status_code == 200 and rpc_reply(by_id)["id"] == big_id, by_id.text[:200]
    assert by_method.status_code < 500, by_method.text[:300]
    assert by_path.status_code == 404
    rids = [r.headers["x-request-id"] for r in (by_id, by_method, by_path)]
    ev = collector.wait_for(rids)
    for rid, field in zip(rids, ["jsonrpcId", "jsonrpcMethod", "path"]):
        e = ev[rid]
        assert len(json.dumps(e, separators=(",", ":"))) <= 16384, len(json.dumps(e))
        assert field in e["truncated"], e["truncated"]
        assert e[field].endswith("…") and len(e[field].encode()) <= 1024, e[field][:50]
        assert e["decision"] and e["status"] == {"jsonrpcId": 200, "jsonrpcMethod": by_method.status_code,
                                                 "path": 404}[field]
    e = ev[rids[0]]
    assert (e["toolName"], e["decision"], e["toolError"]) == ("search_patterns", "allowed", False)
    assert e["jsonrpcId"].startswith("iiii") and len(e["jsonrpcId"]) <= 128
    assert ev[rids[1]]["jsonrpcMethod"].startswith("mmmm")
    assert ev[rids[2]]["path"].startswith("/mcp/qqqq")
    for line in gw.stack.audit_events_path.read_text().splitlines():
        assert len(line) <= 16384


@pytest.mark.timeout(60)
def test_log_injection_stays_inside_the_field(shipped: tuple[Gateway, Collector]) -> None:
    """Newlines, NEL and U+2028 in a client field: one event, the text as
    sent inside its field, no raw line break in what the sender POSTed."""
    gw, collector = shipped
    forged = 'tools/list\n{"eventId":"forged-1","decision":"allowed"}\r\u0085\u2028\u2029\x7f'
    before = collector.stats()["raw_line_breaks"]
    with gw.http() as c:
        r = mcp_post(c, {"jsonrpc": "2.0", "id": forged, "method": forged})
    rid = r.headers["x-request-id"]
    e = collector.wait_for([rid])[rid]
    assert (e["jsonrpcMethod"], e["jsonrpcId"]) == (forged, forged)
    assert "forged-1" not in collector.by_id()
    assert collector.stats()["raw_line_breaks"] == before
    for line in gw.stack.audit_events_path.read_text().splitlines():
        json.loads(line)  # every line of the store is one whole event


def one_event_bytes(gw: Gateway, collector: Collector) -> int:
    with gw.http() as c:
        rid = mcp_post(c, tools_list(1)).headers["x-request-id"]
    e = collector.wait_for([rid])[rid]
    return len(json.dumps(e, separators=(",", ":")))


def pile_up(gw: Gateway, collector: Collector, bodies: list[dict[str, Any]]) -> list[str]:
    """Send `bodies` while the collector holds its POSTs, until the sender
    buffers them all: the next batch is then a full one."""
    before = counters(gw.stack)
    collector.post("/admin/block", {"block": True})
    rids = []
    with gw.http() as c:
        for body in bodies:
            r = mcp_post(c, body)
            assert r.status_code == 200
            rids.append(r.headers["x-request-id"])
    wait_until(lambda: counters(gw.stack)["events_queued"] - before["events_queued"] == len(bodies),
               what="every event in the sender's buffer")
    return rids


@pytest.mark.timeout(120)
def test_batches_refused_as_too_large_are_split_not_dropped(refusing: tuple[Gateway, Collector]) -> None:
    """The collector answers 413 to any batch over ~2.5 events: batches of
    20 are halved until they pass; every event arrives exactly once."""
    gw, collector = refusing
    quiesce(gw.stack, collector)
    limit = int(one_event_bytes(gw, collector) * 2.5)
    before = quiesce(gw.stack, collector)
    try:
        rids = pile_up(gw, collector, [tools_list(i) for i in range(30)])
        collector.post("/admin/max-bytes", {"bytes": limit})
        collector.post("/admin/block", {"block": False})
        collector.wait_for(rids, timeout=60)
        after = wait_until(lambda: (c := counters(gw.stack))["events_sent"] - before["events_sent"] == 30 and c,
                           what="30 events acknowledged")
    finally:
        collector.post("/admin/block", {"block": False})
        collector.post("/admin/max-bytes", {"bytes": None})
    st = collector.stats()
    assert st["too_large"] >= 2 and st["duplicates"] == 0 and st["unique_events"] == 30, st
    assert max(st["batch_sizes"]) <= 2, st["batch_sizes"]
    assert after["batches_split"] - before.get("batches_split", 0) >= 2
    assert after["events_dropped"] == before["events_dropped"]
    assert after.get("events_refused", 0) == before.get("events_refused", 0)


@pytest.mark.timeout(120)
def test_one_refused_event_does_not_take_its_batch_with_it(refusing: tuple[Gateway, Collector]) -> None:
    """The collector answers 400 to any batch holding one poisoned event: the
    sender splits until it isolates it; the 19 others arrive exactly once."""
    gw, collector = refusing
    before = quiesce(gw.stack, collector)
    bodies = [tools_list(i) for i in range(20)]
    bodies[13] = tools_list("poison-7c1e")  # type: ignore[arg-type]
    try:
        rids = pile_up(gw, collector, bodies)
        collector.post("/admin/refuse", {"contains": "poison-7c1e", "status": 400})
        collector.post("/admin/block", {"block": False})
        good = rids[:13] + rids[14:]
        collector.wait_for(good, timeout=60)
        after = wait_until(lambda: (c := counters(gw.stack))["events_dropped"] - before["events_dropped"] == 1
                           and c["events_sent"] - before["events_sent"] == 19 and c,
                           what="19 sent, 1 dropped")
    finally:
        collector.post("/admin/block", {"block": False})
        collector.post("/admin/refuse", {"contains": None})
    assert rids[13] not in collector.by_id()
    st = collector.stats()
    assert st["duplicates"] == 0 and st["unique_events"] == 19 and st["refused"] >= 2, st
    assert after["events_refused"] - before.get("events_refused", 0) == 1
    assert after["batches_split"] - before.get("batches_split", 0) >= 2
