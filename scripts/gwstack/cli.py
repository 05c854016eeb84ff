"""The `scripts/stack.py` CLI: demo, render, validate, split, certs, envoy-path."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import yaml

from .certs import generate_certs
from .layout import DEFAULT_PORTS, ENVOY_DIR, ONE_MODULE, PYTHON, ROOT
from .render import render_config, write_config
from .split import split_files
from .stack import Stack
from .util import envoy_binary
from .yamltree import load_config


def validate(configs: Iterable[str | Path], run_dir: Path | None = None) -> list[tuple[Path, int, str]]:
    """Render each config (free ports, temp certs) and run `envoy --mode validate`."""
    run_dir = Path(run_dir or ROOT / ".run" / "validate")
    certs = generate_certs(run_dir / "certs")
    results = []
    for c in configs:
        c = Path(c)
        cfg = render_config(c, certs=certs, deployment="as-is")  # each file as written
        out = write_config(cfg, run_dir / c.name)
        proc = subprocess.run(
            [envoy_binary(), "--mode", "validate", "-c", str(out), "--disable-hot-restart", "--log-level", "warn"],
            capture_output=True, text=True, timeout=120,
        )
        results.append((c, proc.returncode, proc.stdout + proc.stderr))
    return results


def demo_identity_services(stack: Stack) -> str:
    """Run the example API key validation service and, when installed, the
    OAuth server behind the identity filter's clusters. The demo does not need
    them (static demo keys); they make service keys and bearer tokens work."""
    clusters = {c["name"] for c in load_config(stack.config)["static_resources"]["clusters"]}
    lines = []
    if "identity_service" in clusters:
        port = stack._pick("identity_service")
        stack.extra_upstreams["identity_service"] = port
        stack.add_process("identity_service", [PYTHON, "examples/identity_service/service.py", "--port", str(port)],
                          ready_url=f"http://127.0.0.1:{port}/healthz")
        lines.append(f"  identity service on :{port}: service keys such as svc-key-admin-7 work too")
    node = shutil.which("node")
    if "oauth_server" in clusters and node and (ROOT / "examples/oauth_server/node_modules/oidc-provider").is_dir():
        port = stack._pick("oauth_server")
        stack.extra_upstreams["oauth_server"] = port
        stack.add_process("oauth_server", [node, "examples/oauth_server/server.js", "--port", str(port)],
                          ready_url=f"http://127.0.0.1:{port}/healthz")
        lines.append(f"  OAuth server on :{port}: TOKEN=$(curl -s -u admin-oauth:admin-secret -d grant_type=client_credentials \\\n"
                     f"       -d 'scope=mcp:tools:invoke a2a:tasks:send' http://127.0.0.1:{port}/oauth/token | jq -r .access_token)\n"
                     "  then send -H \"authorization: Bearer $TOKEN\" instead of the API key")
    return "\n".join(lines)


def _walkthrough_command(stack: Stack) -> str:
    """`./dev walkthrough`, with the demo's ports when they are not its defaults."""
    args = []
    if stack.ports["gateway"] != DEFAULT_PORTS["gateway"]:
        args.append(f"--url {stack.base_url}")
    for cluster, flag in (("oauth_server", "--oauth-url"), ("audit_collector", "--collector-url")):
        if cluster in stack.ports and stack.ports[cluster] != DEFAULT_PORTS[cluster]:
            args.append(f"{flag} {stack.upstream_url(cluster)}")
    return " ".join(["./dev walkthrough", *args])


def _demo(args: argparse.Namespace) -> int:
    stack = Stack(config=args.config, workers=args.workers, prefer_defaults=True,
                  run_dir=ROOT / ".run" / "demo")
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    identity_lines = demo_identity_services(stack)
    stack.start()
    d = stack.describe()
    ca = os.path.relpath(d["ca"], os.getcwd())
    init = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    deployment = ("one Wasm module, gateway.wasm: audit -> identity -> tool-acl -> rate-limit"
                  if ONE_MODULE else "4 Wasm filters: audit, identity, tool-acl, rate-limit")
    print(f"""
MCP + A2A gateway is up (stock Envoy {args.workers} workers, {deployment}).

  MCP endpoint (Streamable HTTP):  {d['mcp_url']}
  A2A endpoint (JSON-RPC 0.3+1.0): {d['a2a_url']}
  A2A agent card:                  {d['base_url']}/.well-known/agent-card.json
  Envoy admin:                     {d['admin_url']}   (try /stats?filter=wasm)
  TLS CA to trust:                 {ca}
  Logs:                            {os.path.relpath(d['run_dir'], os.getcwd())}/*.log
  Audit events (JSON lines):       {os.path.relpath(stack.audit_events_path, os.getcwd())}
                                   (collector counts: {stack.upstream_url('audit_collector') if 'audit_collector' in stack.ports else '-'}/stats;
                                    events leave in batches of 50 or every 5 s)

Try:
  curl --cacert {ca} {d['base_url']}/.well-known/agent-card.json
  curl --cacert {ca} -H 'x-agent-api-key: gw-demo-admin-1' \\
       -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \\
       -d '{init}' {d['mcp_url']}
  (demo API keys: gw-demo-sentinel-1, gw-demo-alchemy-1, gw-demo-admin-1; see docs/identity.md)
{identity_lines}

Walk through it (another terminal): {_walkthrough_command(stack)}

Ctrl-C to stop.""", flush=True)
    try:
        while not stop["now"]:
            time.sleep(0.5)
            stack.assert_alive()
    finally:
        stack.stop()
        print("stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run/render/validate the gateway stack")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="start backends + Envoy on the default ports, wait for Ctrl-C")
    d.add_argument("--config", default="envoy/gateway.yaml")
    d.add_argument("--workers", type=int, default=2)
    r = sub.add_parser("render", help="print or write a rendered config")
    r.add_argument("--config", default="envoy/gateway.yaml")
    r.add_argument("--out")
    v = sub.add_parser("validate", help="envoy --mode validate on rendered configs")
    v.add_argument("configs", nargs="*")
    s = sub.add_parser("split", help="regenerate the configs generated from envoy/gateway.yaml "
                       "(mcp-only, a2a-only, compose/*, four-modules/*)")
    s.add_argument("--check", action="store_true", help="fail if the files are out of date")
    sub.add_parser("certs", help="generate the self-signed demo certificate into .run/certs/ (kept while valid)")
    sub.add_parser("envoy-path", help="print the path of the Envoy binary in use")
    args = ap.parse_args(argv)

    if args.cmd == "certs":
        print("\n".join(f"{k}: {v}" for k, v in generate_certs(ROOT / ".run" / "certs").items()))
        return 0
    if args.cmd == "envoy-path":
        print(envoy_binary())
        return 0

    if args.cmd == "demo":
        return _demo(args)
    if args.cmd == "render":
        cfg = render_config(args.config, certs=generate_certs(ROOT / ".run" / "certs"))
        text = yaml.safe_dump(cfg, sort_keys=False)
        if args.out:
            Path(args.out).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    if args.cmd == "validate":
        configs = args.configs or sorted(ENVOY_DIR.glob("**/*.yaml"))
        rc = 0
        for path, code, out in validate(configs):
            print(f"{'OK  ' if code == 0 else 'FAIL'} {os.path.relpath(path, ROOT)}")
            if code != 0:
                print(out)
                rc = 1
        return rc
    if args.cmd == "split":
        stale = []
        for path, text in split_files().items():
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
                print(f"wrote {os.path.relpath(path, ROOT)}")
        if stale:
            print("out of date (run `./dev envoy-split`): " + ", ".join(str(p) for p in stale))
            return 1
        return 0
    return 2
