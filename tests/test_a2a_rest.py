"""The A2A HTTP+JSON (REST) binding through the gateway, governed like
JSON-RPC: the official a2a-sdk client on the card's HTTP+JSON interfaces
(`/a2a/rest`, 1.0 and 0.3), the real identity filter (demo keys), the
example agent as upstream and the example audit collector.

Each test checks what reached the agent (its task store, the verified
identity it saw, its execution counter), not only what the client got.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from conftest import Gateway
from gwstack.support import run
from support import REST, V1, client, final_task, raw, rest_send_body, send, wait_for_events
from support import demo_key as key


def jsonrpc_send(i: int, method: str = "SendMessage") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": rest_send_body()}


def executions(gw: Gateway) -> int:
    return int(gw.upstream_stats("a2a_upstream")["executions"])


# --------------------------------------------------------------------------- allowed


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_rest_send_with_the_official_client_reaches_the_agent(gateway: Gateway, version: str) -> None:
    from a2a.types import GetTaskRequest, TaskState

    text = f"hello rest {uuid.uuid4().hex[:6]}"

    async def go() -> tuple[Any, Any]:
        async with client(gateway, key("sentinel-1"), version=version) as c:
            task = final_task(await send(c, text))
            again = await c.get_task(GetTaskRequest(id=task.id))
            return task, again

    before = executions(gateway)
    task, again = run(go())
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert [p.text for a in task.artifacts for p in a.parts] == [f"echo: {text}"]
    # The agent ran it once, for the agent the gateway verified.
    assert executions(gateway) == before + 1
    assert task.metadata["verified"]["agentId"] == "sentinel-1"
    # GET /tasks/{id} through the gateway: the agent's stored task.
    assert again.id == task.id and again.status.state == TaskState.TASK_STATE_COMPLETED


def test_rest_send_of_the_issue_passes_untouched(gateway: Gateway) -> None:
    """Issue 11's request: it used to get 400 -32600 from the rate limit."""
    before = executions(gateway)
    with raw(gateway, key("sentinel-1")) as c:
        r = c.post(f"{REST}/message:send", json=rest_send_body("issue eleven"), headers=V1)
        assert r.status_code == 200, r.text
        task = r.json()["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED"
        assert task["history"][0]["parts"] == [{"text": "issue eleven"}]
        g = c.get(f"{REST}/tasks/{task['id']}", headers=V1)
        assert g.status_code == 200, g.text
        assert g.json()["id"] == task["id"]
        # A send whose body is not JSON gets a REST error (400, the binding's
        # format: the A2A stage cannot read its message.taskId; not a
        # JSON-RPC -32600), and nothing runs.
        bad = c.post(f"{REST}/message:send", content=b"not json at all",
                     headers={**V1, "content-type": "application/json"})
        assert bad.status_code == 400, bad.text
        assert "JSON-RPC" not in bad.text and "-32600" not in bad.text
    assert executions(gateway) == before + 1


def test_rest_stream_is_streamed(gateway: Gateway) -> None:
    from a2a.types import TaskState

    async def go() -> list[Any]:
        async with client(gateway, key("sentinel-1"), streaming=True) as c:
            return await send(c, "stream steps=3")

    events = run(go())
    kinds = [ev.WhichOneof("payload") for ev in events]
    states = [ev.status_update.status.state for ev in events if ev.WhichOneof("payload") == "status_update"]
    assert kinds[0] == "task", kinds
    assert states.count(TaskState.TASK_STATE_WORKING) == 3, states
    assert states[-1] == TaskState.TASK_STATE_COMPLETED
    assert "artifact_update" in kinds


# --------------------------------------------------------------------------- identity


def test_rest_requires_a_verified_agent(gateway: Gateway) -> None:
    before = executions(gateway)
    with raw(gateway, {}) as c:
        for method, path, body in [("POST", "/message:send", rest_send_body()),
                                   ("POST", "/message:stream", rest_send_body()),
                                   ("POST", "/v1/message:send", rest_send_body()),
                                   ("GET", "/tasks/some-task", None),
                                   ("GET", "/tasks", None)]:
            r = c.request(method, REST + path, json=body, headers=V1)
            assert r.status_code == 401, (path, r.status_code, r.text)
        r = c.post(f"{REST}/message:send", json=rest_send_body(),
                   headers={**V1, "x-agent-api-key": "not-a-demo-key", "x-verified-agent-id": "admin-1"})
        assert r.status_code in (401, 503), r.text
    assert executions(gateway) == before

    async def go() -> None:
        async with client(gateway, {}) as c:
            await send(c, "hello")

    with pytest.raises(Exception):
        run(go())
    assert executions(gateway) == before


# --------------------------------------------------------------------------- limits

SEND_LIMIT = """\
limits:
  - path: /a2a/tasks/send
    keySelector: "#[attributes.headers['x-verified-agent-id']]"
    maxRequests: 4
    windowSeconds: 60
  - path: /a2a/tasks/sendSubscribe
    keySelector: "#[attributes.headers['x-verified-agent-id']]"
    maxRequests: 2
    windowSeconds: 60
"""


@pytest.fixture(scope="module")
def limited(start_stack: Callable[..., Any]) -> Any:
    s = start_stack("a2a-rest-limit", config="envoy/gateway.yaml", backends=("a2a",),
                    filter_configs={"gw_rate_limit": SEND_LIMIT})
    yield Gateway(s, {})
    s.stop()


def test_rest_and_jsonrpc_sends_share_one_window(limited: Gateway) -> None:
    """4 sends a minute: REST 1.0, REST 0.3 (/v1), JSON-RPC 1.0 and 0.3 by
    the same agent take one slot each of one window; the fifth, on any
    binding or spelling, is refused before the agent."""
    gw = limited
    sentinel = key("sentinel-1")
    before = executions(gw)

    async def sends() -> None:
        async with client(gw, sentinel, "1.0", "HTTP+JSON") as c:
            await send(c, "one")
        async with client(gw, sentinel, "0.3", "HTTP+JSON") as c:
            await send(c, "two")
        async with client(gw, sentinel, "1.0", "JSONRPC") as c:
            await send(c, "three")
        async with client(gw, sentinel, "0.3", "JSONRPC") as c:
            await send(c, "four")

    run(sends())
    assert executions(gw) == before + 4
    with raw(gw, sentinel) as c:
        for path, body, headers in [
            (f"{REST}/message:send", rest_send_body(), V1),
            (f"{REST}/v1/message:send", rest_send_body(), {}),
            # An encoded colon is the same route to the agent's router.
            (f"{REST}/message%3Asend", rest_send_body(), V1),
            ("/a2a", jsonrpc_send(5), V1),
            ("/a2a/tasks/send", jsonrpc_send(6, "message/send"), {}),
        ]:
            r = c.post(path, json=body, headers=headers)
            assert r.status_code == 429, (path, r.status_code, r.text)
            assert r.headers["ratelimit-policy"] == '"tasks/send";q=4;w=60'
            assert 1 <= int(r.headers["retry-after"]) <= 60
            if path.startswith(REST):
                # The REST binding's error format (google.rpc.Status).
                err = r.json()["error"]
                assert (err["code"], err["status"]) == (429, "RESOURCE_EXHAUSTED"), r.text
                assert err["details"][0]["metadata"]["agentId"] == "sentinel-1"
        # The stream window is another one, shared the same way.
        for path, body in [(f"{REST}/message:stream", rest_send_body("s steps=0")),
                           ("/a2a", {**jsonrpc_send(7, "SendStreamingMessage")})]:
            r = c.post(path, json=body, headers={**V1, "accept": "text/event-stream"})
            assert r.status_code == 200, r.text
        r = c.post(f"{REST}/message:stream", json=rest_send_body(), headers=V1)
        assert r.status_code == 429, r.text
        # Reads are not sends: GET /tasks/{id} passes.
        assert c.get(f"{REST}/tasks/unknown-task", headers=V1).status_code == 404
    assert executions(gw) == before + 6

    async def refused() -> None:
        async with client(gw, sentinel, "1.0", "HTTP+JSON") as c:
            await send(c, "five")

    with pytest.raises(Exception):
        run(refused())
    # Another agent has its own window.
    with raw(gw, key("alchemy-1")) as c:
        r = c.post(f"{REST}/message:send", json=rest_send_body(), headers=V1)
        assert r.status_code == 200, r.text
    assert executions(gw) == before + 7


# --------------------------------------------------------------------------- audit


def test_rest_requests_are_audited_like_jsonrpc(gateway: Gateway) -> None:
    with raw(gateway, key("sentinel-1")) as c:
        sent = c.post(f"{REST}/message:send", json=rest_send_body("audit me"), headers=V1)
        assert sent.status_code == 200, sent.text
        task_id = sent.json()["task"]["id"]
        got = c.get(f"{REST}/tasks/{task_id}?historyLength=1", headers=V1)
        assert got.status_code == 200, got.text
        cancel = c.post(f"{REST}/tasks/{task_id}:cancel", json={}, headers=V1)
        # A completed task cannot be canceled: the agent's answer, audited.
        assert cancel.status_code >= 400, cancel.text
    with raw(gateway, {}) as c:
        anonymous = c.post(f"{REST}/message:send", json=rest_send_body(), headers=V1)
        assert anonymous.status_code == 401
    ids = [r.headers["x-request-id"] for r in (sent, got, cancel, anonymous)]
    ev = wait_for_events(gateway, ids)
    e = ev[ids[0]]
    assert (e["jsonrpcMethod"], e["protocolMethod"], e["messageKind"]) == ("SendMessage", "SendMessage", "text")
    assert e["path"] == f"{REST}/message:send" and e["httpMethod"] == "POST"
    assert e["decision"] == "allowed" and e["agent"]["id"] == "sentinel-1"
    assert "requestBody" not in e and "jsonrpcId" not in e
    e = ev[ids[1]]
    assert (e["jsonrpcMethod"], e["taskId"], e["httpMethod"]) == ("GetTask", task_id, "GET")
    assert e["path"] == f"{REST}/tasks/{task_id}"  # no query string
    assert "messageKind" not in e
    e = ev[ids[2]]
    assert (e["jsonrpcMethod"], e["taskId"]) == ("CancelTask", task_id)
    e = ev[ids[3]]
    assert e["decision"] == "unauthenticated" and e["jsonrpcMethod"] == "SendMessage"


def test_bodies_are_judged_only_where_json_rpc_is_expected(gateway: Gateway) -> None:
    """A body that is not JSON-RPC is refused by the gateway on /mcp and
    /a2a (it could hide an operation), and passes untouched elsewhere."""
    junk = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    with raw(gateway, key("sentinel-1")) as c:
        r = c.post("/a2a", **junk)
        assert r.status_code == 400 and r.json()["error"]["code"] == -32700, r.text
        r = c.post("/mcp", **junk)
        assert r.status_code == 400 and r.json()["error"]["code"] == -32700, r.text
        # No route here: Envoy's own 404, not the rate limit's 400.
        r = c.post("/not-a-protocol", **junk)
        assert r.status_code == 404, r.text
        # A REST path: the agent's own answer.
        r = c.post(f"{REST}/tasks/x/pushNotificationConfigs", **junk)
        assert r.status_code != 200 and "-32700" not in r.text, r.text
