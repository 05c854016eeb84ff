#!/usr/bin/env python3
"""`./dev bench`: measure the gateway against bare Envoy and Envoy's native
composition in one paired, interleaved run and write BENCHMARKS.md.

Never edit BENCHMARKS.md by hand: this script writes it (machine, versions,
date, mode and every number). It asserts nothing; numbers on a shared
machine are noisy, so every figure that matters is a ratio to bare Envoy
measured in the same round, right next to it (see docs/benchmarks.md).

    python scripts/bench_report.py [--quick] [--rounds 3] [--duration 10] [--out BENCHMARKS.md]

What one run measures:

1. The matrix: {bare, envoy-native (api_key_auth + mcp + rbac +
   local_ratelimit), ours as one module (gateway.wasm), ours as four modules}
   x {2,000 agents under the shipped limits, one busy agent under a high
   limit} x {plaintext, TLS}. Each round runs every gateway of a group
   (load shape x transport) back to back, in a rotated order (interleaved),
   and each figure is divided by bare's figure of the same round (paired);
   the report gives the median over rounds.
2. A body-size sweep (1 KB, 64 KB, 1 MB tools/call bodies; plaintext, 2,000
   agents): bare, envoy-native and our one module.
3. A distinct-agents sweep (1; 1,000; 100,000): the rate-limit filter alone
   (agent id from a header, as in scripts/bench_rate_limit_memory.py) in front
   of a direct_response, against the same Envoy without it; every agent is
   seen at least once before the measured run, so the windows are all live:
   memory per agent (tcmalloc allocated and RSS growth) and CPU per decision.
4. Host-side rate-limit decision cost (examples/rate_limit_decide.rs).
5. The size of each .wasm module.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

import bench_chain as bc  # noqa: E402
import bench_rate_limit_memory as brl  # noqa: E402
from gwstack import ROOT, WASM_DIR, Proc, Stack, envoy_binary, free_port, http_ok, tail  # noqa: E402

Patch = Callable[[dict[str, Any]], None]

# The wrk script (body, headers, rotation, one BENCHJSON summary line) is
# bench_chain's: bc.WRK_LUA, bc.rotate_lua, bc.wrk.

GATEWAYS = ("bare", "envoy-native", "one-module", "four-modules")
SHAPES = ("2000-agents", "busy-agent")
TRANSPORTS = ("plaintext", "tls")


# ---------------------------------------------------------------- helpers

def compose(*patches: Patch | None) -> Patch:
    def patch(cfg: dict[str, Any]) -> None:
        for p in patches:
            if p is not None:
                p(cfg)
    return patch


def plaintext(cfg: dict[str, Any]) -> None:
    """Patch: the gateway listener without TLS (same HCM, routes and filters)."""
    for chain in cfg["static_resources"]["listeners"][0]["filter_chains"]:
        chain.pop("transport_socket", None)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def allocated_bytes(admin_url: str) -> int:
    with urllib.request.urlopen(f"{admin_url}/memory", timeout=10) as r:
        return int(json.loads(r.read())["allocated"])


def body_of_size(size: int) -> str:
    """A tools/call (tool read_config) padded to `size` bytes in an argument."""
    doc = json.loads(bc.BODY)
    doc["params"]["arguments"]["padding"] = ""
    base = len(json.dumps(doc, separators=(",", ":")))
    doc["params"]["arguments"]["padding"] = "x" * max(0, size - base)
    return json.dumps(doc, separators=(",", ":"))


def write_lua(path: Path, body: str, headers: dict[str, str], rotate: str, url_path: str = "/mcp",
              method: str = "POST") -> Path:
    text = bc.WRK_LUA % {"path": url_path, "body": body, "rotate": rotate,
                      "headers": "\n".join(f'wrk.headers["{k}"] = {json.dumps(v)}' for k, v in headers.items())}
    if method != "POST":
        text = text.replace('wrk.method = "POST"', f'wrk.method = "{method}"').replace(
            f"wrk.body = [[{body}]]", "wrk.body = nil")
    path.write_text(text)
    return path


def measure(pid: int, url: str, lua: Path, args: argparse.Namespace, warmup: int) -> dict[str, Any]:
    if warmup > 0:
        bc.wrk(url, lua, warmup, args.threads, args.connections)
    t0 = bc.cpu_ticks(pid)
    res = bc.wrk(url, lua, args.duration, args.threads, args.connections)
    t1 = bc.cpu_ticks(pid)
    tick = os.sysconf("SC_CLK_TCK")
    reqs = max(1, res["requests"])
    res["cpu_us"] = (t1 - t0) / tick * 1e6 / reqs
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["errors"] = sum(res[k] for k in ("connect", "read", "write", "status", "timeout"))
    res["rss"] = rss_bytes(pid)
    return res


# ---------------------------------------------------------------- gateway runs

def stack_kwargs(args: argparse.Namespace, run_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """The gateway Stack's arguments every run shares (bench_memory too): the shipped
    config, no example backends, quiet logs; callers add patch, deployment, configs."""
    return {
        "config": "envoy/gateway.yaml", "workers": args.workers, "run_dir": run_dir,
        "backends": (), "extra_upstreams": extra, "envoy_log_level": "warn",
        "component_log_level": "wasm:warn", "wasm_dir": args.wasm_dir, "filter_configs": {},
    }


def add_bench_upstream(s: Stack, run_dir: Path, port: int, admin_port: int) -> None:
    """The buffering upstream Envoy (bench_audit.upstream_config) as one of the stack's processes."""
    run_dir.mkdir(parents=True, exist_ok=True)
    up_cfg = run_dir / "upstream.yaml"
    up_cfg.write_text(json.dumps(bc.upstream_config(port, admin_port)))
    s.add_process("bench_upstream", [envoy_binary(), "-c", str(up_cfg), "--concurrency", "1",
                                     "--disable-hot-restart", "--log-level", "warn"],
                  ready_url=f"http://127.0.0.1:{admin_port}/ready")


def gateway_run(gw: str, shape: str, transport: str, body: str, args: argparse.Namespace,
                run_dir: Path) -> dict[str, Any]:
    """One gateway (fresh Envoy + buffering upstream Envoy) under one load."""
    agents = bc.bench_agents(args.agents) if shape == "2000-agents" else []
    up_port, up_admin = free_port(), free_port()
    extra: dict[str, Any] = {"mcp_upstream": up_port}
    ours = gw in ("one-module", "four-modules")
    if ours:
        extra["audit_collector"] = up_port  # audit batches to a sink that answers 200 at once
    tls = None if transport == "tls" else plaintext
    kw = stack_kwargs(args, run_dir, extra)
    if gw == "bare":
        kw["patch"] = compose(bc.only_envoy([]), tls)
    elif gw == "envoy-native":
        kw["patch"] = compose(bc.only_envoy(bc.native_filters(api_key=True, agents=agents)), tls)
    else:
        if agents:
            kw["filter_configs"]["gw_identity"] = bc.identity_with_agents(agents)
        else:
            kw["filter_configs"]["gw_rate_limit"] = bc.raised_rate_limit()
        kw["patch"] = tls
        # each run names its filters: never the harness's default deployment
        kw["deployment"] = "one" if gw == "one-module" else "four"
    s = Stack(**kw)
    add_bench_upstream(s, run_dir, up_port, up_admin)
    scheme = "https" if transport == "tls" else "http"
    s.start()
    try:
        check(f"{scheme}://localhost:{s.gateway_port}/mcp", body, s, agents)
        url = f"{scheme}://127.0.0.1:{s.gateway_port}/mcp"
        envoy = next(p for p in s.procs if p.name == "envoy")
        assert envoy.popen is not None
        headers = dict(bc.HEADERS)
        lua = write_lua(run_dir / "load.lua", body, headers,
                        bc.rotate_lua("x-agent-api-key", [k for _, k in agents]))
        res = measure(envoy.popen.pid, url, lua, args, args.warmup)
        s.assert_alive()
        # lost compare-and-swap races on the rate-limit windows (workers writing one slot)
        res["cas_retries"] = sum(int(v) for k, v in bc.wasm_stat(s, "cas_retries").items() if v.strip().isdigit())
        res["rq_total"] = sum(int(v) for k, v in bc.wasm_stat(s, "^http.gateway.downstream_rq_total$").items())
        return res
    except Exception:
        print(f"--- {gw}/{shape}/{transport}: envoy log tail\n{tail(s.log_path('envoy'), 30)}", file=sys.stderr)
        raise
    finally:
        s.stop()


def check(url: str, body: str, s: Stack, agents: list[tuple[str, str]]) -> None:
    """One request before the load: it must be proxied (the upstream's result), not denied."""
    import ssl

    headers = dict(bc.HEADERS)
    if agents:
        headers["x-agent-api-key"] = agents[0][1]
    ctx = ssl.create_default_context(cafile=str(s.ca_path)) if url.startswith("https") else None
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
        text = r.read().decode(errors="replace")
        if r.status != 200 or bc.EXPECT not in text:
            raise RuntimeError(f"pre-check: {r.status} {text[:300]}")


# ---------------------------------------------------------------- agents sweep

AGENT_LIMITS = """
limits:
  - path: /mcp/tools/call
    keySelector: "#[attributes.headers['x-verified-agent-id']]"
    maxRequests: 1000000
    windowSeconds: 60
"""


def agents_run(n: int, with_filter: bool, args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """Rate-limit filter alone (or not at all) in front of a direct_response; `n` agents round robin."""
    run_dir.mkdir(parents=True, exist_ok=True)
    wasm = (args.wasm_dir or WASM_DIR) / "rate_limit.wasm"
    port, admin = free_port(), free_port()
    cfg = brl.envoy_config(port, admin, wasm)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for f in hcm["http_filters"]:
        if f["name"] == "gw.rate_limit":
            f["typed_config"]["config"]["configuration"]["value"] = AGENT_LIMITS
    if not with_filter:
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "gw.rate_limit"]
    cfg_path = run_dir / "envoy.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    envoy = Proc("envoy", [envoy_binary(), "-c", str(cfg_path), "--concurrency", str(args.workers),
                           "--disable-hot-restart", "--log-level", "warn"], run_dir / "envoy.log",
                 ready=lambda: http_ok(f"http://127.0.0.1:{admin}/ready"))
    envoy.start()
    try:
        deadline = time.monotonic() + 60
        while not (envoy.ready and envoy.ready()):
            if not envoy.alive() or time.monotonic() > deadline:
                raise RuntimeError(tail(envoy.log))
            time.sleep(0.1)
        assert envoy.popen is not None
        admin_url = f"http://127.0.0.1:{admin}"
        time.sleep(0.5)
        alloc0, rss0 = allocated_bytes(admin_url), rss_bytes(envoy.popen.pid)
        # n ids generated in Lua (a literal table of 100,000 strings is too many constants)
        rotate = (f"local n = {n}\nlocal i = 0\nrequest = function()\n  i = i % n + 1\n"
                  "  wrk.headers[\"x-bench-identity\"] = string.format('{\"agentId\":\"bench-agent-%06d\"}', i - 1)\n"
                  "  return wrk.format()\nend\n")
        lua = write_lua(run_dir / "load.lua", "", {}, rotate, url_path="/mcp/tools/call", method="GET")
        # Warm up long enough that every agent has a live window (~4,000 req/s here).
        warmup = max(args.warmup, -(-n // 4000) + 1)
        res = measure(envoy.popen.pid, f"http://127.0.0.1:{port}/mcp/tools/call", lua, args, warmup)
        res["alloc_growth"] = allocated_bytes(admin_url) - alloc0
        res["rss_growth"] = rss_bytes(envoy.popen.pid) - rss0
        return res
    finally:
        envoy.stop()


# ---------------------------------------------------------------- report

def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def versions() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    env_v = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    env_v = env_v.split("version: ")[-1]
    wrk_v = (subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines() or ["?"])[0]
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    # the report it is about to overwrite does not make the build dirty
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                            ".", ":!BENCHMARKS.md"], capture_output=True, text=True).stdout.strip()
    mem = next((line.split(":", 1)[1].strip() for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "?")
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {os.cpu_count()} CPUs ({cpu}), {mem} RAM, Linux {platform.release()}, "
        f"load average at start {bc.loadavg()}",
        f"- Envoy {env_v}",
        f"- {wrk_v}",
        f"- {rustc}; gateway commit {commit}{' (+ uncommitted changes)' if dirty else ''}",
    ]


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}" if x == x else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="one round, 4 s per run, 1 s warm-up, no four-module body sweep (~10 min)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="gateway Envoy --concurrency")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--agents", type=int, default=2000, help="agents of the many-agents shape")
    ap.add_argument("--wasm-dir", type=Path, default=None)
    ap.add_argument("--skip", nargs="*", default=[], choices=["matrix", "bodies", "agents", "host"],
                    help="leave a part out")
    ap.add_argument("--gateways", nargs="*", choices=GATEWAYS, default=list(GATEWAYS))
    ap.add_argument("--shapes", nargs="*", choices=SHAPES, default=list(SHAPES))
    ap.add_argument("--transports", nargs="*", choices=TRANSPORTS, default=list(TRANSPORTS))
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 4, 1
    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    root = ROOT / ".run" / "bench-report"
    root.mkdir(parents=True, exist_ok=True)
    mode = (f"{'--quick' if args.quick else 'full'}: {args.rounds} round(s), {args.warmup} s warm-up + "
            f"{args.duration} s measured per run, gateway Envoy --concurrency {args.workers}, "
            f"wrk -t{args.threads} -c{args.connections} (HTTP/1.1 keep-alive)")
    head = versions()
    print("\n".join(head), file=sys.stderr)
    t_start = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.0f} s] {msg}", file=sys.stderr, flush=True)

    failures: list[str] = []

    def attempt(what: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        """A run that fails (pre-check, crash) is reported, not fatal to the rest."""
        try:
            return run()
        except Exception as e:  # noqa: BLE001
            failures.append(f"- {what}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            log(f"FAILED {what}: {e}")
            return None

    # -- 1. the matrix, paired and interleaved
    matrix: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    body = bc.BODY
    if "matrix" not in args.skip:
        for rnd in range(args.rounds):
            for shape in args.shapes:
                for transport in args.transports:
                    order = list(args.gateways)
                    k = rnd % len(order)
                    order = order[k:] + order[:k]  # rotate so no gateway always runs first
                    for gw in order:
                        log(f"round {rnd + 1}: {gw} / {shape} / {transport}")
                        r = attempt(f"{gw} / {shape} / {transport}", lambda: gateway_run(
                            gw, shape, transport, body, args, root / f"{gw}-{shape}-{transport}"))
                        if r is not None:
                            r["round"] = rnd
                            matrix.setdefault((gw, shape, transport), []).append(r)

    # -- 2. body sizes
    bodies: dict[tuple[str, int], list[dict[str, Any]]] = {}
    sizes = (1024, 65536, 1_000_000)
    body_gws = [g for g in ("bare", "envoy-native", "one-module") + (() if args.quick else ("four-modules",))
                if g in args.gateways]
    if "bodies" not in args.skip:
        for rnd in range(args.rounds):
            for size in sizes:
                for gw in body_gws:
                    log(f"round {rnd + 1}: body {size} B / {gw}")
                    r = attempt(f"body {size} B / {gw}", lambda: gateway_run(
                        gw, "2000-agents", "plaintext", body_of_size(size), args, root / f"body-{size}-{gw}"))
                    if r is not None:
                        r["round"] = rnd
                        bodies.setdefault((gw, size), []).append(r)

    # -- 3. distinct agents
    agents_res: dict[tuple[int, bool], list[dict[str, Any]]] = {}
    if "agents" not in args.skip:
        for rnd in range(args.rounds):
            for n in (1, 1000, 100_000):
                for with_filter in (False, True):
                    log(f"round {rnd + 1}: {n} agents, rate limit {'on' if with_filter else 'off'}")
                    r = attempt(f"{n} agents / rate limit {with_filter}", lambda: agents_run(
                        n, with_filter, args, root / f"agents-{n}-{int(with_filter)}"))
                    if r is not None:
                        r["round"] = rnd
                        agents_res.setdefault((n, with_filter), []).append(r)

    # -- 4. host-side decision cost
    host_out = ""
    if "host" not in args.skip:
        log("host: rate-limit decision cost")
        p = subprocess.run(["cargo", "run", "--release", "-q", "-p", "gw-core", "--example", "rate_limit_decide"],
                           cwd=ROOT, capture_output=True, text=True)
        host_out = p.stdout.strip() or p.stderr.strip()

    # ---------------------------------------------------------------- write
    out: list[str] = [
        "# BENCHMARKS", "",
        "Generated by `./dev bench` (`scripts/bench_report.py`); do not edit by hand. How to read it and",
        "what each scenario is: docs/benchmarks.md. Every ratio is to bare Envoy measured in the same round",
        "(paired), runs interleaved, medians over rounds. The machine is shared: absolute numbers are noisy,",
        "ratios less so.", "",
        *head, f"- mode: {mode}", "",
        "Gateways: **bare** = Envoy with the router only; **envoy-native** = `api_key_auth` + `mcp`",
        "(REJECT_NO_MCP) + `rbac` on the mcp metadata + `local_ratelimit`; **one-module** = our four filters",
        "as `gateway.wasm` (audit on, batches to a sink); **four-modules** = the four `.wasm` filters.",
        "Load shapes: **2000-agents** = each request carries the next of 2,000 static API keys under the",
        "shipped limits (60 tool calls/min + 10); **busy-agent** = every request is one agent's, whose limit",
        f"is raised to {', '.join(f'{k} {v}' for k, v in bc.RAISED_LIMIT.items())} (no request limited).",
        f"Request: POST /mcp `tools/call` of {len(bc.BODY)} bytes; the upstream (a second Envoy) reads the",
        "whole body and answers a fixed result. CPU µs/req = gateway Envoy utime+stime / requests.",
        "",
    ]
    if matrix:
        out += ["## Gateways x load shapes x transport", "",
                "| shape | transport | gateway | req/s | × bare | p50 ms | p99 ms | p99.9 ms | p99 Δ ms "
                "| CPU µs/req | × bare | Δ µs | RSS MiB | × bare | errors |",
                "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for shape in SHAPES:
            for transport in TRANSPORTS:
                bare = {r["round"]: r for r in matrix.get(("bare", shape, transport), [])}
                for gw in GATEWAYS:
                    rs = matrix.get((gw, shape, transport), [])
                    if not rs:
                        continue
                    pair = [(r, bare[r["round"]]) for r in rs if r["round"] in bare]
                    out.append(
                        f"| {shape} | {transport} | {gw} | {median([r['rps'] for r in rs]):.0f} "
                        f"| {fmt_ratio(median([r['rps'] / b['rps'] for r, b in pair]))} "
                        f"| {median([r['p50_us'] for r in rs]) / 1000:.2f} "
                        f"| {median([r['p99_us'] for r in rs]) / 1000:.2f} "
                        f"| {median([r['p999_us'] for r in rs]) / 1000:.2f} "
                        f"| {median([(r['p99_us'] - b['p99_us']) / 1000 for r, b in pair]):+.2f} "
                        f"| {median([r['cpu_us'] for r in rs]):.1f} "
                        f"| {fmt_ratio(median([r['cpu_us'] / b['cpu_us'] for r, b in pair]))} "
                        f"| {median([r['cpu_us'] - b['cpu_us'] for r, b in pair]):+.1f} "
                        f"| {median([r['rss'] for r in rs]) / 2**20:.0f} "
                        f"| {fmt_ratio(median([r['rss'] / b['rss'] for r, b in pair]))} "
                        f"| {sum(r['errors'] for r in rs)} |")
        out.append("")
        # the acceptance lines, computed
        lines = []
        for transport in TRANSPORTS:
            def med(gw: str, shape: str, key: Callable[[dict[str, Any], dict[str, Any]], float]) -> float:
                bare = {r["round"]: r for r in matrix.get(("bare", shape, transport), [])}
                return median([key(r, bare[r["round"]]) for r in matrix.get((gw, shape, transport), [])
                               if r["round"] in bare])
            one_rps = med("one-module", "2000-agents", lambda r, b: r["rps"] / b["rps"])
            nat_rps = med("envoy-native", "2000-agents", lambda r, b: r["rps"] / b["rps"])
            one_cpu = med("one-module", "2000-agents", lambda r, b: r["cpu_us"] - b["cpu_us"])
            nat_cpu = med("envoy-native", "2000-agents", lambda r, b: r["cpu_us"] - b["cpu_us"])
            busy_cpu = med("one-module", "busy-agent", lambda r, b: r["cpu_us"] - b["cpu_us"])
            p99 = med("one-module", "2000-agents", lambda r, b: (r["p99_us"] - b["p99_us"]) / 1000)
            lines.append(
                f"- {transport}: one module {one_rps:.2f}× bare req/s (native {nat_rps:.2f}×); CPU over bare "
                f"{one_cpu:+.0f} µs (native {nat_cpu:+.0f} µs); busy agent {busy_cpu:+.0f} µs over bare vs "
                f"{one_cpu:+.0f} µs with 2,000 agents ({(busy_cpu / one_cpu - 1) * 100 if one_cpu else 0:+.0f} %); "
                f"p99 added {p99:+.2f} ms")
        cas = []
        for shape in SHAPES:
            for gw in ("one-module", "four-modules"):
                rs = [r for t in TRANSPORTS for r in matrix.get((gw, shape, t), [])]
                if rs:
                    per_k = median([r["cas_retries"] * 1000 / max(1, r["rq_total"]) for r in rs])
                    cas.append(f"{gw} / {shape}: {per_k:.1f}")
        if cas:
            out += ["Rate-limit CAS retries per 1,000 requests (workers losing the race for one window slot): "
                    + "; ".join(cas) + ".", ""]
        out += ["Against issue 13's targets (one module, 2,000 agents: ≥ 0.70× bare req/s, CPU over bare ≤",
                "native's; busy agent within ±10 % of many agents; p99 added ≤ 1 ms):", "", *lines, ""]
    if bodies:
        out += ["## Request body size (plaintext, 2000-agents)", "",
                "| body | gateway | req/s | × bare | p99 ms | CPU µs/req | × bare | RSS MiB | × bare | errors |",
                "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for size in sizes:
            bare_rs = bodies.get(("bare", size), [])
            for gw in body_gws:
                rs = bodies.get((gw, size), [])
                if not rs:
                    continue
                by_round = {b["round"]: b for b in bare_rs}
                pair = [(r, by_round[r["round"]]) for r in rs if r["round"] in by_round]
                out.append(
                    f"| {size:,} B | {gw} | {median([r['rps'] for r in rs]):.0f} "
                    f"| {fmt_ratio(median([r['rps'] / b['rps'] for r, b in pair]))} "
                    f"| {median([r['p99_us'] for r in rs]) / 1000:.2f} | {median([r['cpu_us'] for r in rs]):.1f} "
                    f"| {fmt_ratio(median([r['cpu_us'] / b['cpu_us'] for r, b in pair]))} "
                    f"| {median([r['rss'] for r in rs]) / 2**20:.0f} "
                    f"| {fmt_ratio(median([r['rss'] / b['rss'] for r, b in pair]))} | {sum(r['errors'] for r in rs)} |")
        out += ["", "Errors here are answers other than 2xx (e.g. 413 when a gateway refuses a body over its "
                "buffer limit) and socket errors.", ""]
    if agents_res:
        out += ["## Distinct agents: rate-limit memory and decision cost", "",
                "`rate_limit.wasm` alone (agent id from a header via `set_filter_state`; limit 1,000,000 per 60 s so",
                "no request is refused) in front of a `direct_response`, against the same Envoy without it. Every",
                "agent is seen during the warm-up, so all windows are live when memory is read.", "",
                "| agents | req/s × without | CPU µs/req | Δ µs (decision + filter) | Envoy allocated growth | per agent "
                "| RSS growth | errors |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for n in (1, 1000, 100_000):
            on, off = agents_res.get((n, True), []), agents_res.get((n, False), [])
            if not on or not off:
                continue
            by_round = {b["round"]: b for b in off}
            pair = [(r, by_round[r["round"]]) for r in on if r["round"] in by_round]
            alloc = median([r["alloc_growth"] for r in on])
            out.append(
                f"| {n:,} | {fmt_ratio(median([r['rps'] / b['rps'] for r, b in pair]))} "
                f"| {median([r['cpu_us'] for r in on]):.1f} "
                f"| {median([r['cpu_us'] - b['cpu_us'] for r, b in pair]):+.1f} "
                f"| {alloc / 2**20:.1f} MiB | {alloc / n:,.0f} B "
                f"| {median([r['rss_growth'] for r in on]) / 2**20:.1f} MiB | {sum(r['errors'] for r in on)} |")
        out.append("")
    if host_out:
        out += ["## Rate-limit decision on the host (`cargo run --release -p gw-core --example rate_limit_decide`)",
                "", "```", host_out, "```", ""]
    if failures:
        out += ["## Runs that failed (left out of the tables above)", "", *failures, ""]
    out += ["## Module sizes", "", "| module | bytes |", "|---|---:|"]
    wasm_dir = args.wasm_dir or WASM_DIR
    for f in sorted(wasm_dir.glob("*.wasm")):
        out.append(f"| {f.name} | {f.stat().st_size:,} |")
    out += ["", f"Run took {(time.monotonic() - t_start) / 60:.1f} min.", ""]
    args.out.write_text("\n".join(out))
    print("\n".join(out))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
