#!/usr/bin/env python3
"""Latency of gateway traffic with the audit filter, while the collector is
healthy, slow or stalled. Prints numbers; asserts nothing.

Scenarios (each on its own fresh stack: envoy/gateway.yaml, the example
audit collector, free ports; the MCP upstream is a second stock Envoy that
reads the whole request body (buffer filter) and answers a fixed tools/call
result, so the numbers are the gateway's, not a Python server's):

  no-audit         gw.audit and its sender removed from the config (baseline)
  collector-ok     audit on, collector answers at once
  collector-slow   audit on, collector answers every batch after 2 s
  collector-stall  audit on, collector holds every batch unanswered

For each: N sequential MCP `tools/call` requests over one keep-alive TLS
connection (httpx), then the same with C concurrent clients; p50/p90/p99/max
latency in ms, and what the sender reports (sent, dropped, buffered).

  python scripts/bench_audit.py [--requests 400] [--concurrency 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import ssl
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gwstack import ROOT, Stack, envoy_binary, free_port  # noqa: E402

BODY = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "read_config", "arguments": {"key": "region"}}}
# the identity filter's demo key (docs/identity.md)
HEADERS = {"accept": "application/json, text/event-stream", "x-agent-api-key": "gw-demo-admin-1"}


RESULT = '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"eu-west-1"}],"isError":false}}'


def upstream_config(port: int, admin: int) -> dict[str, Any]:
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
                    "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                        "match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": RESULT}},
                        "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"},
                                                     "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
                    }]}]},
                    "http_filters": [
                        # read the whole body before answering (see docs: a direct_response
                        # without it answers early and the numbers measure TCP set-up)
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


def drop_audit(cfg: dict[str, Any]) -> None:
    cfg.pop("bootstrap_extensions", None)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "gw.audit"]


def percentiles(samples: list[float]) -> str:
    s = sorted(samples)
    q = statistics.quantiles(s, n=100)
    return f"p50 {q[49]:6.2f}  p90 {q[89]:6.2f}  p99 {q[98]:6.2f}  max {s[-1]:6.2f} ms"


def one_client(base: str, ctx: ssl.SSLContext, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=base, verify=ctx, timeout=30) as c:
        c.post("/mcp", json=BODY, headers=HEADERS)  # warm the connection
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.post("/mcp", json=BODY, headers=HEADERS)
            out.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
    return out


def audit_stats(s: Stack) -> str:
    _, body = s.admin("/stats?filter=^wasmcustom.gw.audit")
    keep = ("events_sent", "events_dropped", "buffered_events", "batches_failed")
    vals = {}
    for line in body.splitlines():
        k, _, v = line.partition(": ")
        k = k.removeprefix("wasmcustom.gw.audit.")
        if k in keep:
            vals[k] = v
    return " ".join(f"{k}={vals.get(k, '-')}" for k in keep)


def scenario(name: str, args: argparse.Namespace, run_root: Path) -> None:
    up_port, up_admin = free_port(), free_port()
    kw: dict[str, Any] = {"config": "envoy/gateway.yaml", "workers": args.workers,
                          "backends": ("audit",), "extra_upstreams": {"mcp_upstream": up_port},
                          "run_dir": run_root / name}
    if name == "no-audit":
        kw["patch"] = drop_audit
    else:
        kw["filter_configs"] = {"gw_audit_sender": "role: sender\nlogDestination:\n  cluster: audit_collector\n"
                                                   "  batchSize: 50\n  flushIntervalMs: 200\n  timeoutMs: 60000\n"
                                                   "  maxBufferedEvents: 2000\n"}
    s = Stack(**kw)
    up_cfg = run_root / name / "upstream.yaml"
    up_cfg.parent.mkdir(parents=True, exist_ok=True)
    up_cfg.write_text(json.dumps(upstream_config(up_port, up_admin)))
    s.add_process("bench_upstream", [envoy_binary(), "-c", str(up_cfg), "--concurrency", "1",
                                     "--disable-hot-restart", "--log-level", "warn"],
                  ready_url=f"http://127.0.0.1:{up_admin}/ready")
    s.start()
    try:
        collector = s.upstream_url("audit_collector")
        if name == "collector-slow":
            httpx.post(collector + "/admin/delay", json={"ms": 2000})
        if name == "collector-stall":
            httpx.post(collector + "/admin/block", json={"block": True})
        ctx = ssl.create_default_context(cafile=str(s.ca_path))
        seq = one_client(s.base_url, ctx, args.requests)
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            per = max(1, args.requests // args.concurrency)
            t0 = time.perf_counter()
            parts = list(pool.map(lambda _: one_client(s.base_url, ctx, per), range(args.concurrency)))
            elapsed = time.perf_counter() - t0
        conc = [x for p in parts for x in p]
        print(f"{name:16s} sequential   {percentiles(seq)}")
        print(f"{'':16s} {args.concurrency:2d} clients   {percentiles(conc)}  ({len(conc) / elapsed:6.0f} req/s)")
        print(f"{'':16s} sender: {audit_stats(s)}")
        if name == "collector-stall":
            httpx.post(collector + "/admin/block", json={"block": False})
    finally:
        s.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    run_root = ROOT / ".run" / "bench-audit"
    names = args.only or ["no-audit", "collector-ok", "collector-slow", "collector-stall"]
    print(f"{args.requests} MCP tools/call per scenario, Envoy --concurrency {args.workers}; latency seen by the client")
    for name in names:
        scenario(name, args, run_root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
