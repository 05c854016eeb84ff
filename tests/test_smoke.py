"""End to end through stock Envoy + our Wasm filters, over TLS, with the
official SDK clients. These tests do not depend on any policy: they must pass
whatever the filters are configured to allow by default (add credentials via
the `default_headers` fixture once identity enforces them)."""

from __future__ import annotations

import json
import ssl
from typing import Any

import httpx
import pytest

from conftest import Gateway
from gwstack import ONE_MODULE
from gwstack.support import run

RECIPE_TOOLS = {
    "search_patterns", "classify_content", "read_config", "execute_code", "write_file",
    "generate_video", "render_scene", "read_template", "delete_scene", "deploy_application",
}


# --------------------------------------------------------------------------- filters loaded


def test_all_four_wasm_filters_are_loaded(gateway: Gateway) -> None:
    """Fails if Envoy were running without one of our filters (the one-module
    chain with its four sections, or the four modules under GW_FOUR_MODULES=1)."""
    dump = json.loads(gateway.admin("/config_dump?resource=static_listeners"))
    text = json.dumps(dump)
    vm_ids = ("gw_gateway",) if ONE_MODULE else ("gw_audit", "gw_identity", "gw_tool_acl", "gw_rate_limit")
    for vm_id in vm_ids:
        assert f'"vm_id": "{vm_id}"' in text, vm_id
    if ONE_MODULE:
        for section in ("audit:", "identity:", "toolAcl:", "rateLimit:"):
            assert section in text, section
    stats = gateway.admin("/stats?filter=^wasm")
    lines = dict(line.split(": ", 1) for line in stats.splitlines() if ": " in line)
    for vm_id in vm_ids:
        assert f"wasm.{vm_id}.vm_reload_failure" in lines, (vm_id, stats[:2000])
        assert lines[f"wasm.{vm_id}.vm_reload_failure"] == "0"
    # one VM per filter per worker (+ main thread), all alive
    assert int(lines["wasm.envoy.wasm.runtime.v8.active"]) >= 4


def test_every_request_passes_through_the_filters(gateway: Gateway) -> None:
    """Each filter defines per-request counters (wasmcustom.*); a request to the
    gateway must move at least one counter of each filter."""

    def counters() -> dict[str, int]:
        out = {}
        for line in gateway.admin("/stats?filter=^wasmcustom").splitlines():
            if ": " in line:
                k, v = line.split(": ", 1)
                if v.strip().lstrip("-").isdigit():
                    out[k] = int(v)
        return out

    before = counters()
    with gateway.http() as c:
        assert c.get("/.well-known/agent-card.json").status_code == 200
    after = counters()
    for f in ("audit", "identity", "tool_acl", "rate_limit"):
        moved = [k for k in after if f".{f}." in k and after[k] != before.get(k, 0)]
        assert moved, f"no wasmcustom counter of the {f} filter moved: {sorted(after)}"


# --------------------------------------------------------------------------- TLS / Envoy basics


def test_tls_is_real(gateway: Gateway) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(gateway.url("/.well-known/agent-card.json"), verify=ssl.create_default_context(), timeout=5)
    with pytest.raises(httpx.HTTPError):
        httpx.get(gateway.url("/.well-known/agent-card.json").replace("https", "http"), timeout=5)


def test_request_id_is_always_returned(gateway: Gateway) -> None:
    with gateway.http() as c:
        for path in ("/.well-known/agent-card.json", "/no-such-route"):
            r = c.get(path, headers={"x-request-id": "client-chosen"})
            assert r.headers.get("x-request-id"), path
            # edge proxy: an external client cannot choose the correlation id
            assert r.headers["x-request-id"] != "client-chosen"


def test_path_hygiene(gateway: Gateway) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    hdrs = {"accept": "application/json, text/event-stream"}
    with gateway.http(hdrs) as c:
        assert c.post("/mcp%2Ftools/call", json=body).status_code == 400  # escaped slash rejected
        assert c.post("/MCP/tools/call", json=body).status_code == 404    # case-sensitive, no route
        assert c.post("/mcp/tools/call/", json=body).status_code == 404
        merged = httpx.URL(gateway.base_url).copy_with(raw_path=b"//mcp//tools/list")
        assert c.post(merged, json=body).status_code == 200  # merge_slashes: same as /mcp/tools/list


def test_recipe_alias_paths_reach_the_upstreams(gateway: Gateway) -> None:
    hdrs = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
    with gateway.http(hdrs) as c:
        for path in ("/mcp/tools/list", "/mcp/tools/call", "/mcp/initialize"):
            r = c.post(path, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert r.status_code == 200, (path, r.text)
            assert "search_patterns" in r.text
        for path in ("/a2a/agent-card", "/a2a/.well-known/agent-card.json", "/.well-known/agent.json"):
            r = c.get(path)
            assert r.status_code == 200 and r.json()["name"] == "gateway-example-agent", path
        msg = {"kind": "message", "messageId": "m-1", "role": "user", "parts": [{"kind": "text", "text": "hi"}]}
        r = c.post("/a2a/tasks/send", json={"jsonrpc": "2.0", "id": 7, "method": "message/send",
                                            "params": {"message": msg}})
        assert r.status_code == 200, r.text
        assert r.json()["result"]["status"]["state"] == "completed"


# --------------------------------------------------------------------------- MCP


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_mcp_official_client(gateway: Gateway, mode: str) -> None:
    async def go() -> None:
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append((p, total, message))

        async with gateway.mcp_client(mode=mode) as client:
            assert client.server_info.name == "gateway-example-tools"
            tools = {t.name for t in (await client.list_tools()).tools}
            assert RECIPE_TOOLS <= tools

            r = await client.call_tool("search_patterns", {"query": "map"})
            assert not r.is_error
            assert r.structured_content["matches"] == ["map-object"]

            r = await client.call_tool("generate_video", {"prompt": "a cat", "steps": 4},
                                       progress_callback=on_progress)
            assert not r.is_error and r.structured_content["frames"] == 96
            assert [p for p, _, _ in progress] == [1, 2, 3, 4], progress

            r = await client.call_tool("execute_code", {"code": "raise SystemExit"})
            assert r.is_error

    run(go())


def test_mcp_upstream_receives_headers_and_counts(gateway: Gateway) -> None:
    before = gateway.upstream_stats()["methods"].get("tools/list", 0)

    async def go() -> dict[str, Any]:
        async with gateway.mcp_client() as client:
            await client.list_tools()
            r = await client.call_tool("whoami", {})
            return r.structured_content

    who = run(go())
    assert set(who["verified"]) == {"agentId", "agentName", "agentOwner"}
    assert "x-request-id" in who["requestHeaders"]  # set by Envoy
    # The tool ACL caches the upstream's tools/list (docs/tool-acl.md), so an
    # earlier test may have filled the cache; tests/test_tool_acl.py counts it.
    assert before <= gateway.upstream_stats()["methods"]["tools/list"] <= before + 1


# --------------------------------------------------------------------------- A2A


def _state_name(state: int) -> str:
    from a2a.types import TaskState

    return TaskState.Name(state)


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_a2a_send(gateway: Gateway, version: str) -> None:
    from a2a.helpers import get_message_text, new_text_message
    from a2a.types import Role, SendMessageRequest

    async def go() -> list[Any]:
        async with gateway.a2a_client(version=version, streaming=False) as client:
            req = SendMessageRequest(message=new_text_message("hello gateway", role=Role.ROLE_USER))
            return [ev async for ev in client.send_message(req)]

    events = run(go())
    assert len(events) == 1 and events[0].WhichOneof("payload") == "task"
    task = events[0].task
    assert _state_name(task.status.state) == "TASK_STATE_COMPLETED"
    assert "done: hello gateway" in get_message_text(task.status.message)


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_a2a_stream(gateway: Gateway, version: str) -> None:
    from a2a.helpers import new_text_message
    from a2a.types import Role, SendMessageRequest

    async def go() -> list[Any]:
        async with gateway.a2a_client(version=version, streaming=True) as client:
            req = SendMessageRequest(message=new_text_message("stream please steps=4", role=Role.ROLE_USER))
            return [ev async for ev in client.send_message(req)]

    events = run(go())
    kinds = [ev.WhichOneof("payload") for ev in events]
    states = [_state_name(ev.status_update.status.state) for ev in events if ev.WhichOneof("payload") == "status_update"]
    assert states.count("TASK_STATE_WORKING") == 4, (kinds, states)
    assert states[-1] == "TASK_STATE_COMPLETED", states
    assert "artifact_update" in kinds


def test_a2a_raw_stream_is_sse_through_envoy(gateway: Gateway) -> None:
    """A 0.3 `message/stream` arrives as SSE events, the last one final=true."""
    msg = {"kind": "message", "messageId": "m-2", "role": "user", "parts": [{"kind": "text", "text": "steps=2"}]}
    body = {"jsonrpc": "2.0", "id": "s1", "method": "message/stream", "params": {"message": msg}}
    with gateway.http({"accept": "text/event-stream"}) as c:
        with c.stream("POST", "/a2a/tasks/sendSubscribe", json=body) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    results = [e["result"] for e in events]
    finals = [x for x in results if x.get("kind") == "status-update" and x.get("final")]
    assert len(finals) == 1 and finals[0]["status"]["state"] == "completed"
    assert results[-1] is finals[0]


# --------------------------------------------------------------------------- streaming is not buffered


def _sse_arrival_times(c: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str]) -> list[float]:
    import time

    t0 = time.monotonic()
    times = []
    with c.stream("POST", path, json=body, headers=headers) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data:"):
                times.append(time.monotonic() - t0)
    return times


def test_mcp_sse_events_are_streamed_not_buffered(gateway: Gateway) -> None:
    """Progress events must reach the client while the tool still runs: the
    first event long before the last (4 steps x 400 ms)."""
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "generate_video", "arguments": {"prompt": "p", "steps": 4, "delay_ms": 400},
                       "_meta": {"progressToken": "tok"}}}
    hdrs = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}
    with gateway.http() as c:
        times = _sse_arrival_times(c, "/mcp/tools/call", body, hdrs)
    assert len(times) == 5, times  # 4 progress notifications + the result
    assert times[-1] - times[0] > 1.0, times


def test_a2a_sse_events_are_streamed_not_buffered(gateway: Gateway) -> None:
    msg = {"kind": "message", "messageId": "m-3", "role": "user",
           "parts": [{"kind": "text", "text": "steps=4 delay_ms=400"}]}
    body = {"jsonrpc": "2.0", "id": "s2", "method": "message/stream", "params": {"message": msg}}
    with gateway.http() as c:
        times = _sse_arrival_times(c, "/a2a", body, {"accept": "text/event-stream"})
    assert len(times) >= 6, times
    assert times[-1] - times[0] > 1.0, times
