"""Rate-limit and exhaustion attacks: one agent under several keys and
paths, batches, concurrency across both Envoy workers (exactly the limit
reaches the upstream), A2A's protocol-version aliases; oversized and slow
bodies, rapid resets, many streams, abandoned connections. Each case counts
what reached the upstream.

The shipped limits: tools/call 60/min + burst 10 (70 in any 60 s), A2A send
30/min, per verified agent. Every counting case uses agents of its own
(the identity service's pool), so the cases never share windows."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from attacks.support import (
    ALLOWED_CALL, DENIED, DENIED_CALL, MCP_HEADERS, AttackGateway, a2a_send, body_of, chunk, refused, tools_call,
)

pytestmark = pytest.mark.timeout(90)
LIMIT = 70


def worker_connections(atk: AttackGateway) -> dict[str, int]:
    out = {}
    for line in atk.admin("/stats?filter=^listener\\..*worker_[0-9]+\\.downstream_cx_total$").splitlines():
        name, _, value = line.partition(": ")
        out[name] = int(value)
    return out


def connections_on_both_workers(atk: AttackGateway, want: int) -> list[httpx.Client]:
    """At least `want` open keep-alive connections, on both Envoy workers (the
    kernel hands a burst of connections to one worker as often as not: open
    more until both have some, checked by the per-worker listener counters)."""
    clients: list[httpx.Client] = []
    before = worker_connections(atk)
    for _ in range(64):
        c = httpx.Client(base_url=atk.base_url, verify=atk.ssl_context(), timeout=30)
        c.get("/.well-known/agent-card.json", headers={"x-atk-barrier": "1"})  # opens the connection
        clients.append(c)
        used = [k for k, v in worker_connections(atk).items() if v > before.get(k, 0)]
        if len(clients) >= want and len(used) >= min(2, atk.stack.workers):
            return clients
    for c in clients:
        c.close()
    raise AssertionError("could not get connections on both Envoy workers")


def fire(atk: AttackGateway, jobs: list[tuple[str, bytes, str, dict[str, str]]], connections: int = 8,
         both_workers: bool = False) -> list[int]:
    """Run (path, body, key, headers) jobs over `connections` parallel keep-alive connections."""
    lock = threading.Lock()
    queue = list(enumerate(jobs))
    statuses: list[int] = [0] * len(jobs)
    if both_workers:
        clients = connections_on_both_workers(atk, connections)
    else:
        clients = [httpx.Client(base_url=atk.base_url, verify=atk.ssl_context(), timeout=30)
                   for _ in range(connections)]

    def worker(c: httpx.Client) -> None:
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    i, (path, body, key, hdrs) = queue.pop(0)
                h = {**(MCP_HEADERS if path.startswith("/mcp") else {"content-type": "application/json"}),
                     "x-agent-api-key": key, **hdrs}
                statuses[i] = c.post(path, content=body, headers=h).status_code
        finally:
            c.close()

    with ThreadPoolExecutor(len(clients)) as ex:
        for f in [ex.submit(worker, c) for c in clients]:
            f.result()
    return statuses


def call(i: int) -> bytes:
    return body_of(tools_call("read_config", i, key="region"))


def test_concurrent_calls_across_workers_admit_exactly_the_limit(atk: AttackGateway) -> None:
    key = atk.fresh("sentinel")
    w = atk.watch()
    statuses = fire(atk, [("/mcp", call(i), key, {}) for i in range(LIMIT + 10)], connections=10, both_workers=True)
    assert w.tool_runs() == {"read_config": LIMIT}
    assert statuses.count(429) == 10 and statuses.count(200) == LIMIT, statuses


def test_recipe_path_and_single_endpoint_share_one_window(atk: AttackGateway) -> None:
    key = atk.fresh("sentinel")
    w = atk.watch()
    jobs = [("/mcp" if i % 2 else "/mcp/tools/call", call(i), key, {}) for i in range(LIMIT + 6)]
    statuses = fire(atk, jobs, connections=4)
    assert w.tool_runs() == {"read_config": LIMIT}
    assert statuses.count(429) == 6, statuses


def test_one_agent_under_two_keys_has_one_window(atk: AttackGateway) -> None:
    a, b = atk.keys["twin"]
    w = atk.watch()
    statuses = fire(atk, [("/mcp", call(i), a if i % 2 else b, {}) for i in range(LIMIT + 4)], connections=4)
    assert w.tool_runs() == {"read_config": LIMIT}
    assert statuses.count(429) == 4, statuses


def test_batches_count_every_call(atk: AttackGateway) -> None:
    """14 batches of 5 calls use the whole window: the next single call is refused."""
    key = atk.fresh("sentinel")
    w = atk.watch()
    for b in range(LIMIT // 5):
        r = atk.post("/mcp", json.dumps([tools_call("read_config", f"{b}-{i}", key="region") for i in range(5)]).encode(),
                     key=key)
        assert r.status_code != 429, (b, r.text)
    before = len(w.records())
    r = atk.post("/mcp", call(999), key=key)
    assert r.status_code == 429, r.text
    assert len(w.records()) == before
    sent = sum(len(json.loads(rec["body"])) if rec["body"].startswith("[") else 1 for rec in w.records())
    assert sent == LIMIT


def test_a2a_protocol_aliases_share_one_window(atk: AttackGateway) -> None:
    key = atk.fresh("alchemy")
    w = atk.watch()
    jobs = []
    for i in range(10):
        jobs.append(("/a2a/tasks/send", body_of(a2a_send("message/send", id_=i)), key, {}))
        jobs.append(("/a2a", body_of(a2a_send("message/send", id_=i)), key, {}))
        jobs.append(("/a2a", body_of(a2a_send("SendMessage", id_=i)), key, {"a2a-version": "1.0"}))
    statuses = fire(atk, jobs, connections=3)
    assert all(s == 200 for s in statuses), statuses
    more = fire(atk, [("/a2a", body_of(a2a_send("SendMessage")), key, {"a2a-version": "1.0"}),
                      ("/a2a/tasks/send", body_of(a2a_send("tasks/send")), key, {})], connections=1)
    assert more == [429, 429], more
    assert w.a2a_executions() == 30
    assert len(w.records("a2a_upstream")) == 30


def test_denied_calls_are_not_executed_even_under_load(atk: AttackGateway) -> None:
    key = atk.fresh("sentinel")
    w = atk.watch()
    statuses = fire(atk, [("/mcp/tools/call", DENIED_CALL, key, {}) for _ in range(40)], connections=8)
    assert statuses == [403] * 40
    w.nothing()


# --------------------------------------------------------------------------- exhaustion


@pytest.mark.parametrize("size", [1024 * 1024 + 1, 2 * 1024 * 1024, 8 * 1024 * 1024])
def test_oversized_body_with_content_length_is_413_before_upstream(atk: AttackGateway, size: int) -> None:
    frame = len(body_of(tools_call(DENIED, 1, code="")))
    body = body_of(tools_call(DENIED, 1, code="x" * (size - frame)))
    assert len(body) == size
    w = atk.watch()
    try:
        r = atk.post("/mcp", body)
        assert r.status_code == 413, r.text[:300]
    except httpx.HTTPError:
        pass  # Envoy may close the connection while the body is still being sent
    atk.barrier()
    w.nothing()


def test_oversized_chunked_body_is_413_before_upstream(atk: AttackGateway) -> None:
    w = atk.watch()
    head = atk.mcp_req(chunked=True)
    parts = [head, chunk(DENIED_CALL[:-2])] + [chunk(b" " * 65536)] * 24 + [chunk(b"}}") + b"0\r\n\r\n"]
    try:
        rs = atk.h1(*parts)
        assert not rs or rs[0].status == 413, rs
    except OSError:
        pass
    atk.barrier()
    w.nothing()


def test_body_just_under_the_limit_is_still_judged(atk: AttackGateway) -> None:
    body = body_of(tools_call(DENIED, 1, code="x" * 1_000_000))
    w = atk.watch()
    r = atk.post("/mcp", body)
    w.nothing()
    assert refused(r.status_code, r.content)


def test_whitespace_padding_before_the_tool_name(atk: AttackGateway) -> None:
    """900 KB of JSON whitespace before `params`: still under the ACL's 1 MiB, so judged."""
    raw = b'{"jsonrpc":"2.0","id":1,"method":"tools/call",' + b" " * 900_000 + b'"params":{"name":"%s"}}' % DENIED.encode()
    w = atk.watch()
    r = atk.post("/mcp", raw)
    w.nothing()
    assert refused(r.status_code, r.content), r.text[:300]


def test_slow_denied_body_is_judged_when_it_ends(atk: AttackGateway) -> None:
    """A body trickled in 40 pieces over ~2 s (within Envoy's timeouts)."""
    s = atk.tls_socket()
    w = atk.watch()
    try:
        s.sendall(atk.mcp_req(length=len(DENIED_CALL)))
        step = len(DENIED_CALL) // 40 + 1
        for i in range(0, len(DENIED_CALL), step):
            s.sendall(DENIED_CALL[i:i + step])
            time.sleep(0.05)
        assert not w.records(), "headers or body released before the body ended"
        data = b""
        while chunk_ := s.recv(65536):
            data += chunk_
    finally:
        s.close()
    w.nothing()
    assert b"-32001" in data, data[:300]


def test_slowloris_connections_hold_nothing_upstream(atk: AttackGateway) -> None:
    """20 connections each send headers and half a body, then stall: nothing
    reaches the upstream, and the gateway still answers others."""
    socks = []
    w = atk.watch()
    try:
        for _ in range(20):
            s = atk.tls_socket()
            s.sendall(atk.mcp_req(length=len(ALLOWED_CALL), close=False) + ALLOWED_CALL[:30])
            socks.append(s)
        r = atk.post("/mcp", ALLOWED_CALL, key=atk.fresh("sentinel"))
        assert r.status_code == 200, r.text
        assert len(w.records()) == 1
    finally:
        for s in socks:
            s.close()
    atk.barrier()
    assert w.tool_runs() == {"search_patterns": 1}


def test_rapid_reset_of_many_streams(atk: AttackGateway) -> None:
    w = atk.watch()
    with atk.h2() as c:
        for _ in range(200):
            sid = c.headers("/mcp")
            c.data(sid, ALLOWED_CALL[:20])
            c.reset(sid)
        st = c.wait(c.request(DENIED_CALL))
        assert refused(st.status, st.body), st
    atk.barrier()
    w.nothing("(rapid reset)")


def test_many_denied_streams_on_one_connection(atk: AttackGateway) -> None:
    w = atk.watch()
    with atk.h2() as c:
        sids = [c.request(DENIED_CALL, path="/mcp/tools/call") for _ in range(100)]
        answers = [c.wait(s) for s in sids]
    assert [a.status for a in answers] == [403] * 100
    w.nothing()


def test_huge_batch_of_denied_calls(atk: AttackGateway) -> None:
    w = atk.watch()
    r = atk.post("/mcp", ("[" + ",".join([DENIED_CALL.decode()] * 5000) + "]").encode())
    w.nothing()
    assert r.status_code in (200, 400, 413), r.status_code


# --------------------------------------------------------------------------- more ways around a limit


def test_notifications_of_an_allowed_call_are_counted(atk: AttackGateway) -> None:
    """tools/call without an id: still a call, still counted."""
    key = atk.fresh("sentinel")
    w = atk.watch()
    note = body_of({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "read_config", "arguments": {"key": "r"}}})
    fire(atk, [("/mcp", note, key, {}) for _ in range(LIMIT + 5)], connections=4)
    assert len(w.records()) <= LIMIT, len(w.records())
    assert w.tool_runs().get("read_config", 0) <= LIMIT


def test_a2a_batches_count_every_send(atk: AttackGateway) -> None:
    key = atk.fresh("alchemy")
    w = atk.watch()
    for b in range(7):
        atk.post("/a2a", json.dumps([a2a_send(id_=f"{b}-{i}") for i in range(5)]).encode(), key=key)
    sent = sum(len(json.loads(r["body"])) if r["body"].startswith("[") else 1 for r in w.records("a2a_upstream"))
    assert sent <= 30, sent
    assert w.a2a_executions() <= 30


def test_a2a_1_0_method_without_version_header_is_counted(atk: AttackGateway) -> None:
    key = atk.fresh("alchemy")
    w = atk.watch()
    statuses = fire(atk, [("/a2a", body_of(a2a_send("SendMessage", id_=i)), key, {}) for i in range(33)], connections=3)
    assert w.a2a_executions() <= 30, (w.a2a_executions(), statuses)


def test_a2a_stream_limit_holds(atk: AttackGateway) -> None:
    """message/stream: the shipped 10/min for sendSubscribe, whatever the path."""
    key = atk.fresh("alchemy")
    w = atk.watch()
    jobs = [("/a2a/tasks/sendSubscribe" if i % 2 else "/a2a", body_of(a2a_send("message/stream", "steps=0", i)), key,
             {"accept": "text/event-stream"}) for i in range(12)]
    statuses = fire(atk, jobs, connections=2)
    assert statuses.count(429) == 2, statuses
    assert len(w.records("a2a_upstream")) == 10


def test_post_without_body_naming_a_denied_tool_in_headers(atk: AttackGateway) -> None:
    """MCP 2026-07-28 headers only, END_STREAM on HEADERS: nothing to run."""
    w = atk.watch()
    with atk.h2() as c:
        sid = c.headers("/mcp/tools/call", extra=[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"),
                                                  ("mcp-name", DENIED)], end=True)
        c.wait(sid)
    atk.barrier()
    w.never_ran()
    assert all(r["bodyBytes"] == 0 for r in w.records()), w.records()


def test_a_repeated_unknown_key_costs_one_validation_callout(atk: AttackGateway) -> None:
    """Issue 10 finding 5: unknown keys are cached negatively for a short time,
    so a flood of one bad key is not amplified onto the key service."""
    stats = lambda: httpx.get(atk.identity_url + "/stats", timeout=5).json()["validations"]  # noqa: E731
    before = stats()
    w = atk.watch()
    statuses = fire(atk, [("/mcp", ALLOWED_CALL, "atk-unknown-key-0001", {}) for _ in range(20)], connections=1)
    assert statuses == [401] * 20, statuses
    w.nothing()
    assert stats() - before <= 2, f"{stats() - before} validation callouts for one unknown key"


@pytest.mark.parametrize("pad", [0, 600 * 1024, 1000 * 1024])
def test_padded_calls_are_counted_like_small_ones(atk: AttackGateway, pad: int) -> None:
    """A body above audit's 512 KiB parse limit (but under the ACL's 1 MiB)
    must still count: the window is full, so the padded call gets 429."""
    key = atk.fresh("sentinel")
    fire(atk, [("/mcp", call(i), key, {}) for i in range(LIMIT)], connections=4)
    w = atk.watch()
    r = atk.post("/mcp", body_of(tools_call("read_config", "padded", key="region", pad="p" * pad)), key=key)
    w.nothing("(over the limit, padded)")
    assert r.status_code == 429, r.text[:300]


@pytest.mark.parametrize("pad", [600 * 1024, 2 * 1024 * 1024])
def test_padded_a2a_send_is_counted(atk: AttackGateway, pad: int) -> None:
    """A2A has no tool ACL in front: the rate limit alone must hold a padded send."""
    key = atk.fresh("alchemy")
    fire(atk, [("/a2a", body_of(a2a_send(id_=i)), key, {}) for i in range(30)], connections=3)
    w = atk.watch()
    try:
        r = atk.post("/a2a", body_of(a2a_send(text="p" * pad)), key=key)
        assert r.status_code in (413, 429), r.text[:300]
    except httpx.HTTPError:
        pass  # Envoy may close the connection while the body is still being sent
    atk.barrier()
    w.nothing("(over the limit, padded)")


def test_an_oversized_a2a_send_is_never_free(atk: AttackGateway) -> None:
    """One small send (the key is then cached), one 2 MiB send, then 29 small
    ones: at most 30 sends may run (the big one is refused, or counted)."""
    key = atk.fresh("alchemy")
    w = atk.watch()
    assert atk.post("/a2a", a2a_send(), key=key).status_code == 200
    try:
        atk.post("/a2a", body_of(a2a_send(text="p" * (2 * 1024 * 1024))), key=key, timeout=15)
    except httpx.HTTPError:
        pass
    fire(atk, [("/a2a", body_of(a2a_send(id_=i)), key, {}) for i in range(29)], connections=3)
    assert w.a2a_executions() <= 30, w.a2a_executions()
    assert len(w.records("a2a_upstream")) <= 30


@pytest.mark.parametrize("path", ["/a2a", "/a2a/tasks/send", "/mcp"])
def test_oversized_send_during_a_slow_key_validation_is_answered(atk: AttackGateway, path: str) -> None:
    """A 2 MiB send whose key needs a validation callout: while identity waits
    for the key service the body piles up past Envoy's buffer limit; the
    request must still get its 413 (not hang, holding the buffered body, for
    the 3600 s stream idle timeout). The key service answers after 500 ms,
    so the whole body has arrived before identity resumes. Found by this
    suite: on the four-module deployment the A2A request hangs (access log:
    `0 DC 2097152 ... downstream_remote_disconnect`)."""
    key = atk.fresh("alchemy" if path.startswith("/a2a") else "sentinel")
    body = body_of(a2a_send(text="p" * (2 * 1024 * 1024)) if path.startswith("/a2a")
                   else tools_call("read_config", 1, pad="p" * (2 * 1024 * 1024)))
    w = atk.watch()
    httpx.post(atk.identity_url + "/faults", json={"delayMs": 500}, timeout=5).raise_for_status()
    try:
        r = atk.post(path, body, key=key, timeout=10)
        status = r.status_code
    except httpx.ReadTimeout:
        status = 0
    finally:
        httpx.post(atk.identity_url + "/faults", json={}, timeout=5).raise_for_status()
    atk.barrier()
    w.nothing()
    assert status == 413, "no answer within 10 s: the stream is stuck" if status == 0 else status
