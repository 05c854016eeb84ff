"""The A2A TCK against the example agent, direct and through the gateway,
compared test by test (`./dev a2a-conformance`, docs/a2a.md).

- The TCK (github.com/a2aproject/a2a-tck, branch 1.0-dev) is taken from
  `--tck-dir` (default .run/a2a-tck; cloned from `--tck-git` when absent)
  and installed with its own dependencies (PyPI) into .run/tck-venv.
- Direct: a fresh example agent on a free port, whose card names itself.
- Through the gateway: the shipped envoy/gateway.yaml (one module;
  GW_FOUR_MODULES=1: its four-module form) with its own example agent, the TCK authenticating
  as admin-1 (demo key: full access, exempt from task isolation, so the
  comparison measures the gateway's transparency, not its policy), and the
  rate limits raised (the TCK sends more messages a minute than the shipped
  limits allow; everything else is as shipped).
- Transports: JSON-RPC and HTTP+JSON (the agent serves no gRPC).

Prints each run's counts and every test whose outcome differs; exits 1 if
any does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import yaml

import gwstack as stack_mod  # noqa: E402
from gwstack import PYTHON, ROOT, Stack, free_port  # noqa: E402

TCK_GIT = "https://github.com/a2aproject/a2a-tck"
TCK_BRANCH = "1.0-dev"
ADMIN_KEY = "gw-demo-admin-1"
TRANSPORTS = "jsonrpc,http_json"


def ensure_tck(tck_dir: Path, git_url: str, venv: Path) -> Path:
    if not (tck_dir / "run_tck.py").exists():
        subprocess.run(["git", "clone", "-q", "-b", TCK_BRANCH, git_url, str(tck_dir)], check=True)
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    stamp = venv / ".tck-installed"
    if not stamp.exists():
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(tck_dir)], check=True)
        stamp.write_text("ok\n")
    return python


def relaxed_rate_limit() -> str:
    rl = yaml.safe_load(stack_mod.filter_configuration(stack_mod.ENVOY_DIR / "gateway.yaml", "gw_rate_limit"))
    for limit in rl["limits"]:
        limit["maxRequests"] = 100_000
        limit.pop("burstAllowance", None)
    return yaml.safe_dump(rl)


def run_tck(python: Path, tck_dir: Path, host: str, out: Path, env: dict[str, str]) -> dict[str, str]:
    """Run the TCK; the outcome of each test from its JUnit report."""
    out.mkdir(parents=True, exist_ok=True)
    junit = out / "junit.xml"
    cmd = [str(python), "run_tck.py", "--sut-host", host, "--transport", TRANSPORTS, "--",
           "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    if env.get("GW_TCK_API_KEY"):
        cmd += ["-p", "tck_gateway_auth"]
    with (out / "tck.log").open("w") as log:
        subprocess.run(cmd, cwd=tck_dir, env=env, stdout=log, stderr=subprocess.STDOUT, check=False,
                       timeout=3600)
    results: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "xfailed" if "xfail" in (child.get("type") or "") + (child.get("message") or "") \
                    else "skipped"
        results[name] = outcome
    return results


def counts(results: dict[str, str]) -> str:
    tally: dict[str, int] = {}
    for outcome in results.values():
        tally[outcome] = tally.get(outcome, 0) + 1
    return f"{len(results)} tests: " + ", ".join(f"{n} {k}" for k, n in sorted(tally.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tck-dir", type=Path, default=ROOT / ".run" / "a2a-tck")
    ap.add_argument("--tck-git", default=os.environ.get("A2A_TCK_GIT", TCK_GIT))
    ap.add_argument("--venv", type=Path, default=ROOT / ".run" / "tck-venv")
    ap.add_argument("--out", type=Path, default=ROOT / ".run" / "a2a-conformance")
    args = ap.parse_args()
    # The TCK runs in its own directory: every path given to it is absolute.
    args.out = args.out.resolve()
    args.tck_dir = args.tck_dir.resolve()
    python = ensure_tck(args.tck_dir, args.tck_git, args.venv)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GW_TCK_")}

    port = free_port()
    direct = subprocess.Popen([PYTHON, "-m", "examples.a2a_agent.agent", "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stack = Stack(config="envoy/gateway.yaml", backends=("a2a",), run_dir=args.out / "stack",
                  filter_configs={"gw_rate_limit": relaxed_rate_limit()})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the direct example agent did not start")
            time.sleep(0.2)
        stack.start()
        print(f"TCK {TCK_BRANCH} ({TRANSPORTS}) against the example agent, direct ...", flush=True)
        plain = run_tck(python, args.tck_dir, f"http://127.0.0.1:{port}", args.out / "direct", base_env)
        print(f"  direct:  {counts(plain)}", flush=True)
        print("... and through the gateway (admin-1) ...", flush=True)
        via_env = {**base_env, "GW_TCK_API_KEY": ADMIN_KEY, "GW_TCK_CA": str(stack.ca_path),
                   "PYTHONPATH": str(ROOT / "scripts")}
        via = run_tck(python, args.tck_dir, stack.base_url, args.out / "gateway", via_env)
        print(f"  gateway: {counts(via)}", flush=True)
    finally:
        stack.stop()
        direct.terminate()
        direct.wait(timeout=10)
    diff = sorted(n for n in plain.keys() | via.keys() if plain.get(n) != via.get(n))
    for name in diff:
        print(f"  DIFFERS {name}: direct {plain.get(name, 'absent')}, gateway {via.get(name, 'absent')}")
    print(f"{len(diff)} differences (reports: {args.out}/direct, {args.out}/gateway)")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
