"""A2A governed like MCP (issue 11): access rules by agent over operations
and skills, task isolation between agents, version pinning, on both
bindings (JSON-RPC, HTTP+JSON) and versions 0.3 and 1.0, with the official
a2a-sdk client, the real identity filter (demo keys), the example agent and
the audit collector. The shipped envoy/gateway.yaml `a2a:` section:
sentinel-* may do everything but push configs, alchemy-* the same and only
the `echo` skill, admin-* everything and is exempt from task isolation.

Each test checks what reached the agent (its request recorder, its
execution and cancel counters), not only what the client got.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import Gateway
from gwstack.support import run
from support import REST, V1, client, final_task, raw, recorder, rest_send_body, send, tool_acl_config, wait_for_events
from support import demo_key as key

BINDINGS = [("1.0", "JSONRPC"), ("1.0", "HTTP+JSON"), ("0.3", "JSONRPC"), ("0.3", "HTTP+JSON")]


@pytest.fixture(scope="module")
def gov(start_stack: Callable[..., Any]) -> Any:
    # Its own agent: task lists hold only this module's tasks.
    s = start_stack("a2a-gov", config="envoy/gateway.yaml", backends=("a2a", "audit"))
    yield Gateway(s, {})
    s.stop()


def stats(gw: Gateway) -> dict[str, Any]:
    return gw.upstream_stats("a2a_upstream")


def create_task(gw: Gateway, agent: str, text: str = "mine") -> str:
    with raw(gw, key(agent)) as c:
        r = c.post(f"{REST}/message:send", json=rest_send_body(text), headers=V1)
        assert r.status_code == 200, r.text
        return r.json()["task"]["id"]


def jsonrpc(method: str, params: dict[str, Any], i: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": params}


# --------------------------------------------------------------------------- access rules


def test_operations_denied_by_rule_never_reach_the_agent(gov: Gateway) -> None:
    task = create_task(gov, "sentinel-1")
    seen = recorder(gov)
    push = {"url": "https://hooks.example/x", "id": "p1"}
    with raw(gov, key("sentinel-1")) as c:
        # pushConfig is denied to sentinel-*: REST error shape...
        r = c.post(f"{REST}/tasks/{task}/pushNotificationConfigs", json=push, headers=V1)
        assert r.status_code == 403, r.text
        err = r.json()["error"]
        assert (err["code"], err["status"]) == (403, "PERMISSION_DENIED")
        assert err["details"][0]["reason"] == "ACCESS_DENIED"
        assert "sentinel-1" in err["message"] and "pushConfig" in err["message"]
        # ... and a JSON-RPC error on JSON-RPC (1.0 and 0.3 names).
        for method, headers in [("CreateTaskPushNotificationConfig", V1), ("tasks/pushNotificationConfig/set", {})]:
            r = c.post("/a2a", json=jsonrpc(method, {"taskId": task, "config": push}, 9), headers=headers)
            assert r.status_code == 403, r.text
            assert r.json()["id"] == 9 and r.json()["error"]["code"] == -32040, r.text
        # The extended card is not in sentinel's allowed operations.
        r = c.get(f"{REST}/extendedAgentCard", headers=V1)
        assert r.status_code == 403, r.text
    assert seen() == []
    # Admins may (the agent answers: it supports no push notifications).
    with raw(gov, key("admin-1")) as c:
        r = c.post(f"{REST}/tasks/{task}/pushNotificationConfigs", json=push, headers=V1)
        assert r.status_code != 403, r.text
    assert [r["path"] for r in seen()] == [f"{REST}/tasks/{task}/pushNotificationConfigs"]


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
def test_skills_by_rule(gov: Gateway, binding: str) -> None:
    """alchemy-* may address the `echo` skill only (the message's
    metadata.skillId); a message naming no skill is the agent's to route."""
    from a2a.helpers import new_text_message
    from a2a.types import Role, SendMessageRequest

    def message(skill: str | None) -> Any:
        m = new_text_message(f"skill {skill}", role=Role.ROLE_USER)
        if skill:
            m.metadata.update({"skillId": skill})
        return SendMessageRequest(message=m)

    async def go(skill: str | None) -> list[Any]:
        async with client(gov, key("alchemy-1"), "1.0", binding) as c:
            return [ev async for ev in c.send_message(message(skill))]

    before = stats(gov)["executions"]
    assert final_task(run(go("echo"))).status.state
    assert final_task(run(go(None))).status.state
    seen = recorder(gov)
    with pytest.raises(Exception) as denied:
        run(go("deploy"))
    assert "deploy" in str(denied.value) or "403" in str(denied.value), denied.value
    assert seen() == []
    assert stats(gov)["executions"] == before + 2
    # sentinel-* has no skill list: any skill passes.
    with raw(gov, key("sentinel-1")) as c:
        body = rest_send_body()
        body["message"]["metadata"] = {"skillId": "deploy"}
        assert c.post(f"{REST}/message:send", json=body, headers=V1).status_code == 200
        # Two hints: both are judged (the agent might read either).
        body["message"]["metadata"] = {"skillId": "echo"}
        body["metadata"] = {"skill": "deploy"}
    with raw(gov, key("alchemy-1")) as c:
        r = c.post(f"{REST}/message:send", json=body, headers=V1)
        assert r.status_code == 403, r.text


# --------------------------------------------------------------------------- task isolation


@pytest.mark.parametrize("version,binding", BINDINGS)
def test_another_agents_task_is_not_found(gov: Gateway, version: str, binding: str) -> None:
    from a2a.types import CancelTaskRequest, GetTaskRequest, SubscribeToTaskRequest

    async def create() -> Any:
        async with client(gov, key("sentinel-1"), version, binding) as c:
            return final_task(await send(c, "sentinel's secret"))

    task = run(create())
    seen = recorder(gov)
    cancels = stats(gov)["cancels"]

    async def as_alchemy(op: str) -> Any:
        async with client(gov, key("alchemy-1"), version, binding, streaming=op == "subscribe") as c:
            if op == "get":
                return await c.get_task(GetTaskRequest(id=task.id))
            if op == "cancel":
                return await c.cancel_task(CancelTaskRequest(id=task.id))
            return [ev async for ev in c.subscribe(SubscribeToTaskRequest(id=task.id))]

    for op in ("get", "cancel", "subscribe"):
        with pytest.raises(Exception) as refused:
            run(as_alchemy(op))
        text = f"{type(refused.value).__name__} {refused.value}".lower()
        assert "not found" in text or "notfound" in text, (op, repr(refused.value))
        assert "secret" not in text
    assert seen() == [], seen()
    assert stats(gov)["cancels"] == cancels

    async def as_owner(agent: str) -> Any:
        async with client(gov, key(agent), version, binding) as c:
            return await c.get_task(GetTaskRequest(id=task.id))

    # The owner, and an exempt admin, get it from the agent.
    assert run(as_owner("sentinel-1")).id == task.id
    assert run(as_owner("admin-1")).id == task.id
    assert len(seen()) == 2


def test_isolation_errors_in_each_bindings_format(gov: Gateway) -> None:
    task = create_task(gov, "sentinel-1")
    seen = recorder(gov)
    with raw(gov, key("alchemy-1")) as c:
        for method, path in [("GET", f"/tasks/{task}"), ("POST", f"/tasks/{task}:cancel"),
                             ("GET", f"/tasks/{task}:subscribe"), ("GET", f"/v1/tasks/{task}"),
                             # An encoded colon is the same route to the agent.
                             ("POST", f"/tasks/{task}%3Acancel")]:
            r = c.request(method, REST + path, headers=V1, json={} if method == "POST" else None)
            assert r.status_code == 404, (path, r.text)
            err = r.json()["error"]
            assert (err["code"], err["status"], err["details"][0]["reason"]) == (404, "NOT_FOUND", "TASK_NOT_FOUND")
        for i, (method, params, headers) in enumerate([
            ("GetTask", {"id": task}, V1), ("CancelTask", {"id": task}, V1), ("tasks/get", {"id": task}, {}),
            ("tasks/cancel", {"id": task}, {}),
            # A send continuing another agent's task is refused too.
            ("SendMessage", {"message": {**rest_send_body()["message"], "taskId": task}}, V1),
            ("message/send", {"message": {"kind": "message", "messageId": "m", "role": "user", "taskId": task,
                                          "parts": [{"kind": "text", "text": "x"}]}}, {}),
        ]):
            r = c.post("/a2a", json=jsonrpc(method, params, i), headers=headers)
            assert r.status_code == 200, r.text
            assert r.json() == {"jsonrpc": "2.0", "id": i,
                                "error": {"code": -32001, "message": f"Task not found: {task}"}}, (method, r.text)
        # An id the gateway never saw is not found either (the agent is not asked).
        r = c.get(f"{REST}/tasks/{uuid.uuid4()}", headers=V1)
        assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    assert seen() == []


def test_a_body_read_two_ways_is_refused(gov: Gateway) -> None:
    """Duplicate keys: the agent's JSON parser keeps the last `taskId` (or
    skill), where a lenient gateway would see the first or none; a REST send
    must be strict JSON, and a JSON-RPC one already is."""
    theirs = create_task(gov, "sentinel-1")
    mine = create_task(gov, "alchemy-1")
    seen = recorder(gov)
    msg = f'"messageId": "m-{uuid.uuid4().hex}", "role": "ROLE_USER", "parts": [{{"text": "x"}}]'
    bodies = [
        f'{{"message": {{{msg}, "taskId": "{mine}", "taskId": "{theirs}"}}}}',
        f'{{"message": {{{msg}, "metadata": {{"skillId": "echo", "skillId": "deploy"}}}}}}',
        f'{{"message": {{{msg}, "taskId": "{theirs}"}}, "n": NaN}}',
    ]
    with raw(gov, {**key("alchemy-1"), "content-type": "application/json"}) as c:
        for body in bodies:
            r = c.post(f"{REST}/message:send", content=body.encode(), headers=V1)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["status"] == "INVALID_ARGUMENT"
            r = c.post("/a2a", content=f'{{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {body}}}'
                       .encode(), headers=V1)
            assert r.status_code == 400, (body, r.text)
    assert seen() == []


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
def test_list_shows_the_callers_tasks_only(gov: Gateway, binding: str) -> None:
    from a2a.types import ListTasksRequest

    mine = {create_task(gov, "alchemy-1", "a") for _ in range(2)}
    theirs = {create_task(gov, "sentinel-1", "s") for _ in range(2)}

    async def listed(agent: str) -> set[str]:
        async with client(gov, key(agent), "1.0", binding) as c:
            resp = await c.list_tasks(ListTasksRequest(page_size=100))
            return {t.id for t in resp.tasks}

    seen = recorder(gov)
    alchemy = run(listed("alchemy-1"))
    assert mine <= alchemy and not (theirs & alchemy), (mine, theirs, alchemy)
    sentinel = run(listed("sentinel-1"))
    assert theirs <= sentinel and not (mine & sentinel)
    # The agent was asked (and answered with every task): the gateway cut it.
    assert len(seen()) == 2
    # Admins are exempt: they see both.
    admin = run(listed("admin-1"))
    assert (mine | theirs) <= admin
    with raw(gov, key("alchemy-1")) as c:
        r = c.get(f"{REST}/tasks", headers=V1)
        body = r.json()
        assert r.status_code == 200 and {t["id"] for t in body["tasks"]} <= alchemy
        assert body.get("totalSize", len(body["tasks"])) == len(body["tasks"])
        r = c.post("/a2a", json=jsonrpc("ListTasks", {}, 5), headers=V1)
        assert {t["id"] for t in r.json()["result"]["tasks"]} <= alchemy


def test_streamed_tasks_are_recorded(gov: Gateway) -> None:
    """Task ids come from SSE streams too (REST and JSON-RPC, 1.0 and 0.3)."""
    from a2a.types import GetTaskRequest

    for version, binding in BINDINGS:
        async def stream() -> str:
            async with client(gov, key("sentinel-1"), version, binding, streaming=True) as c:
                return final_task(await send(c, "stream steps=1")).id

        task = run(stream())

        async def get(agent: str) -> Any:
            async with client(gov, key(agent), version, binding) as c:
                return await c.get_task(GetTaskRequest(id=task))

        assert run(get("sentinel-1")).id == task, (version, binding)
        with pytest.raises(Exception):
            run(get("alchemy-1"))


# --------------------------------------------------------------------------- versions


def test_unsupported_versions_are_refused_before_the_agent(gov: Gateway) -> None:
    seen = recorder(gov)
    with raw(gov, key("admin-1")) as c:
        r = c.post("/a2a", json=jsonrpc("SendMessage", rest_send_body(), 3), headers={"a2a-version": "2.0"})
        assert r.status_code == 200, r.text
        err = r.json()["error"]
        assert err["code"] == -32009 and err["data"] == {"requested": "2.0", "supported": ["0.2", "0.3", "1.0"]}
        r = c.post(f"{REST}/message:send", json=rest_send_body(), headers={"a2a-version": "0.9"})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert (err["status"], err["details"][0]["reason"]) == ("FAILED_PRECONDITION", "VERSION_NOT_SUPPORTED")
        # Agent cards pass byte for byte, whatever the version header says.
        direct = httpx.get(gov.stack.upstream_url("a2a_upstream") + "/.well-known/agent-card.json", timeout=5)
        via = c.get("/.well-known/agent-card.json", headers={"a2a-version": "2.0"})
        assert via.status_code == 200
    assert seen() == []
    assert via.content == direct.content


@pytest.fixture(scope="module")
def pinned(start_stack: Callable[..., Any]) -> Any:
    s = start_stack("a2a-pinned", config="envoy/gateway.yaml", backends=("a2a", "audit"),
                    filter_configs={"gw_tool_acl": tool_acl_config(versions=["1.0"])})
    yield Gateway(s, {})
    s.stop()


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
def test_a_pinned_version_refuses_the_others(pinned: Gateway, binding: str) -> None:
    from a2a.types import TaskState

    async def go(version: str) -> Any:
        async with client(pinned, key("sentinel-1"), version, binding) as c:
            return final_task(await send(c, f"pinned {version}"))

    assert run(go("1.0")).status.state == TaskState.TASK_STATE_COMPLETED
    seen = recorder(pinned)
    with pytest.raises(Exception) as refused:
        run(go("0.3"))
    # (the 0.3 REST client reports a bare 400; the raw answers are checked below)
    text = str(refused.value).lower()
    assert "version" in text or "400" in text, repr(refused.value)
    with raw(pinned, key("sentinel-1")) as c:
        r = c.post("/a2a/tasks/send", json=jsonrpc("tasks/send", {"message": {}}, 1))
        assert r.json()["error"]["code"] == -32009
        r = c.post(f"{REST}/v1/message:send", json=rest_send_body())
        assert r.status_code == 400 and r.json()["error"]["details"][0]["reason"] == "VERSION_NOT_SUPPORTED"
    assert seen() == []


# --------------------------------------------------------------------------- audit


def test_refusals_are_audited(gov: Gateway) -> None:
    task = create_task(gov, "sentinel-1")
    with raw(gov, key("alchemy-1")) as c:
        hidden = c.get(f"{REST}/tasks/{task}", headers=V1)
        denied = c.post(f"{REST}/tasks/{task}/pushNotificationConfigs", json={"url": "https://x"}, headers=V1)
        version = c.post("/a2a", json=jsonrpc("SendMessage", rest_send_body()), headers={"a2a-version": "7.0"})
    with raw(gov, key("sentinel-1")) as c:
        own = c.get(f"{REST}/tasks/{task}", headers=V1)
    assert (hidden.status_code, denied.status_code, version.status_code, own.status_code) == (404, 403, 200, 200)
    ids = [r.headers["x-request-id"] for r in (hidden, denied, version, own)]
    ev = wait_for_events(gov, ids)
    e = ev[ids[0]]
    assert (e["decision"], e["agent"]["id"], e["jsonrpcMethod"], e["taskId"]) == (
        "forbidden", "alchemy-1", "GetTask", task)
    assert ev[ids[1]]["decision"] == "forbidden"
    assert ev[ids[2]]["decision"] == "bad_request"
    assert ev[ids[3]]["decision"] == "allowed" and ev[ids[3]]["agent"]["id"] == "sentinel-1"
