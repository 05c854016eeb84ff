"""The official MCP conformance suite against the reference server, direct
and through the shipped gateway, compared check by check (`./dev
mcp-conformance`; not part of `./dev test`).

- server: `@modelcontextprotocol/server-everything` (Streamable HTTP),
  client: `@modelcontextprotocol/conformance` `server` suite (the active
  scenarios), both pinned in scripts/mcp_conformance/package.json (installed
  by ./dev). 0.1.13 is the newest suite that runs on the Node 20 of the dev
  image (later ones import `fs.globSync`, Node >= 22).
- gateway: envoy/gateway.yaml as shipped (all four filters, TLS), its
  `mcp_upstream` pointed at the reference server. The suite's client sends
  no credentials, so an Envoy header-mutation filter placed first adds the
  demo API key of `admin-1` (x-agent-api-key: gw-demo-admin-1) to every
  request: the shipped identity filter still verifies it, and the ACL, the
  rate limit and audit judge the requests as they would any admin client.
- result: every check's status direct and through the gateway; a
  difference not listed in BY_DESIGN (the by-design list in docs/mcp.md)
  makes the exit status 1. The summary goes to stdout and to
  .run/mcp-conformance/summary.md, the suite's raw results beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from gwstack import Stack, free_port, walk_dicts  # noqa: E402

NODE_DIR = ROOT / "scripts" / "mcp_conformance"
BIN = NODE_DIR / "node_modules" / ".bin"
SERVER = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
DEMO_KEY = "gw-demo-admin-1"

# (scenario, check id) -> why the gateway's answer differs on purpose. Kept
# in step with docs/mcp.md ("Conformance through the gateway").
BY_DESIGN: dict[tuple[str, str], str] = {
    ("dns-rebinding-protection", "localhost-host-rebinding-rejected"):
        "TLS: the suite's client sends the bad Host as the TLS server name; the gateway's certificate does not "
        "name it, so the request is refused before HTTP (the reference server alone answers 200: fails either way)",
}


# The gateway's own refusals, by design whichever check meets them (a run
# with a restricted agent, --api-key gw-demo-sentinel-1).
BY_DESIGN_REASONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"MCP error -32001: Agent '[^']*' is not authorized"), "tool ACL: the agent may not call this tool"),
    (re.compile(r"MCP error -32029"), "rate limit"),
]


def by_design(scenario: str, check: str, reason: str) -> str:
    if (scenario, check) in BY_DESIGN:
        return BY_DESIGN[(scenario, check)]
    return next((why for pattern, why in BY_DESIGN_REASONS if pattern.search(reason)), "")


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def run_suite(url: str, out: Path, env: dict[str, str] | None = None) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Run the suite; checks by (scenario, check id, occurrence)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    log = out / "suite.log"
    with log.open("w") as f:
        subprocess.run([str(BIN / "conformance"), "server", "--url", url, "-o", str(out)], cwd=NODE_DIR,
                       env={**os.environ, **(env or {})}, stdout=f, stderr=subprocess.STDOUT, timeout=900)
    checks: dict[tuple[str, str, int], dict[str, Any]] = {}
    for d in sorted(out.iterdir()):
        m = re.match(r"server-(.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$", d.name)
        if not m or not (d / "checks.json").exists():
            continue
        seen: dict[str, int] = {}
        for c in json.loads((d / "checks.json").read_text()):
            n = seen.get(c["id"], 0)
            seen[c["id"]] = n + 1
            checks[(m.group(1), c["id"], n)] = c
    return checks


def add_demo_key(cfg: dict[str, Any], key: str = DEMO_KEY) -> None:
    """First HTTP filter: a demo API key on every request (the suite's
    client cannot send one)."""

    def patch(node: dict[str, Any]) -> None:
        filters = node.get("http_filters")
        if isinstance(filters, list) and any(f.get("name") == "gw.identity" for f in filters):
            filters.insert(0, {
                "name": "envoy.filters.http.header_mutation",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                    "mutations": {"request_mutations": [{"append": {
                        "header": {"key": "x-agent-api-key", "value": key},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}]},
                },
            })

    walk_dicts(cfg, patch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".run" / "mcp-conformance")
    parser.add_argument("--api-key", default=DEMO_KEY,
                        help="demo key the gateway sees (gw-demo-sentinel-1 shows the ACL's effect; "
                             "BY_DESIGN describes the admin run)")
    args = parser.parse_args()
    if not (BIN / "conformance").exists() or not SERVER.exists():
        print(f"node dependencies missing: run ./dev (npm ci in {NODE_DIR})", file=sys.stderr)
        return 2
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server_log = (out / "server-everything.log").open("w")
    server = subprocess.Popen(["node", str(SERVER), "streamableHttp"], cwd=NODE_DIR, env={**os.environ, "PORT": str(port)},
                              stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
    stack = None
    try:
        wait_port(port)
        print(f"reference server on 127.0.0.1:{port}; the suite direct ...", flush=True)
        direct = run_suite(f"http://127.0.0.1:{port}/mcp", out / "direct")

        def patch(cfg: dict[str, Any]) -> None:
            add_demo_key(cfg, args.api_key)
            for cluster in cfg["static_resources"]["clusters"]:
                if cluster["name"] == "mcp_upstream":
                    cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [{"endpoint": {"address": {
                        "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]

        stack = Stack(run_dir=out / "stack", config="envoy/gateway.yaml", patch=patch, backends=("audit",))
        stack.start()
        print(f"gateway on {stack.base_url}; the suite through it ...", flush=True)
        gateway = run_suite(stack.mcp_url, out / "gateway", env={"NODE_EXTRA_CA_CERTS": str(stack.ca_path)})
    finally:
        if stack is not None:
            stack.stop()
        os.killpg(server.pid, 15)
        server.wait(timeout=10)
        server_log.close()
    return report(direct, gateway, out)


def report(direct: dict[tuple[str, str, int], dict[str, Any]], gateway: dict[tuple[str, str, int], dict[str, Any]],
           out: Path) -> int:
    def count(checks: dict[Any, dict[str, Any]]) -> dict[str, int]:
        c: dict[str, int] = {}
        for v in checks.values():
            c[v["status"]] = c.get(v["status"], 0) + 1
        return c

    lines = ["# MCP conformance: direct vs through the gateway", "",
             f"checks direct: {len(direct)} {count(direct)}", f"checks through the gateway: {len(gateway)} {count(gateway)}", ""]
    same = 0
    differences: list[tuple[str, str, str, str, str]] = []
    for key in sorted(set(direct) | set(gateway)):
        a = direct.get(key, {}).get("status", "missing")
        b = gateway.get(key, {}).get("status", "missing")
        reason_a = direct.get(key, {}).get("errorMessage") or ""
        reason_b = gateway.get(key, {}).get("errorMessage") or ""
        # A check failing both ways for another reason is a difference too
        # (the gateway may fail it earlier, or for its own reason).
        if a == b and reason_a == reason_b:
            same += 1
            continue
        scenario, check, _ = key
        why = by_design(scenario, check, reason_b)
        status = f"{a} -> {b}" if a != b else f"{a} (other reason)"
        differences.append((scenario, check, status, why, reason_b[:160]))
    lines.append(f"same status and reason: {same}; different: {len(differences)} "
                 f"({sum(1 for d in differences if d[3])} by design)")
    if differences:
        lines += ["", "| scenario | check | direct -> gateway | by design | gateway's error |", "|---|---|---|---|---|"]
        lines += [f"| {s} | {c} | {st} | {w or 'NO'} | {d.replace('|', '/')} |" for s, c, st, w, d in differences]
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    print(text)
    return 0 if all(d[3] for d in differences) else 1


if __name__ == "__main__":
    sys.exit(main())
