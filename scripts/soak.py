#!/usr/bin/env python3
"""Soak: a bounded run of mixed MCP and A2A traffic from many agents through
the shipped config (envoy/gateway.yaml, one module; --four-modules or
GW_FOUR_MODULES=1 for its four-module form), then checks and prints the figures. Not in CI, not in
`./dev test`: `./dev soak [--duration 300] [--rate 1200] [--agents 150]`.

What runs (loopback only, free ports, everything stopped at the end):

* the gateway: the shipped config, its identity section given `--agents`
  extra static agents (`sentinel-soak-N`, `alchemy-soak-N`, `admin-soak-N`,
  keys `soak-key-N`, stored as SHA-256 like the demo agents), everything
  else as shipped (audit with its 50-event / 5 s batches, tool ACL, rate
  limits 60/min + burst 10 for tools/call and 30/min for A2A send);
* the example audit collector (`--count-only`: eventId counts, no memory
  growth);
* a recording upstream instead of the example servers (a second stock Envoy:
  it answers MCP and A2A with fixed JSON-RPC results and writes one access
  log line per request it received: time, verified agent id, operation), so
  the upstream never limits the rate and counts exactly what arrived;
* wrk (one thread, `--connections` keep-alive TLS connections, paced by its
  Lua `delay()` to about `--rate` requests/s) cycling every agent through
  tools/call of an allowed tool, tools/call of a denied tool (sentinel-*:
  execute_code, alchemy-*: delete_scene; admin-* may call anything, so they
  send a second tools/list instead), tools/list and A2A message/send.

Checks (exit status 1 if any fails):

* rate >= --min-rate requests/s over the run;
* every request Envoy saw (http.gateway.downstream_rq_total) audited exactly
  once: the collector's distinct eventIds == that count, 0 duplicates, 0
  dropped by the audit filter or sender;
* limits exact, counted at the upstream per agent: in the agent's first
  W - 1 s exactly M + B admitted (it asks for more), and in no interval of
  W - 1 s more than M + B, of 2W - 1 s more than 2M (the 1 s margin absorbs
  the gateway-to-upstream latency: the upstream's clock is not the limiter's);
* denied tools never reached the upstream;
* 0 Wasm VM crashes (Envoy's log) and every process alive;
* Envoy's RSS sampled every --sample seconds: start (after warm-up), end, max.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import yaml

import gwstack as stack_mod  # noqa: E402
from gwstack import ROOT, Stack, envoy_binary, free_port  # noqa: E402

VM_CRASH = re.compile(r"panicked at|Function: \S+ failed|Uncaught (?:Runtime|Type|Range)?Error|wasm trap", re.I)
KINDS = ("sentinel", "alchemy", "admin")
ALLOWED = {"sentinel": "search_patterns", "alchemy": "generate_video", "admin": "read_config"}
DENIED = {"sentinel": "execute_code", "alchemy": "delete_scene"}
# (maxRequests M, burstAllowance B, windowSeconds W) of envoy/gateway.yaml's limits
LIMITS = {"call": (60, 10, 60), "send": (30, 0, 60)}

TOOLS = [{"name": n, "inputSchema": {"type": "object"}} for n in
         ("search_patterns", "classify_content", "read_config", "execute_code", "write_file",
          "generate_video", "render_scene", "read_template", "delete_scene")]
ANSWERS = {
    "call": {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "ok"}], "isError": False}},
    "list": {"jsonrpc": "2.0", "id": 1, "result": {"tools": TOOLS}},
    "send": {"jsonrpc": "2.0", "id": 1, "result": {"kind": "task", "id": "t-1", "contextId": "c-1",
                                                   "status": {"state": "completed"}}},
}


# --------------------------------------------------------------------------- config


def agents(n: int) -> list[dict[str, str]]:
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        out.append({"id": f"{kind}-soak-{i}", "kind": kind, "key": f"soak-key-{i}"})
    return out


def identity_config(extra: list[dict[str, str]]) -> str:
    """The shipped identity section with the soak agents added as static agents."""
    conf = yaml.safe_load(stack_mod.filter_configuration(ROOT / "envoy" / "gateway.yaml", "gw_identity"))
    api = next(m for m in conf["authMethods"] if m["type"] == "apiKey")
    api["agents"] = list(api.get("agents", [])) + [
        {"id": a["id"], "name": a["id"], "owner": "soak", "keySha256": hashlib.sha256(a["key"].encode()).hexdigest()}
        for a in extra
    ]
    return yaml.safe_dump(conf, sort_keys=False)


def upstream_config(port: int, admin: int, log: Path) -> dict[str, Any]:
    """A stock Envoy answering every operation with a fixed result (chosen by
    the x-soak-op header the client sent), reading the whole body first, and
    logging what it received."""
    routes = [{
        "match": {"prefix": "/", "headers": [{"name": "x-soak-op", "string_match": {"exact": op}}]},
        "direct_response": {"status": 200, "body": {"inline_string": json.dumps(body, separators=(",", ":"))}},
        "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"},
                                     "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
    } for op, body in ANSWERS.items()]
    routes.append({"match": {"prefix": "/"}, "direct_response": {"status": 404}})
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "upstream",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "enable_reuse_port": False,
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "upstream",
                    "access_log": [{"name": "envoy.access_loggers.file", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                        "path": str(log),
                        "log_format": {"text_format_source": {"inline_string":
                            "%START_TIME(%s.%3f)% %REQ(X-VERIFIED-AGENT-ID)% %REQ(X-SOAK-OP)% %REQ(X-SOAK-TOOL)%\n"}},
                    }}],
                    "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
                    "http_filters": [
                        {"name": "envoy.filters.http.buffer", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                            "max_request_bytes": 1048576}},
                        {"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                    ],
                },
            }]}],
        }]},
    }


# --------------------------------------------------------------------------- load


def requests_for(a: dict[str, str]) -> list[dict[str, Any]]:
    """The agent's cycle: allowed call, denied call (or tools/list), tools/list, A2A send."""
    mcp = {"accept": "application/json, text/event-stream", "content-type": "application/json",
           "mcp-protocol-version": "2025-11-25", "x-agent-api-key": a["key"]}

    def call(tool: str) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {"q": "x"}}}
        return {"path": "/mcp", "headers": {**mcp, "x-soak-op": "call", "x-soak-tool": tool}, "body": body}

    listing = {"path": "/mcp", "headers": {**mcp, "x-soak-op": "list", "x-soak-tool": "-"},
               "body": {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}}
    msg = {"kind": "message", "messageId": "m-1", "role": "user", "parts": [{"kind": "text", "text": "hi"}]}
    send = {"path": "/a2a", "headers": {"content-type": "application/json", "x-agent-api-key": a["key"],
                                        "x-soak-op": "send", "x-soak-tool": "-"},
            "body": {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": msg}}}
    denied = call(DENIED[a["kind"]]) if a["kind"] in DENIED else listing
    return [call(ALLOWED[a["kind"]]), denied, listing, send]


def lua_script(reqs: list[dict[str, Any]], rate: int, connections: int) -> str:
    """wrk script: cycle through the requests; pace the connections to about
    `rate` requests/s; count statuses (printed as one JSON line at the end)."""
    delay_ms = connections * 1000 / rate

    def lua_str(s: str) -> str:
        return "[==[" + s + "]==]"

    rows = []
    for r in reqs:
        hdrs = ", ".join(f"[ {lua_str(k)} ] = {lua_str(v)}" for k, v in r["headers"].items())
        rows.append(f"  {{{lua_str(r['path'])}, {{{hdrs}}}, {lua_str(json.dumps(r['body'], separators=(',', ':')))}}}")
    return f"""
local specs = {{
{(',' + chr(10)).join(rows)}
}}
local reqs = {{}}
local n = 0
statuses = {{}}  -- global: done() reads it with thread:get
local threads = {{}}
local rate = {rate}
local d = {delay_ms}
local second, count = 0, 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i, s in ipairs(specs) do
    reqs[i] = wrk.format("POST", s[1], s[2], s[3])
  end
  n = math.random(#reqs) - 1
end

-- Pacing: wrk's Lua has only a 1 s clock, so the per-request delay is
-- corrected once a second by how far the last second was from the target.
function delay()
  local now = os.time()
  if now ~= second then
    if second ~= 0 and count > 0 then
      d = math.min(1000, math.max(0, d * count / rate))
      if count < rate and d < 1 then d = 0 end
    end
    second, count = now, 0
  end
  count = count + 1
  return math.floor(d)
end

function request()
  n = n + 1
  return reqs[(n % #reqs) + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {{}}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do total[tostring(k)] = (total[tostring(k)] or 0) + v end
  end
  local parts = {{}}
  for k, v in pairs(total) do table.insert(parts, string.format('"%s": %d', k, v)) end
  io.write("SOAK_STATUSES {{" .. table.concat(parts, ", ") .. "}}\\n")
  io.write(string.format("SOAK_LATENCY p50=%.2f p99=%.2f max=%.2f ms\\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


# --------------------------------------------------------------------------- checks


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stat(s: Stack, name: str) -> int:
    _, body = s.admin(f"/stats?filter=^{re.escape(name)}$")
    for line in body.splitlines():
        k, _, v = line.partition(": ")
        if k == name and v.strip().isdigit():
            return int(v)
    return 0


def max_in_interval(times: list[float], span: float) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - span:
            j += 1
        best = max(best, i - j + 1)
    return best


def check_limits(log: Path, start: float, agent_ids: set[str]) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Per op: agents seen, exact first windows, violations; and the problems."""
    arrivals: dict[tuple[str, str], list[float]] = defaultdict(list)
    denied_seen = 0
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        t, agent, op, tool = float(parts[0]), parts[1], parts[2], parts[3]
        if agent not in agent_ids:
            continue
        if tool in DENIED.values():
            denied_seen += 1
        arrivals[(agent, op)].append(t)
    problems = []
    if denied_seen:
        problems.append(f"{denied_seen} denied tool calls reached the upstream")
    figures: dict[str, dict[str, int]] = {}
    for op, (m, b, w) in LIMITS.items():
        f = {"agents": 0, "admitted": 0, "first_window_exact": 0, "over_limit": 0}
        for agent in sorted(agent_ids):
            ts = sorted(arrivals.get((agent, op), []))
            f["agents"] += 1
            f["admitted"] += len(ts)
            first = bisect.bisect_left(ts, start + w - 1)
            if first == m + b:
                f["first_window_exact"] += 1
            else:
                problems.append(f"{agent} {op}: {first} admitted in the first {w - 1} s, expected {m + b}")
            worst = max_in_interval(ts, w - 1) if ts else 0
            worst2 = max_in_interval(ts, 2 * w - 1) if ts and b else 0
            if worst > m + b or (b and worst2 > 2 * m):
                f["over_limit"] += 1
                problems.append(f"{agent} {op}: {worst} in {w - 1} s (max {m + b}), {worst2} in {2 * w - 1} s")
        figures[op] = f
    return figures, problems


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=300, help="seconds of load (default 300)")
    ap.add_argument("--rate", type=int, default=1200, help="target requests/s (wrk paces to about this)")
    ap.add_argument("--min-rate", type=int, default=1000, help="fail below this many requests/s")
    ap.add_argument("--agents", type=int, default=150)
    ap.add_argument("--connections", type=int, default=96)
    ap.add_argument("--workers", type=int, default=2, help="Envoy --concurrency")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--four-modules", action="store_true", help="the four-module form (envoy/four-modules/)")
    args = ap.parse_args()
    four = args.four_modules or stack_mod.FOUR_MODULES
    deployment = "four modules" if four else "one module (gateway.wasm)"

    run_dir = ROOT / ".run" / f"soak-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    soak_agents = agents(args.agents)
    up_port, up_admin = free_port(), free_port()
    up_log = run_dir / "upstream-access.log"
    up_cfg = run_dir / "upstream.yaml"
    up_cfg.write_text(json.dumps(upstream_config(up_port, up_admin, up_log)))
    s = Stack(config="envoy/gateway.yaml", workers=args.workers, run_dir=run_dir, backends=("audit",),
              extra_upstreams={"mcp_upstream": up_port, "a2a_upstream": up_port},
              filter_configs={"gw_identity": identity_config(soak_agents)},
              # the last --out wins: no 300k-line events file, only the eventId counts
              audit_collector_args=("--count-only", "--out", "-"),
              envoy_log_level="warn", component_log_level="wasm:warn", deployment="four" if four else "one")
    s.add_process("soak_upstream", [envoy_binary(), "-c", str(up_cfg), "--concurrency", "1",
                                    "--disable-hot-restart", "--log-level", "warn"],
                  ready_url=f"http://127.0.0.1:{up_admin}/ready")
    reqs = [r for a in soak_agents for r in requests_for(a)]
    script = run_dir / "soak.lua"
    script.write_text(lua_script(reqs, args.rate, args.connections))

    print(f"soak: {args.duration} s, target {args.rate} req/s, {args.agents} agents, {args.connections} connections, "
          f"Envoy --concurrency {args.workers}, {deployment}; run dir {run_dir}", flush=True)
    s.start()
    problems: list[str] = []
    try:
        envoy = next(p for p in s.procs if p.name == "envoy")
        assert envoy.popen is not None
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sampler() -> None:
            while not stop.is_set():
                samples.append((time.monotonic(), rss_kib(envoy.popen.pid)))  # type: ignore[union-attr]
                stop.wait(args.sample)

        rss_before = rss_kib(envoy.popen.pid)
        threading.Thread(target=sampler, daemon=True).start()
        start = time.time()
        t0 = time.monotonic()
        wrk = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s",
                              "-s", str(script), f"https://127.0.0.1:{s.gateway_port}/"],
                             capture_output=True, text=True, timeout=args.duration + 120)
        elapsed = time.monotonic() - t0
        stop.set()
        (run_dir / "wrk.out").write_text(wrk.stdout + wrk.stderr)
        if wrk.returncode != 0 or "SOAK_STATUSES" not in wrk.stdout:
            print(wrk.stdout, wrk.stderr)
            return 1
        statuses = json.loads(re.search(r"SOAK_STATUSES (\{.*\})", wrk.stdout).group(1))  # type: ignore[union-attr]
        latency = re.search(r"SOAK_LATENCY (.*)", wrk.stdout).group(1)  # type: ignore[union-attr]
        m = re.search(r"(\d+) requests in", wrk.stdout)
        completed = int(m.group(1)) if m else sum(statuses.values())
        errors = re.search(r"Socket errors: (.*)", wrk.stdout)
        rate = completed / elapsed

        # audit: wait for the sender to deliver what it holds (flushIntervalMs 5 s)
        collector = s.upstream_url("audit_collector")
        seen = stat(s, "http.gateway.downstream_rq_total")
        deadline = time.monotonic() + 60
        while True:
            cs = httpx.get(collector + "/stats", timeout=10).json()
            if cs["unique_events"] >= seen or time.monotonic() > deadline:
                break
            time.sleep(1)
        time.sleep(6)  # one more flush interval: anything beyond `seen` (a duplicate) would show now
        cs = httpx.get(collector + "/stats", timeout=10).json()
        seen = stat(s, "http.gateway.downstream_rq_total")
        dropped = stat(s, "wasmcustom.gw.audit.events_dropped")

        ids = {a["id"] for a in soak_agents}
        limit_figures, limit_problems = check_limits(up_log, start, ids)
        problems += limit_problems[:20]
        if len(limit_problems) > 20:
            problems.append(f"... {len(limit_problems) - 20} more rate-limit problems")

        s.assert_alive()
        crashes = [ln for ln in s.log_path("envoy").read_text(errors="replace").splitlines() if VM_CRASH.search(ln)]

        (run_dir / "rss.csv").write_text("seconds,rss_kib\n" + "".join(f"{t - t0:.1f},{kib}\n" for t, kib in samples))
        per_minute = [next(kib for t, kib in samples if t - t0 >= 60 * m) for m in range(int(elapsed // 60) + 1)
                      if any(t - t0 >= 60 * m for t, _ in samples)]
        warm = [kib for t, kib in samples if t - t0 >= min(30, args.duration / 4)] or [kib for _, kib in samples]
        rss_start, rss_end, rss_max = warm[0], warm[-1], max(kib for _, kib in samples)

        if rate < args.min_rate:
            problems.append(f"rate {rate:.0f} req/s < {args.min_rate}")
        if cs["unique_events"] != seen:
            problems.append(f"{seen} requests, {cs['unique_events']} distinct audit events")
        if cs["duplicates"]:
            problems.append(f"{cs['duplicates']} duplicate audit events")
        if dropped:
            problems.append(f"{dropped} audit events dropped")
        if crashes:
            problems.append(f"{len(crashes)} Wasm VM crash lines, first: {crashes[0]}")

        rows = [
            ("deployment", deployment),
            ("duration (s)", f"{elapsed:.0f}"),
            ("requests completed (wrk)", completed),
            ("rate (req/s)", f"{rate:.0f}"),
            ("statuses", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))),
            ("latency", latency),
            ("socket errors", errors.group(1) if errors else "none"),
            ("requests seen by Envoy", seen),
            ("audit events (distinct eventId)", cs["unique_events"]),
            ("audit duplicates / dropped", f"{cs['duplicates']} / {dropped}"),
        ]
        for op, f in limit_figures.items():
            mm, b, w = LIMITS[op]
            rows.append((f"limit {op} ({mm}+{b}/{w}s): agents exact first window",
                         f"{f['first_window_exact']}/{f['agents']}, over limit: {f['over_limit']}, "
                         f"admitted at upstream: {f['admitted']}"))
        rows += [
            ("Envoy RSS before load (MiB)", f"{rss_before / 1024:.1f}"),
            ("Envoy RSS after warm-up / end / max (MiB)",
             f"{rss_start / 1024:.1f} / {rss_end / 1024:.1f} / {rss_max / 1024:.1f}"),
            ("Envoy RSS each minute (MiB)", " ".join(f"{kib / 1024:.1f}" for kib in per_minute)),
            ("RSS samples", f"{len(samples)} (all in {run_dir / 'rss.csv'})"),
            ("Wasm VM crashes", len(crashes)),
            ("processes alive", "yes"),
        ]
        width = max(len(k) for k, _ in rows)
        print()
        for k, v in rows:
            print(f"  {k:<{width}}  {v}")
        print()
    finally:
        s.stop()
        # the upstream access log is the evidence for the limits; keep the run dir small otherwise
    if problems:
        print("FAILED:")
        for p in problems:
            print("  -", p)
        return 1
    print("OK: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
