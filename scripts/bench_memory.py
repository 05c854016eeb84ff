#!/usr/bin/env python3
"""`./dev bench-memory`: where the gateway Envoy's memory goes (issue 13).

For each gateway (bare Envoy, one empty Wasm filter, our one module, our four
modules), one fresh Envoy with `--workers` workers (2 by default), the shipped
config with 2,000 static agents, plaintext: RSS idle after start, then after
a short load (wrk, 32 connections, agents in rotation), split by mapping from
/proc/<pid>/smaps:

- `allocated`: Envoy's live heap (tcmalloc `allocated`, admin `/memory`),
  V8's compile-time zones included while they live;
- `tcmalloc`: what tcmalloc holds from the OS (`heap_size` −
  `pageheap_unmapped`): the live heap plus freed pages it keeps;
- `jit`: executable anonymous mappings (V8's compiled Wasm code);
- `binary`: the envoy executable's resident pages (file-backed: V8's own code
  is paged in once any Wasm VM exists);
- `anon`: all anonymous read/write mappings (tcmalloc's heap, each VM's Wasm
  linear memory, thread stacks; `smaps-idle.txt` in the run directory has
  the mappings one by one).

Numbers are printed, never asserted (RSS is not CPU-sensitive, but it
moves by a few MiB from run to run). `--wasm-dir` points at another build
(e.g. the modules of a previous commit) for before/after comparisons.

    python scripts/bench_memory.py [--wasm-dir DIR] [--rounds 1] [--load-seconds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import bench_chain as bc  # noqa: E402
from bench_report import add_bench_upstream, check, compose, plaintext, stack_kwargs, write_lua  # noqa: E402
from gwstack import ROOT, WASM_DIR, Stack, free_port  # noqa: E402

GATEWAYS = ("bare", "noop-wasm", "one-module", "four-modules")
MiB = 2**20


def smaps_split(pid: int) -> dict[str, int]:
    """RSS bytes per kind of mapping (see the module docstring)."""
    out = {"jit": 0, "binary": 0, "anon": 0, "other": 0}
    kind = "other"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            perms, path = head[1], (head[5] if len(head) > 5 else "")
            size = hi - lo
            if path.endswith("/envoy"):
                kind = "binary"
            elif not path and "x" in perms:
                kind = "jit"
            elif not path and size > 0:
                kind = "anon"
            else:
                kind = "other"
        elif head[0] == "Rss:":
            out[kind] += int(head[1]) * 1024
    return out


def memory_stats(admin_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{admin_url}/memory", timeout=10) as r:
        doc = json.loads(r.read())
    return {k: int(v) for k, v in doc.items() if str(v).isdigit()}


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def snapshot(pid: int, admin_url: str) -> dict[str, Any]:
    snap: dict[str, Any] = {"rss": rss(pid), **smaps_split(pid)}
    mem = memory_stats(admin_url)
    snap["allocated"] = mem.get("allocated", 0)
    # tcmalloc's resident heap: what it took from the OS and did not give back
    # (freed pages it keeps count here, not in `allocated`).
    snap["tcmalloc"] = mem.get("heap_size", 0) - mem.get("pageheap_unmapped", 0)
    return snap


def release_free_memory(mib: int) -> Any:
    """Patch: tcmalloc gives freed pages back to the OS in the background
    (bootstrap `memory_allocator_manager`, `mib` MiB per second)."""
    def patch(cfg: dict[str, Any]) -> None:
        cfg["memory_allocator_manager"] = {"bytes_to_release": str(mib * MiB),
                                           "memory_release_interval": "1s"}
    return patch


def run(gw: str, args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    agents = bc.bench_agents(args.agents)
    up_port, up_admin = free_port(), free_port()
    extra: dict[str, Any] = {"mcp_upstream": up_port}
    kw = stack_kwargs(args, run_dir, extra)
    if gw == "bare":
        kw["patch"] = compose(bc.only_envoy([]), plaintext)
    elif gw == "noop-wasm":
        kw["patch"] = compose(bc.only_envoy(bc.noop_wasm(1)), plaintext)
    else:
        extra["audit_collector"] = up_port
        kw["filter_configs"]["gw_identity"] = bc.identity_with_agents(agents)
        kw["patch"] = plaintext
        # each run names its filters: never the harness's default deployment
        kw["deployment"] = "one" if gw == "one-module" else "four"
    if args.release_free_memory:
        kw["patch"] = compose(kw["patch"], release_free_memory(args.release_free_memory))
    s = Stack(**kw)
    add_bench_upstream(s, run_dir, up_port, up_admin)
    s.start()
    try:
        envoy = next(p for p in s.procs if p.name == "envoy")
        assert envoy.popen is not None
        pid = envoy.popen.pid
        ours = gw in ("one-module", "four-modules")
        body = bc.BODY
        url = f"http://127.0.0.1:{s.gateway_port}/mcp"
        if ours:
            check(f"http://localhost:{s.gateway_port}/mcp", body, s, agents)
        time.sleep(args.settle)
        idle = snapshot(pid, s.admin_url)
        (run_dir / "smaps-idle.txt").write_text(Path(f"/proc/{pid}/smaps").read_text())
        lua = write_lua(run_dir / "load.lua", body, dict(bc.HEADERS),
                        bc.rotate_lua("x-agent-api-key", [k for _, k in agents]) if ours else "")
        bc.wrk(url, lua, args.load_seconds, 1, 32)
        time.sleep(args.settle)
        loaded = snapshot(pid, s.admin_url)
        s.assert_alive()
        return {"idle": idle, "loaded": loaded}
    finally:
        s.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wasm-dir", type=Path, default=None, help=f"modules (default {WASM_DIR})")
    ap.add_argument("--gateways", nargs="*", choices=GATEWAYS, default=list(GATEWAYS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--load-seconds", type=int, default=3)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds idle before each snapshot")
    ap.add_argument("--release-free-memory", type=int, default=0, metavar="MIB",
                    help="bootstrap memory_allocator_manager: release this many MiB/s of freed heap")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = ap.parse_args()
    run_root = ROOT / ".run" / "bench-memory"
    results: dict[str, list[dict[str, Any]]] = {g: [] for g in args.gateways}
    for r in range(args.rounds):
        for gw in args.gateways:
            results[gw].append(run(gw, args, run_root / f"{gw}-{r}"))
    wasm_dir = args.wasm_dir or WASM_DIR
    sizes = {p.name: p.stat().st_size for p in sorted(wasm_dir.glob("*.wasm"))}
    print(f"modules in {wasm_dir}: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items()))
    print(f"{args.workers} workers, {args.agents} agents, median of {args.rounds} round(s), MiB")
    cols = ("rss", "allocated", "tcmalloc", "jit", "binary", "anon")
    print(f"| gateway | when | {' | '.join(cols)} |")
    print("|---|---|" + "---:|" * len(cols))
    for gw, runs in results.items():
        for when in ("idle", "loaded"):
            vals = [statistics.median(r[when][c] for r in runs) / MiB for c in cols]
            print(f"| {gw} | {when} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    if args.json:
        args.json.write_text(json.dumps({"sizes": sizes, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
