"""Helpers for the rate-limit end-to-end tests (tests/test_rate_limit*.py).

TEST-ONLY identity: a test stack replaces the `gw.identity` Wasm filter with
the header-fed stand-in of gwstack.support (`identity_from_header`): it
exists only in configs rendered by these tests, never in the shipped
envoy/*.yaml; the rate-limit filter itself has no header backdoor and reads
only filter state.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx

from gwstack import free_port
from gwstack.support import TEST_IDENTITY_HEADER, identity_from_header

SET_IDENTITY_FROM_TEST_HEADER = identity_from_header(name="test_only.identity_from_header")


def _http_filters(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    for listener in cfg["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                tc = f.get("typed_config", {})
                if "http_filters" in tc:
                    return tc["http_filters"]
    raise KeyError("no http_filters")


def identity_patch(extra: Callable[[dict[str, Any]], None] | None = None) -> Callable[[dict[str, Any]], None]:
    """Render-time patch: test-only identity from `x-test-identity`, and
    connections balanced exactly across Envoy workers (so a test with N
    connections really exercises every worker)."""

    def patch(cfg: dict[str, Any]) -> None:
        filters = _http_filters(cfg)
        names = [f["name"] for f in filters]
        filters[names.index("gw.identity")] = SET_IDENTITY_FROM_TEST_HEADER
        for listener in cfg["static_resources"]["listeners"]:
            listener["connection_balance_config"] = {"exact_balance": {}}
        if extra:
            extra(cfg)

    return patch


def agent(prefix: str = "sentinel-rl") -> str:
    """A fresh agent id per test: tests never share windows."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def as_agent(agent_id: str | None, **extra: str) -> dict[str, str]:
    headers = dict(extra)
    if agent_id is not None:
        headers[TEST_IDENTITY_HEADER] = json.dumps({"agentId": agent_id, "authMethod": "apiKey"})
    return headers


def tool_call(i: int, name: str = "search_patterns") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": name, "arguments": {"query": "map"}}}


def a2a_send(i: int, method: str = "message/send") -> dict[str, Any]:
    msg = {"kind": "message", "messageId": f"m-{uuid.uuid4().hex}", "role": "user",
           "parts": [{"kind": "text", "text": "hi"}]}
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": {"message": msg}}


def parse_ratelimit(value: str) -> dict[str, dict[str, int]]:
    """`"tools/call";r=5;t=3, "x:2w";r=1;t=9` -> {"tools/call": {"r": 5, "t": 3}, ...}"""
    out: dict[str, dict[str, int]] = {}
    for item in value.split(","):
        name, *params = item.strip().split(";")
        out[name.strip('"')] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return out


def counters(admin_url: str, prefix: str = "wasmcustom.gw.rate_limit") -> dict[str, int]:
    text = httpx.get(f"{admin_url}/stats?filter=^{prefix}", timeout=5).text
    out = {}
    for line in text.splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            out[k] = int(v)
    return out


def worker_connections(admin_url: str) -> dict[str, int]:
    """Downstream connections per Envoy worker on the gateway listener."""
    text = httpx.get(f"{admin_url}/stats?filter=worker_.*downstream_cx_total", timeout=5).text
    out: dict[str, int] = {}
    for line in text.splitlines():
        if "listener." in line and ": " in line and "admin" not in line:
            k, v = line.split(": ", 1)
            worker = k.split(".worker_")[1].split(".")[0]
            out[worker] = out.get(worker, 0) + int(v)
    return out


# --------------------------------------------------------------------------- redis + webdis


def _wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class RedisStore:
    """redis-server + webdis (Debian packages) on free loopback ports, started
    and stopped by the test. webdis only allows EVAL/EVALSHA."""

    def __init__(self, run_dir: Path):
        for binary in ("redis-server", "webdis", "redis-cli"):
            if not shutil.which(binary):
                raise RuntimeError(f"{binary} not installed: run ./dev (it installs redis-server and webdis)")
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.redis_port = free_port()
        self.webdis_port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> "RedisStore":
        log = open(self.run_dir / "redis.log", "ab")
        self.procs.append(subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.run_dir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_port(self.redis_port)
        conf = {
            "redis_host": "127.0.0.1", "redis_port": self.redis_port,
            "http_host": "127.0.0.1", "http_port": self.webdis_port,
            "threads": 1, "pool_size": 4, "daemonize": False, "database": 0,
            "acl": [{"disabled": ["*"]}, {"enabled": ["EVAL", "EVALSHA"]}],
            "verbosity": 1, "logfile": str(self.run_dir / "webdis.log"),
        }
        conf_path = self.run_dir / "webdis.json"
        conf_path.write_text(json.dumps(conf))
        self.procs.append(subprocess.Popen(["webdis", str(conf_path)], stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True))
        _wait_port(self.webdis_port)
        return self

    def cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args], capture_output=True, text=True,
                              timeout=10).stdout

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(timeout=5)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.procs.clear()


def webdis_cluster(name: str, port: int) -> Callable[[dict[str, Any]], None]:
    """Patch adding a STATIC cluster `name` for webdis on 127.0.0.1:port."""

    def patch(cfg: dict[str, Any]) -> None:
        cfg["static_resources"]["clusters"].append({
            "name": name,
            "type": "STATIC",
            "connect_timeout": "0.25s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
        })

    return patch
