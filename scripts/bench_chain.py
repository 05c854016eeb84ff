#!/usr/bin/env python3
"""Per-request cost of the gateway chain against bare Envoy and Envoy's native
MCP filters. Prints a table; asserts nothing.

Every scenario runs the gateway Envoy with `--concurrency 1` (numbers are per
core) on the listener, TLS and route settings of envoy/gateway.yaml; only the
HTTP filter list (and the audit sender service) differs:

  bare              router only
  noop-wasm         the empty Wasm filter (filters/noop), 4x-noop-wasm: four
  hold-wasm         the fixture with our chain's callbacks and actions (the
                    request held until its body has ended) but no host call
  replay-wasm       the fixture making exactly the host calls of our chain for
                    one tools/call (filters/noop/traces/tools_call.trace), no
                    policy: chain-1-module - replay-wasm is our own Wasm code
  replay+sender     replay-wasm plus the audit sender service, fed the recorded
                    event in frames as the audit stage feeds it
  envoy-native      envoy.filters.http.mcp (REJECT_NO_MCP) + rbac on its
                    metadata (envoy.filters.http.mcp / params.name) +
                    local_ratelimit (filter_enabled + filter_enforced), router
  envoy-native+key  the same with api_key_auth (x-agent-api-key) in front,
                    the peer of our identity filter
  audit             gw.audit (+ its sender service) only
  identity          gw.identity only
  audit+identity    gw.audit, gw.identity
  +tool-acl         gw.audit, gw.identity, gw.tool_acl
  chain             the four filters as shipped (audit -> identity -> tool-acl
                    -> rate-limit); the rate-limit maxRequests is raised so no
                    request is limited (the only change to the shipped config)

The tool ACL and the rate limit judge the verified identity, so they are
measured as increments (+tool-acl, chain) rather than alone: without the
identity filter the ACL denies every call locally, which would measure a
403 instead of a proxied request.

Load: wrk (Debian `wrk`), 2 threads, 32 connections over HTTPS (HTTP/1.1,
keep-alive), POSTing a ~300-byte MCP `tools/call` (tool read_config) to /mcp
with the demo key gw-demo-admin-1; a short warm-up run, then the measured
run. The upstream is a second stock Envoy that buffers the whole request body
and answers a fixed JSON-RPC result (keeps connections alive). Audit events go
to examples/audit_collector/collector.py (as in the demo), unless
--audit-sink upstream sends them to the upstream Envoy instead.

CPU µs/request = (utime + stime of the gateway Envoy process over the measured
run, from /proc/<pid>/stat) / requests completed. The process total includes
the main thread (the audit sender singleton runs there).

  python scripts/bench_chain.py [--duration 10] [--warmup 2] [--only bare chain]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import ssl
import subprocess
import sys
import time
import hashlib
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

from bench_audit import upstream_config  # noqa: E402  (the buffering upstream Envoy)
from gwstack import ROOT, Stack, envoy_binary, free_port, one_module_config, tail  # noqa: E402

# The empty Wasm filter (filters/noop), built by `just bench-chain`.
NOOP_WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "gw_noop.wasm"
API_KEY = "gw-demo-admin-1"  # identity filter's static demo key (docs/identity.md)
# ~300 bytes, a realistic tools/call with some arguments
BODY = json.dumps({
    "jsonrpc": "2.0", "id": 7, "method": "tools/call",
    "params": {"name": "read_config", "arguments": {
        "key": "region", "path": "/etc/gateway/services/billing/config.yaml",
        "fields": ["region", "zone", "replicas", "owner", "tier"],
        "reason": "capacity review for the quarterly report, read-only access requested by agent"},
        "_meta": {"progressToken": "bench-0001"}},
}, separators=(",", ":"))
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream",
           "x-agent-api-key": API_KEY}
EXPECT = "eu-west-1"  # in the upstream's fixed result: the request was proxied, not denied
# The filter caps maxRequests and burstAllowance at 10,000 per window: with a
# 1-second window that is 10,000 (+10,000 burst) requests/s per agent, above
# what one gateway core serves here. wrk counts any 429 as an error (column).
RAISED_LIMIT = {"maxRequests": 10_000, "windowSeconds": 1, "burstAllowance": 10_000}

WRK_LUA = """
wrk.method = "POST"
wrk.path = "%(path)s"
wrk.body = [[%(body)s]]
%(headers)s
%(rotate)s
done = function(summary, latency, requests)
  local s = string.format(
    '{"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"p999_us":%%d,"mean_us":%%f,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.mean, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout)
  io.write("BENCHJSON " .. s .. "\\n")
end
"""

HCM_PATH = ("static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config")


def hcm(cfg: dict[str, Any]) -> dict[str, Any]:
    node: Any = cfg
    for k in HCM_PATH:
        node = node[k]
    return node


def router() -> dict[str, Any]:
    return {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def native_filters(api_key: bool, agents: list[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """Envoy's own peers of our chain (docs/benchmarks.md). The mcp filter's
    metadata is nested: namespace envoy.filters.http.mcp, params -> name."""
    pct = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "bench_rl"}
    out: list[dict[str, Any]] = []
    if api_key:
        out.append({"name": "envoy.filters.http.api_key_auth", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
            "credentials": [{"key": API_KEY, "client": "admin-1"}] + [
                {"key": key, "client": aid} for aid, key in agents],
            "key_sources": [{"header": "x-agent-api-key"}]}})
    out += [
        {"name": "envoy.filters.http.mcp", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.mcp.v3.Mcp",
            "traffic_mode": "REJECT_NO_MCP",
            # our filters take bodies up to 1 MiB (tool ACL maxBodyBytes); the mcp
            # filter's default is smaller (a 64 KB tools/call gets 400 mcp_body_too_large)
            "max_request_body_size": 1 << 20}},
        {"name": "envoy.filters.http.rbac", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": {"allowed-tools": {
                "principals": [{"any": True}],
                "permissions": [{"or_rules": {"rules": [
                    {"sourced_metadata": {"metadata_matcher": {
                        "filter": "envoy.filters.http.mcp", "path": [{"key": "params"}, {"key": "name"}],
                        "value": {"string_match": {"exact": tool}}}}}
                    for tool in ("search_patterns", "classify_content", "read_config")]}}]}}}}},
        {"name": "envoy.filters.http.local_ratelimit", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "bench_local_rl",
            "token_bucket": {"max_tokens": 1_000_000_000, "tokens_per_fill": 1_000_000_000, "fill_interval": "1s"},
            "filter_enabled": pct, "filter_enforced": {**pct, "runtime_key": "bench_rl_enforced"}}},
    ]
    return out


def to_one_module(cfg: dict[str, Any]) -> None:
    """Patch: the shipped chain as one module (gateway.wasm, stack.one_module_config)."""
    converted = one_module_config(cfg)
    cfg.clear()
    cfg.update(converted)


def keep_ours(names: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    """Patch: keep only these gw.* filters (in shipped order) + the router; the
    audit sender service only when gw.audit stays."""
    def patch(cfg: dict[str, Any]) -> None:
        h = hcm(cfg)
        h["http_filters"] = [f for f in h["http_filters"] if f["name"] in names or not f["name"].startswith("gw.")]
        if "gw.audit" not in names:
            cfg.pop("bootstrap_extensions", None)
    return patch


def only_envoy(filters: list[dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
    def patch(cfg: dict[str, Any]) -> None:
        cfg.pop("bootstrap_extensions", None)
        hcm(cfg)["http_filters"] = [*filters, router()]
    return patch


def bench_agents(n: int) -> list[tuple[str, str]]:
    """(agent id, API key) of the generated agents. `sentinel-*` ids: the
    shipped tool ACL lets them call read_config."""
    return [(f"sentinel-bench-{i:05d}", f"bench-agent-key-{i:05d}") for i in range(n)]


def rotate_lua(header: str, values: list[str]) -> str:
    """wrk: each request carries the next of `values` in `header` (round robin per thread)."""
    if not values:
        return ""
    vals = ",".join(json.dumps(v) for v in values)
    return (f"local vals = {{{vals}}}\nlocal i = 0\n"
            "request = function()\n  i = i % #vals + 1\n"
            f'  wrk.headers["{header}"] = vals[i]\n  return wrk.format()\nend\n')


def identity_with_agents(agents: list[tuple[str, str]]) -> dict[str, Any]:
    """The shipped gw_identity configuration plus the generated static agents."""
    from gwstack import filter_configuration

    conf = yaml.safe_load(filter_configuration("envoy/gateway.yaml", "gw_identity"))
    method = next(m for m in conf["authMethods"] if m["type"] == "apiKey")
    method["agents"] = method.get("agents", []) + [
        {"id": aid, "name": aid, "owner": "bench", "keySha256": hashlib.sha256(key.encode()).hexdigest()}
        for aid, key in agents]
    return conf


def raised_rate_limit() -> str:
    """The shipped gw_rate_limit configuration with every limit raised (RAISED_LIMIT)."""
    from gwstack import filter_configuration

    text = filter_configuration("envoy/gateway.yaml", "gw_rate_limit")
    out = []
    for line in text.splitlines():
        for key, value in RAISED_LIMIT.items():
            if line.strip().startswith(f"{key}:"):
                line = line.split(f"{key}:")[0] + f"{key}: {value}"
        out.append(line)
    return "\n".join(out) + "\n"


def noop_wasm(count: int, configuration: str = "") -> list[dict[str, Any]]:
    """`count` proxy-wasm filters of the fixture (filters/noop), each its own
    VM like ours. Without configuration they are empty: the fixed cost of a
    Wasm filter per request on this Envoy; with a trace they replay our
    chain's host calls (TRACE)."""
    out = []
    for i in range(count):
        config: dict[str, Any] = {"name": f"noop_{i}", "root_id": f"noop_{i}", "vm_config": {
            "vm_id": f"noop_{i}", "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": str(NOOP_WASM)}}}, "failure_policy": "FAIL_CLOSED"}
        if configuration:
            # as ours: body callbacks run while the headers are held
            config["allow_on_headers_stop_iteration"] = True
            config["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                       "value": configuration}
        out.append({"name": f"bench.noop_{i}", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config}})
    return out


# The host calls of one proxied tools/call through the shipped one-module
# chain, in order with their sizes (written by
# filters/gateway/tests/host_call_trace.rs from the in-memory host).
TRACE = ROOT / "filters" / "noop" / "traces" / "tools_call.trace"


def replay(hold_only: bool = False) -> Callable[[dict[str, Any]], None]:
    """Patch: the fixture replaying TRACE ('mode hold': our callbacks and
    actions, the request held until its body ends, but no host call)."""
    def patch(cfg: dict[str, Any]) -> None:
        text = ("mode hold\n" if hold_only else "") + TRACE.read_text()
        only_envoy(noop_wasm(1, text))(cfg)
    return patch


def replay_with_sender(cfg: dict[str, Any]) -> None:
    """Patch: the shipped one-module config's audit sender service (its
    bootstrap extension, gateway.wasm on the main thread) kept, and the
    fixture replaying TRACE in place of the chain, handing the recorded
    audit event to that sender in frames of the shipped batch size."""
    to_one_module(cfg)
    hcm(cfg)["http_filters"] = [*noop_wasm(1, TRACE.read_text()), router()]


SCENARIOS: dict[str, dict[str, Any]] = {
    "bare": {"patch": only_envoy([])},
    "noop-wasm": {"patch": only_envoy(noop_wasm(1))},
    "4x-noop-wasm": {"patch": only_envoy(noop_wasm(4))},
    "hold-wasm": {"patch": replay(hold_only=True)},
    "replay-wasm": {"patch": replay(), "replay": True},
    "replay+sender": {"patch": replay_with_sender, "replay": True, "audit": True},
    "envoy-native": {"patch": only_envoy(native_filters(api_key=False))},
    "envoy-native+key": {"native_key": True},
    "audit": {"patch": keep_ours(("gw.audit",)), "audit": True},
    "identity": {"patch": keep_ours(("gw.identity",))},
    "audit+identity": {"patch": keep_ours(("gw.audit", "gw.identity")), "audit": True},
    "+tool-acl": {"patch": keep_ours(("gw.audit", "gw.identity", "gw.tool_acl")), "audit": True},
    "chain": {"patch": None, "audit": True, "chain": True},
    "chain-1-module": {"patch": None, "audit": True, "chain": True, "one_module": True},
    # one agent (the demo admin key) with every limit raised (RAISED_LIMIT),
    # whatever --agents says: issue 13's busy agent, to pair with
    # chain-1-module's many quiet ones in the same run
    # chain-1-module from --before-wasm-dir (e.g. gateway.wasm built from an
    # earlier commit), for a before/after pair in one interleaved run
    "chain-1-module-before": {"patch": None, "audit": True, "chain": True, "one_module": True, "before": True},
    "chain-1-module-busy": {"patch": None, "audit": True, "chain": True, "one_module": True, "busy": True},
}


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wrk(url: str, lua: Path, duration: float, threads: int, conns: int) -> dict[str, Any]:
    secs = max(1, round(duration))  # wrk takes whole seconds
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{secs}s", "--timeout", "5s", "-s", str(lua), url]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 60)
    for line in p.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON "):])
    raise RuntimeError(f"wrk gave no summary (rc={p.returncode}):\n{p.stdout}\n{p.stderr}")


def check_once(s: Stack) -> None:
    ctx = ssl.create_default_context(cafile=str(s.ca_path))
    req = urllib.request.Request(s.mcp_url, data=BODY.encode(), headers=HEADERS, method="POST")
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        body = r.read().decode(errors="replace")
        if r.status != 200 or EXPECT not in body:
            raise RuntimeError(f"pre-check: {r.status} {body[:300]}")


def wasm_stat(s: Stack, prefix: str) -> dict[str, str]:
    _, body = s.admin(f"/stats?filter={prefix}")
    return dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)


def callback_profile(stats: dict[str, str], requests: int) -> list[str]:
    """Self-timed callbacks (wasm built with gw-host/profile): µs per request and calls per request."""
    out = []
    for key in sorted(k for k in stats if k.endswith(".ns")):
        name = key[len("wasmcustom.gw.prof."):-len(".ns")]
        calls = int(stats.get(key[:-len(".ns")] + ".calls", 0))
        ns = int(stats[key])
        out.append(f"{name:36s} {ns / 1000 / max(1, requests):8.1f} µs/req {calls / max(1, requests):6.2f} calls/req")
    return out


def run_scenario(name: str, args: argparse.Namespace, run_root: Path, lua: Path) -> dict[str, Any]:
    spec = SCENARIOS[name]
    if spec.get("busy"):
        lua = lua.with_name("post-busy.lua")
    up_port, up_admin = free_port(), free_port()
    audit = spec.get("audit", False)
    use_collector = audit and args.audit_sink == "collector"
    extra: dict[str, Any] = {"mcp_upstream": up_port}
    if audit and not use_collector:
        extra["audit_collector"] = up_port  # the upstream Envoy answers 200 to any POST
    kw: dict[str, Any] = {
        "config": "envoy/gateway.yaml", "workers": 1, "run_dir": run_root / name,
        "backends": ("audit",) if use_collector else (), "extra_upstreams": extra,
        "envoy_log_level": args.log_level, "component_log_level": f"wasm:{args.log_level}",
        "patch": spec.get("patch"),
        "wasm_dir": args.before_wasm_dir if spec.get("before") else args.wasm_dir,
        # each scenario names its filters: never the harness's default deployment
        "deployment": "one" if spec.get("one_module") else "four",
    }
    agents = [] if spec.get("busy") else bench_agents(args.agents)
    if spec.get("native_key"):
        kw["patch"] = only_envoy(native_filters(api_key=True, agents=agents))
    kw["filter_configs"] = {}
    if agents and name not in ("bare", "noop-wasm", "4x-noop-wasm", "hold-wasm", "replay-wasm", "replay+sender",
                               "envoy-native"):
        kw["filter_configs"]["gw_identity"] = identity_with_agents(agents)
    if spec.get("chain") and not agents:
        kw["filter_configs"]["gw_rate_limit"] = raised_rate_limit()
    s = Stack(**kw)
    up_cfg = run_root / name / "upstream.yaml"
    up_cfg.parent.mkdir(parents=True, exist_ok=True)
    up_cfg.write_text(json.dumps(upstream_config(up_port, up_admin)))
    s.add_process("bench_upstream", [envoy_binary(), "-c", str(up_cfg), "--concurrency", str(args.upstream_workers),
                                     "--disable-hot-restart", "--log-level", "warn"],
                  ready_url=f"http://127.0.0.1:{up_admin}/ready")
    s.start()
    try:
        check_once(s)
        envoy = next(p for p in s.procs if p.name == "envoy")
        assert envoy.popen is not None
        pid = envoy.popen.pid
        if args.warmup > 0:
            wrk(s.mcp_url, lua, args.warmup, args.threads, args.connections)
        load_before = loadavg()
        t0 = cpu_ticks(pid)
        res = wrk(s.mcp_url, lua, args.duration, args.threads, args.connections)
        t1 = cpu_ticks(pid)
        s.assert_alive()
        st = wasm_stat(s, "^http.gateway.downstream_(cx|rq)_total$")
        res["cx"] = int(st.get("http.gateway.downstream_cx_total", 0))
        res["rq"] = int(st.get("http.gateway.downstream_rq_total", 0))
        tick = os.sysconf("SC_CLK_TCK")
        reqs = max(1, res["requests"])
        res["cpu_us"] = (t1 - t0) / tick * 1e6 / reqs
        res["cpu_util"] = (t1 - t0) / tick / (res["duration_us"] / 1e6)
        res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
        res["load"] = f"{load_before} -> {loadavg()}"
        res["errors"] = sum(res[k] for k in ("connect", "read", "write", "status", "timeout"))
        prof = wasm_stat(s, "^wasmcustom.gw.prof")
        if prof:
            res["profile"] = callback_profile(prof, res["rq"])
        if spec.get("replay"):
            # the fixture's last callback's counter: every request replayed the whole trace
            st = wasm_stat(s, "^wasmcustom.gw.audit.events$")
            res["replayed"] = int(st.get("wasmcustom.gw.audit.events", 0))
        if audit:
            time.sleep(0.5)
            st = wasm_stat(s, "^wasmcustom.gw.audit")
            res["audit"] = " ".join(f"{k.rsplit('.', 1)[1]}={v}" for k, v in sorted(st.items())
                                    if k.rsplit(".", 1)[1] in ("events_sent", "events_dropped", "buffered_events"))
        return res
    except Exception:
        print(f"--- {name}: envoy log tail\n{tail(s.log_path('envoy'), 30)}", file=sys.stderr)
        raise
    finally:
        s.stop()


def machine() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ver = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True).stdout.strip().split("version: ")[-1]
    wrkv = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[:1]
    return (f"{time.strftime('%Y-%m-%d %H:%M %Z')}  {platform.node()}  {os.cpu_count()} CPUs ({cpu}), "
            f"Linux {platform.release()}\nEnvoy {ver}\n{wrkv[0] if wrkv else 'wrk ?'}")


def print_round(results: dict[str, dict[str, Any]]) -> None:
    base = results.get("bare", {}).get("cpu_us")
    hdr = f"{'scenario':18s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'CPU µs/req':>10s} {'Δ vs bare':>9s} {'gw CPU':>6s} {'errors':>6s}"
    print(hdr)
    print("-" * len(hdr))
    for name, r in results.items():
        delta = f"{r['cpu_us'] - base:+9.1f}" if base is not None else f"{'-':>9s}"
        print(f"{name:18s} {r['rps']:8.0f} {r['p50_us'] / 1000:7.2f} {r['p99_us'] / 1000:7.2f} "
              f"{r['cpu_us']:10.1f} {delta} {r['cpu_util'] * 100:5.0f}% {r['errors']:6d}")
    print()
    for name, r in results.items():
        extra = f"  audit: {r['audit']}" if "audit" in r else ""
        if "replayed" in r:
            extra += f"  traces replayed: {r['replayed']}"
        print(f"{name:18s} load avg {r['load']}; downstream connections {r['cx']} for {r['rq']} requests "
              f"(incl. warm-up){extra}")
    for name, r in results.items():
        if r.get("profile"):
            print(f"\n{name}: time inside the filters' callbacks (self-timed, VM entry not included)")
            print("\n".join("  " + line for line in r["profile"]))
    if base is not None and "chain" in results:
        d = results["chain"]["cpu_us"] - base
        print(f"\nchain - bare = {d:+.1f} µs CPU/request (budget: ~25 µs)")
    if base is not None and "chain-1-module" in results:
        d = results["chain-1-module"]["cpu_us"] - base
        print(f"chain-1-module - bare = {d:+.1f} µs CPU/request (budget: ~25 µs)")
    print(flush=True)


def print_medians(rounds: list[dict[str, dict[str, Any]]], names: list[str]) -> None:
    """Per scenario: the median over rounds of req/s and of CPU over the
    same round's bare (paired: each round ran every scenario back to back)."""
    def median(xs: list[float]) -> float:
        xs = sorted(xs)
        n = len(xs)
        return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

    print(f"medians over {len(rounds)} interleaved rounds (Δ: paired with the same round's bare):")
    hdr = f"{'scenario':18s} {'req/s':>8s} {'CPU µs/req':>10s} {'Δ vs bare':>9s}  per-round Δ"
    print(hdr)
    print("-" * len(hdr))
    for name in names:
        rps = median([r[name]["rps"] for r in rounds])
        cpu = median([r[name]["cpu_us"] for r in rounds])
        if all("bare" in r for r in rounds):
            ds = [r[name]["cpu_us"] - r["bare"]["cpu_us"] for r in rounds]
            d = f"{median(ds):+9.1f}  " + " ".join(f"{x:+.1f}" for x in ds)
        else:
            d = f"{'-':>9s}"
        print(f"{name:18s} {rps:8.0f} {cpu:10.1f} {d}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load first (0: none)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--upstream-workers", type=int, default=1)
    ap.add_argument("--audit-sink", choices=("collector", "upstream"), default="collector",
                    help="where audit batches go: examples/audit_collector (default) or the upstream Envoy")
    ap.add_argument("--log-level", default="warn", help="gateway Envoy log level (access log is on regardless)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the scenarios this many times, interleaved (bare, A, B, bare, A, B, ...), "
                         "and print medians of the paired differences")
    ap.add_argument("--only", nargs="*", choices=list(SCENARIOS), default=None)
    ap.add_argument("--agents", type=int, default=2000,
                    help="distinct agents (static API keys, round robin per request) so that the shipped per-agent "
                         "rate limits apply as in production; 0: one agent and raised limits in 'chain'")
    ap.add_argument("--wasm-dir", type=Path, default=None,
                    help="where the filters' .wasm files are (default dist/wasm; `just bench-profile` uses dist/wasm-profile)")
    ap.add_argument("--before-wasm-dir", type=Path, default=None,
                    help="the .wasm files of scenario chain-1-module-before (a build of an earlier commit)")
    args = ap.parse_args()
    if "chain-1-module-before" in (args.only or []) and not args.before_wasm_dir:
        ap.error("chain-1-module-before needs --before-wasm-dir")

    if not shutil.which("wrk"):
        print("wrk not found: apt-get install -y wrk (or re-run ./dev, which installs it)", file=sys.stderr)
        return 2
    run_root = ROOT / ".run" / "bench-chain"
    run_root.mkdir(parents=True, exist_ok=True)
    lua = run_root / "post.lua"
    lua.write_text(WRK_LUA % {"path": "/mcp", "body": BODY, "headers": "\n".join(
        f'wrk.headers["{k}"] = "{v}"' for k, v in HEADERS.items()),
        "rotate": rotate_lua("x-agent-api-key", [key for _, key in bench_agents(args.agents)])})
    (run_root / "post-busy.lua").write_text(WRK_LUA % {"path": "/mcp", "body": BODY, "headers": "\n".join(
        f'wrk.headers["{k}"] = "{v}"' for k, v in HEADERS.items()), "rotate": ""})

    # chain-1-module-before only when there is an earlier build to run
    names = args.only or [n for n in SCENARIOS if n != "chain-1-module-before" or args.before_wasm_dir]
    print(machine())
    print(f"load average at start: {loadavg()}")
    print(f"gateway Envoy --concurrency 1, log level {args.log_level} (access log to file on); upstream Envoy "
          f"--concurrency {args.upstream_workers} (buffer + direct_response)")
    print(f"wrk -t{args.threads} -c{args.connections}, HTTPS/1.1 keep-alive, POST /mcp tools/call read_config "
          f"({len(BODY)}-byte body), {args.warmup:g} s warm-up + {args.duration:g} s measured per scenario")
    print(f"audit events to: {'examples/audit_collector/collector.py' if args.audit_sink == 'collector' else 'the upstream Envoy (200 to any POST)'}")
    if args.agents:
        print(f"{args.agents} agents (static keys added to the identity config, sentinel-bench-*), one per request "
              "round robin: 'chain' = envoy/gateway.yaml with the shipped rate limits\n", flush=True)
    else:
        print("one agent; 'chain' = envoy/gateway.yaml as shipped except every rate limit raised to "
              + ", ".join(f"{k} {v}" for k, v in RAISED_LIMIT.items()) + " (no request may be limited)\n", flush=True)

    rounds: list[dict[str, dict[str, Any]]] = []
    for k in range(args.rounds):
        results: dict[str, dict[str, Any]] = {}
        for name in names:
            print(f"round {k + 1}/{args.rounds}: running {name} ...", file=sys.stderr, flush=True)
            results[name] = run_scenario(name, args, run_root, lua)
        rounds.append(results)
        if args.rounds > 1:
            print(f"round {k + 1}:")
        print_round(results)
    if args.rounds > 1:
        print_medians(rounds, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
