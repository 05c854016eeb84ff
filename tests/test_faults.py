"""Faults end to end: stock Envoy with the shipped config (envoy/gateway.yaml,
one module, or its four-module form under GW_FOUR_MODULES=1), the example backends, and one
dependency at a time made to fail: the identity validation service and the
token introspection endpoint (down, slow, 5xx, garbage, wrong JSON types,
huge answers), Redis / webdis behind the Redis-backed rate limit (killed,
hung, Redis gone behind webdis), the audit collector (slow, refusing batches
with 4xx and 413) and the MCP upstream killed in the middle of an SSE stream.

Every test checks the same four things:

1. the gateway fails closed or degrades as the docs say (docs/*.md, the
   "Failure" sections), and nothing unjudged reaches the upstream (the
   example servers' own counters, not the status code, say what arrived);
2. Envoy keeps serving: an ordinary allowed call succeeds during or right
   after the fault;
3. no Wasm VM crashed (no panic or failed callback in Envoy's log, every
   process alive);
4. nothing is lost beyond the documented bounds: every request of the test
   has its audit event at the collector, exactly once, by eventId.

Faults already covered elsewhere (not repeated here):
  validation service answering non-JSON, 500, slow, down:   test_identity.py
  introspection endpoint down:                               test_identity.py
  webdis unreachable from the start (deny and local):        test_rate_limit_redis.py
  Redis losing its scripts (SCRIPT FLUSH):                   test_rate_limit_redis.py
  collector down then back, 5xx retried, stalled:            test_audit.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import DEMO_KEYS, ROOT, Gateway
from gwstack import PYTHON, Proc, Stack, free_port, http_ok
from gwstack.support import MCP_HEADERS as MCP_ACCEPT
from gwstack.support import Services, identity_config
from rate_limit_support import RedisStore, counters as rl_counters, webdis_cluster
from support import Collector, api_key as key, assert_denied, audit_counters, bearer, sender, wait_until

# The shipped sender flushes every 5 s; these stacks flush every 0.5 s so the
# "every request audited once" checks do not wait. Nothing else changes.
FAST_SENDER = sender(batchSize=50, flushIntervalMs=500)

# What a crashed Wasm VM leaves in Envoy's log: the Rust panic message the SDK
# logs, and V8 reporting the callback that trapped.
VM_CRASH = re.compile(r"panicked at|Function: \S+ failed|Uncaught (?:Runtime|Type|Range)?Error|wasm trap", re.I)

ADMIN = {"x-agent-api-key": DEMO_KEYS["admin-1"]}


def tools_call(name: str = "search_patterns", i: int = 1, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": name, "arguments": arguments or {"query": "map"}}}


def a2a_send() -> dict[str, Any]:
    msg = {"kind": "message", "messageId": uuid.uuid4().hex, "role": "user", "parts": [{"kind": "text", "text": "hi"}]}
    return {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": msg}}


class Run:
    """One stack under test: requests go through `post`, which records their
    request ids, so the test can check that each was audited exactly once."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.gw = Gateway(stack, {})
        self.collector = Collector(stack)
        self.rids: list[str] = []

    def post(self, body: Any, headers: dict[str, str] | None = None, path: str = "/mcp",
             timeout: float = 30) -> httpx.Response:
        with self.gw.http({**MCP_ACCEPT, **(headers or {})}, timeout=timeout) as c:
            r = c.post(path, json=body)
        self.rids.append(r.headers["x-request-id"])
        return r

    def mcp_count(self, tool: str = "search_patterns") -> int:
        return int(self.gw.upstream_stats()["tools"].get(tool, 0))

    def allowed_call_succeeds(self) -> None:
        """Envoy keeps serving: a demo-key tools/call reaches the MCP server."""
        before = self.mcp_count()
        r = self.post(tools_call(), ADMIN)
        assert r.status_code == 200, r.text
        assert '"isError":false' in r.text.replace(" ", "") and '"error"' not in r.text, r.text
        assert self.mcp_count() == before + 1

    def assert_no_vm_crash(self) -> None:
        self.stack.assert_alive()
        log = self.stack.log_path("envoy").read_text(errors="replace")
        crashed = [line for line in log.splitlines() if VM_CRASH.search(line)]
        assert not crashed, crashed[:5]

    def assert_audited_once(self, timeout: float = 30) -> dict[str, dict[str, Any]]:
        """Every request of this run has exactly one event at the collector."""
        return self.collector.wait_for(self.rids, timeout=timeout)

    def finish(self) -> dict[str, dict[str, Any]]:
        self.allowed_call_succeeds()
        self.assert_no_vm_crash()
        return self.assert_audited_once()


def proc(stack: Stack, name: str) -> Proc:
    return next(p for p in stack.procs if p.name == name)


# =========================================================================== identity


class FaultyIdp:
    """The test OAuth server (test_identity.Services), and the example
    identity service with faults enabled, as the validation service (its own
    agents: admin-fault-N, allowed every tool by the shipped ACL, so a
    recovered call really reaches the MCP server) and with --forward in front
    of the OAuth server: the gateway's introspection calls go through it too,
    so one /faults switch makes either slow, 5xx, garbage, ..."""

    def __init__(self, run_dir: Path) -> None:
        self.services = Services(run_dir)
        self.front_port = free_port()
        self.front: Proc | None = None

    @property
    def front_url(self) -> str:
        return f"http://127.0.0.1:{self.front_port}"

    def start(self) -> None:
        self.services.start()
        agents = [{"id": f"admin-fault-{i}", "name": "fault", "owner": "qa",
                   "keySha256": hashlib.sha256(f"svc-key-admin-fault-{i}".encode()).hexdigest()} for i in range(10)]
        agents_file = self.services.run_dir / "fault-agents.json"
        agents_file.write_text(json.dumps(agents))
        self.front = Proc("faulty_identity_service",
                          [PYTHON, str(ROOT / "examples" / "identity_service" / "service.py"),
                           "--port", str(self.front_port), "--agents", str(agents_file), "--enable-faults",
                           "--forward", self.services.oauth_url],
                          self.services.run_dir / "introspection_front.log")
        self.front.start()
        deadline = time.monotonic() + 20
        while not http_ok(f"{self.front_url}/healthz"):
            assert self.front.alive() and time.monotonic() < deadline, "introspection front did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.front:
            self.front.stop()
        self.services.stop()

    def faults(self, **faults: Any) -> None:
        r = httpx.post(f"{self.front_url}/faults", json=faults, timeout=5)
        assert r.status_code == 200, r.text

    def forwarded(self) -> int:
        return httpx.get(f"{self.front_url}/stats", timeout=5).json()["forwarded"]


@pytest.fixture(scope="module")
def idp(run_root: Path) -> Iterator[FaultyIdp]:
    s = FaultyIdp(run_root / "faults_idp")
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def id_stack(start_stack: Callable[..., Stack], idp: FaultyIdp) -> Stack:
    return start_stack(
        "faults-identity", config="envoy/gateway.yaml",
        filter_configs={"gw_identity": identity_config(), "gw_audit_sender": FAST_SENDER},
        extra_upstreams={"identity_service": idp.front_port, "oauth_server": idp.front_port},
    )


@pytest.fixture
def id_run(id_stack: Stack, idp: FaultyIdp) -> Iterator[Run]:
    yield Run(id_stack)
    idp.faults()


# Each case: the fault, what the gateway's 503 message must say. One key per
# case (agent admin-fault-N), so no case sees another's cached result.
VALIDATION_FAULTS = {
    "5xx-502": ({"mode": "error", "status": 502}, "HTTP 502"),
    "5xx-503": ({"mode": "error", "status": 503}, "unavailable (503)"),
    "json-array": ({"mode": "json", "json": [{"valid": True, "agent_id": "fault"}]}, "not an object"),
    "json-string": ({"mode": "json", "json": "valid"}, "not an object"),
    "huge-200": ({"mode": "huge"}, "more than 65536 bytes"),
    "redirect-302": ({"mode": "json", "status": 302, "json": {"location": "elsewhere"}}, "HTTP 302"),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", list(VALIDATION_FAULTS))
def test_validation_service_fault_fails_closed_and_is_not_cached(id_run: Run, idp: FaultyIdp, case: str) -> None:
    fault, says = VALIDATION_FAULTS[case]
    agent_key = key(f"svc-key-admin-fault-{list(VALIDATION_FAULTS).index(case)}")
    before = id_run.mcp_count()
    idp.faults(**fault)
    body = assert_denied(id_run.post(tools_call(), agent_key), 503, "identity_unavailable")
    assert says in body["message"], body
    assert id_run.mcp_count() == before, "a request refused for identity reached the MCP server"
    # static demo keys need no callout: they keep working during the fault
    id_run.allowed_call_succeeds()
    idp.faults()
    r = id_run.post(tools_call(), agent_key)  # the 503 was not cached
    assert r.status_code == 200, r.text
    assert id_run.mcp_count() == before + 2
    events = id_run.finish()
    assert events[id_run.rids[0]]["decision"] == "unavailable"


# A non-string claim was once rendered as its JSON text and became the
# verified agent id (`null`, `["admin-1"]`): now it names no agent.
WRONG_AGENT_ID = {
    "missing": "__missing__",
    "empty": "",
    "null": None,
    "list": ["admin-1"],
    "object": {"id": "admin-1"},
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("agent_id", list(WRONG_AGENT_ID.values()), ids=list(WRONG_AGENT_ID))
def test_validation_answer_without_a_string_agent_id_yields_no_identity(id_run: Run, idp: FaultyIdp,
                                                                       agent_id: Any) -> None:
    """A 200 whose agent_id claim is missing, empty or not a string: no agent
    identity can come out of it: 403 no_agent_identity (docs/identity.md,
    Answers) or 503, and nothing reaches the MCP server."""
    before = id_run.mcp_count()
    claims = {"valid": True} if agent_id == "__missing__" else {"valid": True, "agent_id": agent_id}
    idp.faults(mode="json", json=claims)
    r = id_run.post(tools_call(), key(f"svc-key-wrongtypes-{uuid.uuid4().hex}"))
    assert r.status_code in (403, 503), (r.status_code, r.text)
    assert r.json()["error"] in ("no_agent_identity", "identity_unavailable"), r.text
    assert id_run.mcp_count() == before
    idp.faults()
    id_run.finish()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("valid", ["false", "true", None, 0], ids=["str-false", "str-true", "null", "zero"])
def test_validation_answer_whose_verdict_is_not_a_boolean_fails_closed(id_run: Run, idp: FaultyIdp,
                                                                       valid: Any) -> None:
    """`"valid": "false"` is no yes: a verdict of the wrong type is a
    misbehaving service, answered 503 and not cached, nothing upstream."""
    before = id_run.mcp_count()
    idp.faults(mode="json", json={"valid": valid, "agent_id": "admin-1"})
    r = id_run.post(tools_call(), key(f"svc-key-verdict-{uuid.uuid4().hex}"))
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.json()["error"] == "identity_unavailable", r.text
    assert id_run.mcp_count() == before
    idp.faults()
    id_run.finish()


# The introspection endpoint's faults; `says` is part of the 503 message.
INTROSPECTION_FAULTS = {
    "slow": ({"delayMs": 3000}, "timed out"),  # the shipped timeoutMs is 2000
    "5xx-500": ({"mode": "error", "status": 500}, "HTTP 500"),
    # the gateway's own client credentials refused: still a 503, never a 401 to the agent
    "client-refused-401": ({"mode": "error", "status": 401}, "HTTP 401"),
    "5xx-503": ({"mode": "error", "status": 503}, "unavailable (503)"),
    "garbage": ({"mode": "garbage"}, "not JSON"),
    "active-as-string": ({"mode": "json", "json": {"active": "true", "agent_id": "admin-x",
                                                  "scope": "mcp:tools:invoke"}}, "boolean `active`"),
    "active-missing": ({"mode": "json", "json": {"agent_id": "admin-x", "scope": "mcp:tools:invoke"}},
                       "boolean `active`"),
    "json-array": ({"mode": "json", "json": [{"active": True}]}, "not an object"),
    "huge-200": ({"mode": "huge"}, "more than 65536 bytes"),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", list(INTROSPECTION_FAULTS))
def test_introspection_fault_fails_closed_and_is_not_cached(id_run: Run, idp: FaultyIdp, case: str) -> None:
    fault, says = INTROSPECTION_FAULTS[case]
    token = bearer(idp.services.token("admin-oauth"))  # a fresh token: nothing cached for it
    before = id_run.mcp_count()
    calls = idp.forwarded()
    idp.faults(**fault)
    body = assert_denied(id_run.post(tools_call(), token), 503, "identity_unavailable")
    assert says in body["message"], body
    assert "introspection" in body["message"], body
    assert idp.forwarded() > calls, "the gateway did not call the introspection endpoint"
    assert id_run.mcp_count() == before, "a request refused for identity reached the MCP server"
    id_run.allowed_call_succeeds()  # static keys: no callout, unaffected
    idp.faults()
    r = id_run.post(tools_call(), token)  # the 503 was not cached: the same token now works
    assert r.status_code == 200, r.text
    assert id_run.mcp_count() == before + 2
    events = id_run.finish()
    assert events[id_run.rids[0]]["decision"] == "unavailable"


@pytest.mark.timeout(90)
def test_identity_endpoints_going_down_mid_run_and_coming_back(id_run: Run, idp: FaultyIdp) -> None:
    """The validation service and introspection (one process here) die while
    Envoy runs: credentials that need a callout get 503, static keys keep
    working; once the process is back, the same credentials work (nothing
    negative was cached for them). test_identity covers endpoints that are
    down from the start."""
    agent_key = key(f"svc-key-admin-fault-{len(VALIDATION_FAULTS)}")
    token = bearer(idp.services.token("admin-oauth"))
    before = id_run.mcp_count()
    assert idp.front is not None
    idp.front.stop()
    try:
        assert_denied(id_run.post(tools_call(), agent_key), 503, "identity_unavailable")
        assert_denied(id_run.post(tools_call(), token), 503, "identity_unavailable")
        assert id_run.mcp_count() == before
        id_run.allowed_call_succeeds()
    finally:
        idp.front.start()
        wait_until(lambda: http_ok(f"{idp.front_url}/healthz"), what="the identity service back")
    assert id_run.post(tools_call(), agent_key).status_code == 200
    assert id_run.post(tools_call(), token).status_code == 200
    assert id_run.mcp_count() == before + 3
    events = id_run.finish()
    assert [events[r]["decision"] for r in id_run.rids[:2]] == ["unavailable", "unavailable"]


# =========================================================================== Redis / webdis


RL_REDIS = """
limits:
  - path: /mcp/tools/call
    keySelector: "#[attributes.headers['x-verified-agent-id']]"
    maxRequests: 1000
    windowSeconds: 60
redisStore:
  cluster: gw_rate_limit_redis
  timeoutMs: 1000
  onUnavailable: deny
"""


@pytest.fixture(scope="module")
def redis(run_root: Path) -> Iterator[RedisStore]:
    store = RedisStore(run_root / "faults_redis").start()
    yield store
    store.stop()


@pytest.fixture(scope="module")
def redis_stack(start_stack: Callable[..., Stack], redis: RedisStore) -> Stack:
    """The shipped config (real identity, demo keys) with the Redis-backed
    rate limit of docs/rate-limit.md (deny when the store is unavailable)."""
    return start_stack("faults-redis", config="envoy/gateway.yaml",
                       filter_configs={"gw_rate_limit": RL_REDIS, "gw_audit_sender": FAST_SENDER},
                       patch=webdis_cluster("gw_rate_limit_redis", redis.webdis_port))


def _webdis(redis: RedisStore) -> subprocess.Popen[bytes]:
    return redis.procs[1]


def _restart_webdis(redis: RedisStore) -> None:
    log = open(redis.run_dir / "redis.log", "ab")
    redis.procs[1] = subprocess.Popen(["webdis", str(redis.run_dir / "webdis.json")], stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
    _wait_serving(redis.webdis_port)


def _restart_redis(redis: RedisStore) -> None:
    log = open(redis.run_dir / "redis.log", "ab")
    redis.procs[0] = subprocess.Popen(
        ["redis-server", "--port", str(redis.redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(redis.run_dir)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _wait_serving(redis.redis_port)


def _wait_serving(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


def _kill(p: subprocess.Popen[bytes]) -> None:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=5)


def assert_store_refuses(run: Run) -> None:
    """A counted operation is refused with 503 and never reaches the MCP
    server; an uncounted one (tools/list) is not the store's business."""
    before = run.mcp_count()
    r = run.post(tools_call(), ADMIN)
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "rate_limit_unavailable", r.text
    assert run.mcp_count() == before
    assert run.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, ADMIN).status_code == 200


@pytest.mark.timeout(90)
def test_webdis_killed_mid_run_denies_then_recovers(redis_stack: Stack, redis: RedisStore) -> None:
    run = Run(redis_stack)
    run.allowed_call_succeeds()
    unavailable = rl_counters(run.gw.admin_url).get("wasmcustom.gw.rate_limit.redis_unavailable", 0)
    _kill(_webdis(redis))
    try:
        assert_store_refuses(run)
        assert rl_counters(run.gw.admin_url)["wasmcustom.gw.rate_limit.redis_unavailable"] > unavailable
    finally:
        _restart_webdis(redis)
    events = run.finish()
    assert events[run.rids[1]]["decision"] == "unavailable"


@pytest.mark.timeout(90)
def test_webdis_hung_times_out_and_denies_then_recovers(redis_stack: Stack, redis: RedisStore) -> None:
    """webdis stopped (SIGSTOP): connections open, nothing answers; the
    callout times out after timeoutMs and the request is refused."""
    run = Run(redis_stack)
    run.allowed_call_succeeds()
    os.killpg(_webdis(redis).pid, signal.SIGSTOP)
    try:
        assert_store_refuses(run)
    finally:
        os.killpg(_webdis(redis).pid, signal.SIGCONT)
    events = run.finish()
    assert events[run.rids[1]]["decision"] == "unavailable"


@pytest.mark.timeout(90)
def test_redis_down_behind_webdis_denies_then_recovers(redis_stack: Stack, redis: RedisStore) -> None:
    """Redis itself dies, webdis stays: webdis answers an error, the gateway
    refuses; a fresh Redis (its script cache empty) is used again at once
    (NOSCRIPT, then EVAL)."""
    run = Run(redis_stack)
    run.allowed_call_succeeds()
    _kill(redis.procs[0])
    try:
        assert_store_refuses(run)
    finally:
        _restart_redis(redis)
    # webdis reconnects to the new Redis on its own; the first call may still
    # find the old connection dead, so allow it a few tries (never a timing bound)
    wait_until(lambda: run.post(tools_call(), ADMIN).status_code == 200, timeout=20, what="webdis back on Redis")
    events = run.finish()
    assert events[run.rids[1]]["decision"] == "unavailable"


# =========================================================================== audit collector


@pytest.fixture(scope="module")
def audit_stack(start_stack: Callable[..., Stack]) -> Stack:
    """Small batches, short POST timeout, quick retries: every rule observable.
    The flush interval (2 s) is long enough that four requests in a row make
    one batch of 4; the assertions hold whatever the batches turn out to be."""
    return start_stack("faults-audit", config="envoy/gateway.yaml", filter_configs={"gw_audit_sender": sender(
        batchSize=4, flushIntervalMs=2000, maxBufferedEvents=100, timeoutMs=1000,
        retry={"initialBackoffMs": 100, "maxBackoffMs": 300})})


@pytest.fixture
def audit_run(audit_stack: Stack) -> Iterator[Run]:
    run = Run(audit_stack)
    wait_until(lambda: audit_counters(audit_stack).get("buffered_events", 0) == 0, what="sender buffer to drain")
    run.collector.post("/admin/reset", {})
    yield run
    for path, body in (("/admin/delay", {"ms": 0}), ("/admin/fail", {"status": None}),
                       ("/admin/limit", {"maxEvents": None}), ("/admin/block", {"block": False})):
        run.collector.post(path, body)


def no_stale_posts(run: Run) -> None:
    """Wait until the collector holds no batch POST: one the sender gave up on
    earlier (a "slow collector" case) would otherwise take the failure the
    next case injects, and that case would miss its own refused batch."""
    wait_until(lambda: run.collector.stats()["held"] == 0, what="the collector to finish stale POSTs")


def four_calls(run: Run) -> list[str]:
    """Four allowed tools/call in a row (one batch of 4), each reaching the MCP server."""
    before = run.mcp_count()
    for i in range(4):
        r = run.post(tools_call(i=i), ADMIN)
        assert r.status_code == 200, r.text
    assert run.mcp_count() == before + 4
    return run.rids[-4:]


@pytest.mark.timeout(90)
def test_slow_collector_is_retried_and_nothing_is_lost(audit_run: Run) -> None:
    """The collector answers after the sender's timeout (1 s): every attempt
    fails with 504 and is retried (at-least-once: the collector may store a
    batch it answered too late, docs/audit.md); traffic is unaffected; once
    it is fast again every event is there, none dropped."""
    before = audit_counters(audit_run.stack)
    audit_run.collector.post("/admin/delay", {"ms": 1500})
    rids = four_calls(audit_run)
    wait_until(lambda: audit_counters(audit_run.stack)["batches_failed"] >= before["batches_failed"] + 2,
               what="timed-out batches")
    audit_run.collector.post("/admin/delay", {"ms": 0})
    wait_until(lambda: audit_counters(audit_run.stack).get("buffered_events", 0) == 0, what="buffer drained")
    got = audit_run.collector.by_id()
    assert set(rids) <= set(got), "an event was lost"
    after = audit_counters(audit_run.stack)
    assert after["events_dropped"] == before["events_dropped"]
    assert after["events_retried"] > before["events_retried"]
    audit_run.allowed_call_succeeds()
    audit_run.assert_no_vm_crash()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("status", [403, 404])
def test_collector_refusing_a_batch_with_4xx_drops_exactly_that_batch(audit_run: Run, status: int) -> None:
    """docs/audit.md: a 401/403/404 (any 4xx but 400, 408, 413, 422, 429)
    means the collector will never take that batch (wrong token or path):
    it is dropped and counted, so it cannot block the rest. Lost: exactly
    the refused batch, counted in events_dropped."""
    before = audit_counters(audit_run.stack)
    already = set(audit_run.collector.stats()["refused_event_ids"])
    no_stale_posts(audit_run)
    audit_run.collector.post("/admin/fail", {"status": status, "count": 1})
    first = four_calls(audit_run)
    wait_until(lambda: audit_run.collector.stats()["failures_injected"] == 1, what="one batch refused")
    wait_until(lambda: audit_counters(audit_run.stack).get("buffered_events", 0) == 0, what="buffer drained")
    # The batch the collector refused (whichever events the sender had put
    # in it: batching follows time and workers, not our four calls).
    refused = [r for r in audit_run.collector.stats()["refused_event_ids"] if r not in already]
    assert refused, "the collector refused an empty batch?"
    # the sender counts the drop when it reads the 403, a moment after the
    # collector sent it
    wait_until(lambda: audit_counters(audit_run.stack)["events_dropped"] - before["events_dropped"]
               >= len(refused), what="the refused batch counted as dropped")
    wait_until(lambda: audit_counters(audit_run.stack)["events_dropped"] - before["events_dropped"]
               >= len(refused), what="the refused batch counted as dropped")
    got = audit_run.collector.by_id()
    assert not set(refused) & set(got), "a refused event was delivered"
    assert all(r in got for r in first if r not in refused), "an event outside the refused batch was lost"
    assert audit_counters(audit_run.stack)["events_dropped"] - before["events_dropped"] == len(refused)
    audit_run.rids = [r for r in audit_run.rids if r not in refused]
    four_calls(audit_run)
    audit_run.finish()  # everything but the refused batch arrived, once each
    assert not set(refused) & set(audit_run.collector.by_id())
    assert audit_counters(audit_run.stack)["events_dropped"] - before["events_dropped"] == len(refused)


@pytest.mark.timeout(60)
def test_collector_answering_400_once_gets_the_batch_split_and_loses_nothing(audit_run: Run) -> None:
    """A 400 may be one event the collector cannot take: the batch is split
    and retried in halves, and here (the collector refused once) every event
    arrives, once, none dropped."""
    before = audit_counters(audit_run.stack)
    no_stale_posts(audit_run)
    audit_run.collector.post("/admin/fail", {"status": 400, "count": 1})
    four_calls(audit_run)
    wait_until(lambda: audit_run.collector.stats()["failures_injected"] == 1, what="one batch refused")
    audit_run.finish()
    after = audit_counters(audit_run.stack)
    assert after["events_dropped"] == before["events_dropped"]
    assert after["batches_split"] > before.get("batches_split", 0)


@pytest.mark.timeout(60)
def test_collector_refusing_a_single_event_for_size_drops_only_it(audit_run: Run) -> None:
    """413 for a batch of one event: it cannot be split, so it is dropped and
    counted; the batches after it flow."""
    before = audit_counters(audit_run.stack)
    no_stale_posts(audit_run)
    audit_run.collector.post("/admin/limit", {"maxEvents": 0})
    r = audit_run.post(tools_call(), ADMIN)
    assert r.status_code == 200
    refused = audit_run.rids.pop()
    wait_until(lambda: audit_counters(audit_run.stack)["events_dropped"] - before["events_dropped"] == 1,
               what="the refused event counted as dropped")
    audit_run.collector.post("/admin/limit", {"maxEvents": None})
    four_calls(audit_run)
    audit_run.finish()
    assert refused not in audit_run.collector.by_id()
    assert audit_counters(audit_run.stack)["events_dropped"] - before["events_dropped"] == 1


@pytest.mark.timeout(60)
def test_collector_refusing_a_batch_for_size_gets_it_split(audit_run: Run) -> None:
    """The collector takes at most 2 events per batch (413 otherwise): the
    sender splits the batch of 4 and every event arrives, once, none dropped."""
    before = audit_counters(audit_run.stack)
    no_stale_posts(audit_run)
    audit_run.collector.post("/admin/limit", {"maxEvents": 2})
    four_calls(audit_run)
    audit_run.finish()
    assert audit_run.collector.stats()["too_large"] >= 1
    assert audit_counters(audit_run.stack)["events_dropped"] == before["events_dropped"]


# =========================================================================== upstream killed mid-stream


@pytest.fixture(scope="module")
def sse_stack(start_stack: Callable[..., Stack]) -> Stack:
    return start_stack("faults-sse", config="envoy/gateway.yaml", filter_configs={"gw_audit_sender": FAST_SENDER})


@pytest.mark.timeout(120)
def test_mcp_upstream_killed_mid_sse_stream(sse_stack: Stack) -> None:
    """generate_video streams progress over SSE; the MCP server is killed
    (SIGKILL) after the first event. The client's stream ends without a
    result; A2A traffic is served meanwhile; MCP calls get 503 until the
    server is back, then succeed; the cut stream is audited once, as
    upstream_error with the response status it had (docs/audit.md)."""
    run = Run(sse_stack)
    mcp = proc(sse_stack, "mcp_server")
    call = tools_call("generate_video", prompt="cut", steps=50, delay_ms=200)
    call["params"]["_meta"] = {"progressToken": "cut-1"}  # MCP: progress only for a request that asks
    lines: list[str] = []
    with run.gw.http({**MCP_ACCEPT, **ADMIN}, timeout=30) as c:
        with c.stream("POST", "/mcp", json=call) as r:
            run.rids.append(r.headers["x-request-id"])
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            it = r.iter_lines()
            try:
                for line in it:
                    lines.append(line)
                    if "notifications/progress" in line:
                        os.killpg(mcp.popen.pid, signal.SIGKILL)  # type: ignore[union-attr]
                        mcp.popen.wait(timeout=5)  # type: ignore[union-attr]
                        break
                for line in it:
                    lines.append(line)
            except httpx.HTTPError:
                pass  # the cut shows as a reset / incomplete body: either is fine
    assert any("notifications/progress" in line for line in lines)
    assert not any('"result"' in line for line in lines), "a result after the upstream died?"

    # Envoy keeps serving: A2A at once
    r = run.post(a2a_send(), ADMIN, path="/a2a")
    assert r.status_code == 200, r.text
    # MCP: no upstream -> Envoy's 503, audited as upstream_error
    r = run.post(tools_call(), ADMIN)
    assert r.status_code == 503, r.text
    mcp.start()
    sse_stack._wait([mcp])
    events = run.finish()
    cut = events[run.rids[0]]
    assert cut["decision"] == "upstream_error", cut
    assert cut["status"] == 200 and cut["toolName"] == "generate_video", cut
    assert events[run.rids[2]]["decision"] == "upstream_error"
    assert events[run.rids[1]]["decision"] == "allowed"
