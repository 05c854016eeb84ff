#!/usr/bin/env python3
"""Memory of the rate-limit filter's windows inside a real Envoy, for N
distinct agents (default 100,000). Prints numbers; asserts nothing.

    .venv/bin/python scripts/bench_rate_limit_memory.py [--agents 100000] [--per-agent 1] [--workers 2]

It runs stock Envoy (free ports, plain HTTP on loopback) with only the
rate-limit Wasm filter, the recipe's tools/call limit (60/min + burst 10) and
a `direct_response` route (no upstream to slow it down). Agent identities are
put in filter state by Envoy's native set_filter_state filter from a
benchmark header, as in the tests. Each agent sends `--per-agent` bodiless
`GET /mcp/tools/call` requests (the recipe path names the operation), over
pipelined HTTP/1.1 connections. Envoy's `/memory` (tcmalloc `allocated`) and
the process RSS are read before and after; the difference is the windows
(shared data) plus what the Wasm VMs grew.

The pure-host counterpart, with full windows (70 or 120 admissions kept per
agent): `cargo run --release -p gw-core --example rate_limit_memory`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

import gwstack as stack_mod
from gwstack.support import identity_from_header

ROOT = Path(__file__).resolve().parent.parent

LIMITS = """
limits:
  - path: /mcp/tools/call
    keySelector: "#[attributes.headers['x-verified-agent-id']]"
    maxRequests: 60
    windowSeconds: 60
    burstAllowance: 10
"""


def envoy_config(port: int, admin: int, wasm: Path) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "bench",
            "enable_reuse_port": False,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "connection_balance_config": {"exact_balance": {}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "bench",
                    "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
                    "http_filters": [
                        identity_from_header("x-bench-identity", name="identity_from_bench_header"),
                        {"name": "gw.rate_limit", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                            "config": {
                                "name": "gw_rate_limit", "root_id": "gw_rate_limit",
                                "vm_config": {"vm_id": "gw_rate_limit", "runtime": "envoy.wasm.runtime.v8",
                                              "code": {"local": {"filename": str(wasm)}}},
                                "failure_policy": "FAIL_CLOSED",
                                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                                  "value": LIMITS}}}},
                        {"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                    ],
                }}]}],
        }]},
    }


def request(agent: int) -> bytes:
    ident = json.dumps({"agentId": f"bench-agent-{agent:06d}"})
    return f"GET /mcp/tools/call HTTP/1.1\r\nhost: bench\r\nx-bench-identity: {ident}\r\n\r\n".encode()


async def drive(port: int, agents: list[int], pipeline: int) -> dict[int, int]:
    """Send one request per entry of `agents` on one connection, `pipeline` at a time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    codes: dict[int, int] = {}
    buf = b""
    for start in range(0, len(agents), pipeline):
        batch = agents[start:start + pipeline]
        writer.write(b"".join(request(a) for a in batch))
        await writer.drain()
        done = 0
        while done < len(batch):
            while b"\r\n\r\n" not in buf:
                chunk = await reader.read(65536)
                if not chunk:
                    raise RuntimeError("connection closed")
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            code = int(lines[0].split()[1])
            length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                           if line.lower().startswith("content-length:")), 0)
            while len(buf) < length:
                buf += await reader.read(65536)
            buf = buf[length:]
            codes[code] = codes.get(code, 0) + 1
            done += 1
    writer.close()
    return codes


def memory(admin_url: str, pid: int) -> tuple[int, int]:
    import httpx

    allocated = int(json.loads(httpx.get(f"{admin_url}/memory", timeout=10).text)["allocated"])
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return allocated, rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=100_000)
    ap.add_argument("--per-agent", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--pipeline", type=int, default=1,
                    help="requests in flight per connection (Envoy closes pipelined HTTP/1.1 connections: keep 1)")
    args = ap.parse_args()

    wasm = stack_mod.WASM_DIR / "rate_limit.wasm"
    if not wasm.exists():
        print("build first: ./dev build", file=sys.stderr)
        return 1
    run = Path(tempfile.mkdtemp(prefix="bench-rl-", dir=ROOT / ".run" if (ROOT / ".run").exists() else None))
    port, admin = stack_mod.free_port(), stack_mod.free_port()
    cfg_path = run / "envoy.yaml"
    cfg_path.write_text(yaml.safe_dump(envoy_config(port, admin, wasm), sort_keys=False))
    envoy = stack_mod.Proc("envoy", [stack_mod.envoy_binary(), "-c", str(cfg_path), "--concurrency", str(args.workers),
                                     "--disable-hot-restart", "--log-level", "warn"], run / "envoy.log",
                           ready=lambda: stack_mod.http_ok(f"http://127.0.0.1:{admin}/ready"))
    envoy.start()
    try:
        deadline = time.monotonic() + 60
        while not (envoy.ready and envoy.ready()):
            if not envoy.alive() or time.monotonic() > deadline:
                print(stack_mod.tail(envoy.log), file=sys.stderr)
                return 1
            time.sleep(0.1)
        admin_url = f"http://127.0.0.1:{admin}"
        assert envoy.popen is not None
        time.sleep(1)
        base_alloc, base_rss = memory(admin_url, envoy.popen.pid)

        work = [a for _ in range(args.per_agent) for a in range(args.agents)]
        shards = [work[i::args.connections] for i in range(args.connections)]
        t0 = time.monotonic()

        async def all_shards() -> list[dict[int, int]]:
            return await asyncio.gather(*(drive(port, s, args.pipeline) for s in shards))

        results = asyncio.run(all_shards())
        elapsed = time.monotonic() - t0
        codes: dict[int, int] = {}
        for r in results:
            for k, v in r.items():
                codes[k] = codes.get(k, 0) + v
        time.sleep(1)
        alloc, rss = memory(admin_url, envoy.popen.pid)
        d_alloc, d_rss = alloc - base_alloc, rss - base_rss
        n = args.agents
        print(f"rate-limit windows in Envoy: {n} agents x {args.per_agent} request(s), {args.workers} workers")
        print(f"  requests: {len(work)} in {elapsed:.1f} s ({len(work) / elapsed:.0f} req/s), statuses {codes}")
        print(f"  Envoy allocated (tcmalloc): {base_alloc / 2**20:.1f} MiB -> {alloc / 2**20:.1f} MiB "
              f"(+{d_alloc / 2**20:.1f} MiB, {d_alloc / n:.0f} B/agent)")
        print(f"  Envoy RSS:                  {base_rss / 2**20:.1f} MiB -> {rss / 2**20:.1f} MiB "
              f"(+{d_rss / 2**20:.1f} MiB, {d_rss / n:.0f} B/agent)")
        print(f"  encoded payload (host):     {(34 + 4 * args.per_agent) * n / 2**20:.1f} MiB "
              f"({34 + 4 * args.per_agent} B/agent)")
        return 0
    finally:
        envoy.stop()
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
