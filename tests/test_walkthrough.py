"""The README's walkthrough (`./dev walkthrough`, scripts/walkthrough.py) run
as a user runs it, against a stack started like `./dev demo`: the shipped
envoy/gateway.yaml, the example backends, the identity service, the OAuth
server and the audit collector."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gwstack import ROOT, Stack
from gwstack.cli import demo_identity_services

OAUTH_INSTALLED = (ROOT / "examples/oauth_server/node_modules/oidc-provider").is_dir() and shutil.which("node")


@pytest.fixture(scope="module")
def demo_like(wasm_built: Path, run_root: Path) -> Iterator[Stack]:
    """A stack started as the demo starts it (free ports instead of 8443...)."""
    if not OAUTH_INSTALLED:
        pytest.fail("examples/oauth_server is not installed: run ./dev (npm ci)")
    s = Stack(config="envoy/gateway.yaml", run_dir=run_root / "walkthrough")
    demo_identity_services(s)
    s.start()
    yield s
    s.stop()


def walkthrough(s: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/walkthrough.py", "--url", s.base_url, "--ca", str(s.ca_path),
         "--oauth-url", s.upstream_url("oauth_server"), "--collector-url", s.upstream_url("audit_collector"),
         *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )


def mcp_tools(s: Stack) -> dict[str, int]:
    return httpx.get(s.upstream_url("mcp_upstream") + "/stats", timeout=5).json()["tools"]


@pytest.mark.timeout(180)
def test_walkthrough_runs_against_the_demo(demo_like: Stack) -> None:
    before = mcp_tools(demo_like)
    proc = walkthrough(demo_like)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "All steps behaved as expected." in out
    # each step printed what the gateway did
    assert "-> 3 tools: classify_content, read_config, search_patterns" in out
    assert "-> denied: JSON-RPC error -32001: Agent 'sentinel-1' is not authorized to invoke tool 'execute_code'" in out
    limited = re.search(r"-> (\d+) calls allowed, then HTTP 429 Retry-After: (\d+)", out)
    assert limited and limited.group(1) == "70" and 1 <= int(limited.group(2)) <= 60, out
    assert "-> HTTP 401" in out
    assert "accepted: agent sentinel-3" in out and re.search(r"after \d+ s: HTTP 401", out), out
    assert re.search(r"send: +task \S+ TASK_STATE_COMPLETED: 'done: hello gateway verified=.*admin-1", out), out
    assert re.search(r"stream: .*WORKING -> .*COMPLETED", out), out
    for decision in ("allowed", "tool_denied", "rate_limited", "unauthenticated"):
        assert f" {decision} " in out, decision
    assert "0 missing" in out
    # what reached the MCP server: the allowed calls, never the denied one nor the limited one
    after = mcp_tools(demo_like)
    assert after.get("execute_code", 0) == before.get("execute_code", 0)
    assert after.get("read_template", 0) - before.get("read_template", 0) == 70
    # sentinel-1's key and sentinel-3's token, once each
    assert after.get("search_patterns", 0) - before.get("search_patterns", 0) == 2
    # the audit events it printed are in the collector's file, without content
    events = demo_like.audit_events_path.read_text()
    assert "print(1)" not in events and "hello gateway" not in events


@pytest.mark.timeout(60)
def test_walkthrough_fails_when_the_gateway_misbehaves(demo_like: Stack) -> None:
    """Guards the test above: the script checks what it shows. Against the
    MCP server directly (no gateway, plain HTTP) its first check fails."""
    proc = subprocess.run(
        [sys.executable, "scripts/walkthrough.py", "--url", demo_like.upstream_url("mcp_upstream"),
         "--oauth-url", "", "--collector-url", ""],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED: sentinel-1 should see exactly" in proc.stdout

