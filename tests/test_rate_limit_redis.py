"""Multi-replica mode: two Envoy processes (2 workers each) share exact
sliding windows through one Redis, reached via webdis with an atomic Lua
script. Redis and webdis (Debian packages, installed by ./dev) are started
here on free ports and stopped at the end."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from conftest import WORKERS, Gateway
from gwstack import free_port
from gwstack.support import MCP_HEADERS
from rate_limit_support import (
    RedisStore,
    agent,
    as_agent,
    counters,
    identity_patch,
    parse_ratelimit,
    tool_call,
    webdis_cluster,
)

pytestmark = pytest.mark.timeout(90)

CLUSTER = "gw_rate_limit_redis"


def config(on_unavailable: str = "deny") -> str:
    return f"""
limits:
  - path: /mcp/tools/call
    keySelector: "#[attributes.headers['x-verified-agent-id']]"
    maxRequests: 10
    windowSeconds: 60
redisStore:
  cluster: {CLUSTER}
  timeoutMs: 1000
  onUnavailable: {on_unavailable}
"""


@pytest.fixture(scope="module")
def redis(run_root: Path) -> Iterator[RedisStore]:
    store = RedisStore(run_root / "redis").start()
    yield store
    store.stop()


@pytest.fixture(scope="module")
def replicas(start_stack: Callable[..., Any], redis: RedisStore) -> tuple[Gateway, Gateway]:
    def replica(name: str) -> Gateway:
        s = start_stack(name, config="envoy/gateway.yaml", workers=max(2, WORKERS), backends=("mcp",),
                        filter_configs={"gw_rate_limit": config()},
                        patch=identity_patch(webdis_cluster(CLUSTER, redis.webdis_port)))
        return Gateway(s, {})

    return replica("rl-replica-1"), replica("rl-replica-2")


def post(gw: Gateway, who: str, i: int = 1) -> httpx.Response:
    with gw.http() as c:
        return c.post("/mcp", json=tool_call(i), headers={**MCP_HEADERS, **as_agent(who)})


def test_two_replicas_share_one_window(replicas: tuple[Gateway, Gateway], redis: RedisStore) -> None:
    one, two = replicas
    who = agent()
    for i in range(5):
        assert post(one, who, i).status_code == 200
        r = post(two, who, i)
        assert r.status_code == 200
    assert parse_ratelimit(r.headers["ratelimit"])["tools/call"]["r"] == 0
    for gw in (one, two):
        r = post(gw, who)
        assert r.status_code == 429, r.text
        assert r.json()["agentId"] == who
        assert 1 <= int(r.headers["retry-after"]) <= 60
    # Redis holds the window under a hashed key, with a TTL of the window.
    keys = [k for k in redis.cli("--scan", "--pattern", "gw:rl:*").split() if k]
    assert keys
    assert all(0 < int(redis.cli("PTTL", k)) <= 60_000 for k in keys)


def test_exact_across_replicas_under_concurrency(replicas: tuple[Gateway, Gateway]) -> None:
    """20 requests at once, half to each replica: exactly 10 admitted."""
    who = agent()

    async def go() -> list[int]:
        async def burst(gw: Gateway) -> list[int]:
            limits = httpx.Limits(max_connections=8)
            async with gw.ahttp(limits=limits) as c:
                rs = await asyncio.gather(*(
                    c.post("/mcp", json=tool_call(i), headers={**MCP_HEADERS, **as_agent(who)}) for i in range(10)))
                return [r.status_code for r in rs]

        a, b = await asyncio.gather(burst(replicas[0]), burst(replicas[1]))
        return a + b

    codes = asyncio.run(go())
    assert codes.count(200) == 10 and codes.count(429) == 10, codes


def test_retry_after_from_redis(replicas: tuple[Gateway, Gateway]) -> None:
    who = agent()
    t_first = time.monotonic()
    for i in range(10):
        assert post(replicas[i % 2], who, i).status_code == 200
    time.sleep(0.5)
    t_ask = time.monotonic()
    r = post(replicas[0], who)
    assert r.status_code == 429
    expected = t_first + 60 - t_ask
    assert abs(int(r.headers["retry-after"]) - expected) < 1, (r.headers["retry-after"], expected)


def test_script_cache_loss_is_recovered(replicas: tuple[Gateway, Gateway], redis: RedisStore) -> None:
    """After SCRIPT FLUSH (or a Redis restart) EVALSHA says NOSCRIPT: the
    filter resends the script once and decides normally."""
    who = agent()
    before = counters(replicas[0].admin_url)["wasmcustom.gw.rate_limit.redis_unavailable"]
    assert "OK" in redis.cli("SCRIPT", "FLUSH")
    r = post(replicas[0], who)
    assert r.status_code == 200
    assert parse_ratelimit(r.headers["ratelimit"])["tools/call"]["r"] == 9
    assert post(replicas[1], who).status_code == 200
    assert counters(replicas[0].admin_url)["wasmcustom.gw.rate_limit.redis_unavailable"] == before


@pytest.mark.parametrize("mode", ["deny", "local"])
def test_unreachable_store(start_stack: Callable[..., Any], mode: str) -> None:
    """Nothing listens on the store's port: `deny` (the default) answers 503,
    `local` falls back to this replica's own windows."""
    dead = free_port()
    s = start_stack(f"rl-dead-{mode}", config="envoy/gateway.yaml", workers=max(2, WORKERS), backends=("mcp",),
                    filter_configs={"gw_rate_limit": config(mode)},
                    patch=identity_patch(webdis_cluster(CLUSTER, dead)))
    gw = Gateway(s, {})
    who = agent()
    try:
        if mode == "deny":
            r = post(gw, who)
            assert r.status_code == 503
            assert r.json()["error"] == "rate_limit_unavailable"
        else:
            codes = [post(gw, who, i).status_code for i in range(11)]
            assert codes == [200] * 10 + [429]
        assert counters(gw.admin_url)["wasmcustom.gw.rate_limit.redis_unavailable"] >= 1
    finally:
        s.stop()


def test_large_quota_is_bucket_counters(start_stack: Callable[..., Any], redis: RedisStore) -> None:
    """A quota a per-admission set could not hold (the old cap was 10,000)
    loads, and a bucketed quota (150 > 128 admissions: W/64 buckets) is
    exact for a burst from an empty window: 150 of 160 concurrent calls
    through two replicas. Redis keeps a hash of at most 129 bucket counters
    per key, whatever the quota."""
    cfg = f"""
limits:
  - path: /mcp/tools/call
    keySelector: "#[attributes.headers['x-verified-agent-id']]"
    maxRequests: 150
    windowSeconds: 60
  - path: /mcp/tools/list
    keySelector: "#[attributes.headers['x-verified-agent-id']]"
    maxRequests: 1000000000
    windowSeconds: 3600
    burstAllowance: 1000000
redisStore:
  cluster: {CLUSTER}
  timeoutMs: 1000
"""
    stacks = [start_stack(f"rl-big-{i}", config="envoy/gateway.yaml", workers=max(2, WORKERS), backends=("mcp",),
                          filter_configs={"gw_rate_limit": cfg},
                          patch=identity_patch(webdis_cluster(CLUSTER, redis.webdis_port))) for i in (1, 2)]
    gws = [Gateway(s, {}) for s in stacks]
    who = agent()
    try:
        assert "OK" in redis.cli("FLUSHDB")

        async def go() -> list[int]:
            async def burst(gw: Gateway) -> list[int]:
                async with gw.ahttp(limits=httpx.Limits(max_connections=16)) as c:
                    rs = await asyncio.gather(*(
                        c.post("/mcp", json=tool_call(i), headers={**MCP_HEADERS, **as_agent(who)})
                        for i in range(80)))
                    return [r.status_code for r in rs]

            a, b = await asyncio.gather(burst(gws[0]), burst(gws[1]))
            return a + b

        codes = asyncio.run(go())
        assert codes.count(200) == 150 and codes.count(429) == 10, sorted(codes)
        keys = [k for k in redis.cli("--scan", "--pattern", "gw:rl:*").split() if k]
        assert len(keys) == 1, keys
        assert redis.cli("TYPE", keys[0]).strip() == "hash"
        fields = int(redis.cli("HLEN", keys[0]))
        assert 1 <= fields <= 129, fields
        assert sum(int(v) for v in redis.cli("HVALS", keys[0]).split()) == 150
    finally:
        for s in stacks:
            s.stop()
