"""A2A task isolation across gateway replicas: two Envoy processes in front
of one example agent share task owners through Redis (webdis), the store
the rate limiter uses (`a2a.taskIsolation.redisStore`). Redis and webdis
(Debian packages, installed by ./dev) run on free ports for this module."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import Gateway
from gwstack import free_port
from rate_limit_support import RedisStore, webdis_cluster
from support import REST, V1, raw, recorder, rest_send_body, tool_acl_config
from support import demo_key as key

pytestmark = pytest.mark.timeout(120)

CLUSTER = "gw_a2a_owner_store"
ISOLATION = {"enabled": True, "exemptAgents": ["admin-*"], "redisStore": {"cluster": CLUSTER, "timeoutMs": 1000}}


@pytest.fixture(scope="module")
def redis(run_root: Path) -> Iterator[RedisStore]:
    store = RedisStore(run_root / "a2a-redis").start()
    yield store
    store.stop()


@pytest.fixture(scope="module")
def replicas(start_stack: Callable[..., Any], redis: RedisStore) -> tuple[Gateway, Gateway]:
    acl = tool_acl_config(taskIsolation=ISOLATION)
    first = start_stack("a2a-replica-1", config="envoy/gateway.yaml", backends=("a2a",),
                        filter_configs={"gw_tool_acl": acl}, patch=webdis_cluster(CLUSTER, redis.webdis_port))
    # The second replica: the same agent (one task store), its own Envoy.
    second = start_stack("a2a-replica-2", config="envoy/gateway.yaml", backends=(),
                         extra_upstreams={"a2a_upstream": first.ports["a2a_upstream"]},
                         filter_configs={"gw_tool_acl": acl}, patch=webdis_cluster(CLUSTER, redis.webdis_port))
    return Gateway(first, {}), Gateway(second, {})


def owner_in_redis(redis: RedisStore, task: str, timeout: float = 5) -> str:
    """The owner Redis holds for `task` (replicas send owners on their next
    tick, every 50 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        owner = redis.cli("GET", f"gw:a2a:task:{task}").strip()
        if owner or time.monotonic() > deadline:
            return owner
        time.sleep(0.05)


def test_a_task_is_its_creators_on_every_replica(replicas: tuple[Gateway, Gateway], redis: RedisStore) -> None:
    one, two = replicas
    with raw(one, key("sentinel-1")) as c:
        r = c.post(f"{REST}/message:send", json=rest_send_body("replicated"), headers=V1)
        assert r.status_code == 200, r.text
        task = r.json()["task"]["id"]
    # Redis holds the owner, with the configured expiry.
    assert owner_in_redis(redis, task) == "sentinel-1"
    assert 0 < int(redis.cli("PTTL", f"gw:a2a:task:{task}")) <= 86_400_000
    seen = recorder(one)  # one agent behind both replicas
    with raw(two, key("alchemy-1")) as c:
        r = c.get(f"{REST}/tasks/{task}", headers=V1)
        assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND", r.text
        r = c.post("/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task}})
        assert r.json()["error"]["code"] == -32001, r.text
    assert seen() == []
    with raw(two, key("sentinel-1")) as c:
        r = c.get(f"{REST}/tasks/{task}", headers=V1)
        assert r.status_code == 200 and r.json()["id"] == task, r.text
    assert [r["path"] for r in seen()] == [f"{REST}/tasks/{task}"]


def test_the_first_owner_wins_in_redis(replicas: tuple[Gateway, Gateway], redis: RedisStore) -> None:
    one, two = replicas
    with raw(one, key("alchemy-1")) as c:
        task = c.post(f"{REST}/message:send", json=rest_send_body(), headers=V1).json()["task"]["id"]
    assert owner_in_redis(redis, task) == "alchemy-1"
    # Another owner written first-come (NX) does not replace alchemy's.
    redis.cli("SET", f"gw:a2a:task:{task}", "sentinel-1", "NX")
    assert owner_in_redis(redis, task) == "alchemy-1"
    with raw(two, key("sentinel-1")) as c:
        assert c.get(f"{REST}/tasks/{task}", headers=V1).status_code == 404


def test_store_down_fails_closed(start_stack: Callable[..., Any], replicas: tuple[Gateway, Gateway]) -> None:
    one, _ = replicas
    with raw(one, key("sentinel-1")) as c:
        task = c.post(f"{REST}/message:send", json=rest_send_body(), headers=V1).json()["task"]["id"]
    dead = free_port()
    s = start_stack("a2a-replica-dead", config="envoy/gateway.yaml", backends=(),
                    extra_upstreams={"a2a_upstream": one.stack.ports["a2a_upstream"]},
                    filter_configs={"gw_tool_acl": tool_acl_config(taskIsolation=ISOLATION)},
                    patch=webdis_cluster(CLUSTER, dead))
    try:
        gw = Gateway(s, {})
        seen = recorder(one)
        with raw(gw, key("sentinel-1")) as c:
            # Unknown here and Redis unreachable: not found, never passed.
            r = c.get(f"{REST}/tasks/{task}", headers=V1)
            assert r.status_code == 404, r.text
            # Sends still work (recording is best effort there).
            assert c.post(f"{REST}/message:send", json=rest_send_body(), headers=V1).status_code == 200
        assert [r["path"] for r in seen()] == [f"{REST}/message:send"]
    finally:
        s.stop()
