"""Session fixtures: build the Wasm filters once, run the real stack (stock
Envoy + example backends) on free ports, tear everything down even on failure.

Fixtures other tests build on:

* `gateway`  -> `Gateway`: the running default stack (envoy/gateway.yaml) with
  `base_url`, `mcp_url`, `a2a_url`, `admin_url`, `ca_path`, `ssl_context()`,
  `mcp_client(headers=...)`, `a2a_client(headers=..., version=...)`,
  `http(headers=...)` and `stack` (the gwstack `Stack`).
* `default_headers`: headers every client helper sends (empty now; once the
  identity filter requires a key, return e.g. {"x-agent-api-key": ...} here).
* `start_stack(**kw)`: start another stack (e.g. with `filter_configs=` for a
  policy test); it is stopped at the end of the session.

Environment knobs: GW_WORKERS (Envoy --concurrency, default 2),
GW_SKIP_BUILD=1 (use the existing dist/wasm), GW_KEEP_RUN=1 (keep logs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

import gwstack as stack_mod
from gwstack import Stack

WORKERS = int(os.environ.get("GW_WORKERS", "2"))


# --------------------------------------------------------------------------- build


def _build_wasm() -> None:
    just = Path(sys.executable).parent / "just"
    cmd = [str(just), "build"] if just.exists() else None
    if cmd is None:
        raise RuntimeError("`just` not found next to the Python interpreter: run the tests via ./dev test")
    subprocess.run(cmd, cwd=ROOT, check=True)


@pytest.fixture(scope="session")
def wasm_built() -> Path:
    """dist/wasm/*.wasm, built once per session (skip with GW_SKIP_BUILD=1)."""
    if os.environ.get("GW_SKIP_BUILD") != "1":
        _build_wasm()
    missing = [f for f in stack_mod.FILTERS.values() if not (stack_mod.WASM_DIR / f).exists()]
    if missing:
        pytest.fail(f"missing wasm artifacts: {missing}")
    return stack_mod.WASM_DIR


# --------------------------------------------------------------------------- run dir


@pytest.fixture(scope="session")
def run_root() -> Iterator[Path]:
    root = ROOT / ".run" / "tests" / f"{os.getpid()}"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    # prune leftovers of earlier sessions older than a day
    for old in root.parent.iterdir():
        with contextlib.suppress(OSError):
            if old != root and time.time() - old.stat().st_mtime > 86400:
                shutil.rmtree(old)
    yield root
    if os.environ.get("GW_KEEP_RUN") != "1" and os.environ.get("CI") != "true":
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- gateway handle


class Gateway:
    """What tests need to talk to a running stack."""

    def __init__(self, stack: Stack, default_headers: dict[str, str]):
        self.stack = stack
        self.default_headers = dict(default_headers)

    base_url = property(lambda self: self.stack.base_url)
    mcp_url = property(lambda self: self.stack.mcp_url)
    a2a_url = property(lambda self: self.stack.a2a_url)
    admin_url = property(lambda self: self.stack.admin_url)
    ca_path = property(lambda self: self.stack.ca_path)

    def url(self, path: str) -> str:
        return self.base_url + path

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts only the stack's generated CA (full hostname verification)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {**self.default_headers, **(headers or {})}

    def http(self, headers: dict[str, str] | None = None, **kw: Any):
        """httpx.Client over TLS to the gateway (sync, for raw requests)."""
        import httpx

        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(), headers=self._headers(headers),
                            timeout=kw.pop("timeout", 30), **kw)

    def ahttp(self, headers: dict[str, str] | None = None, **kw: Any):
        import httpx

        return httpx.AsyncClient(base_url=self.base_url, verify=self.ssl_context(), headers=self._headers(headers),
                                 timeout=kw.pop("timeout", 30), **kw)

    @contextlib.asynccontextmanager
    async def mcp_client(self, headers: dict[str, str] | None = None, mode: str = "legacy",
                         path: str = "/mcp", on_response: Callable[[Any], Any] | None = None,
                         **client_kw: Any) -> AsyncIterator[Any]:
        """Official MCP client (mcp 2.x) through the gateway.

        mode="legacy": initialize handshake (protocol 2025-11-25);
        mode="auto": server/discover first (2026-07-28, Mcp-Method headers).
        on_response: async callable given every HTTP response (e.g. to collect x-request-id)."""
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        http = httpx2.AsyncClient(headers=self._headers(headers), verify=self.ssl_context(),
                                  timeout=httpx2.Timeout(30, read=300),
                                  event_hooks={"response": [on_response]} if on_response else None)
        async with http:
            transport = streamable_http_client(self.base_url + path, http_client=http)
            async with Client(transport, mode=mode, **client_kw) as client:
                yield client

    @contextlib.asynccontextmanager
    async def a2a_client(self, headers: dict[str, str] | None = None, version: str = "1.0",
                         streaming: bool = True,
                         on_response: Callable[[Any], Any] | None = None) -> AsyncIterator[Any]:
        """Official A2A client (a2a-sdk 1.x) through the gateway, pinned to one
        protocol version of the card's interfaces ("1.0" or "0.3").
        on_response: async callable given every HTTP response."""
        import httpx
        from a2a.client import A2ACardResolver, ClientConfig, ClientFactory

        http = httpx.AsyncClient(headers=self._headers(headers), verify=self.ssl_context(), timeout=60,
                                 event_hooks={"response": [on_response]} if on_response else None)
        async with http:
            card = await A2ACardResolver(http, self.base_url).get_agent_card()
            keep = [i for i in card.supported_interfaces if i.protocol_version == version]
            assert keep, f"agent card has no {version} interface: {card.supported_interfaces}"
            del card.supported_interfaces[:]
            card.supported_interfaces.extend(keep)
            client = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming)).create(card)
            try:
                yield client
            finally:
                await client.close()

    def admin(self, path: str) -> str:
        status, body = self.stack.admin(path)
        assert status == 200, (path, status, body[:500])
        return body

    def upstream_requests(self, cluster: str) -> int:
        """Requests Envoy has opened to `cluster` (its upstream_rq_total)."""
        stats = self.admin(f"/stats?filter=^cluster\\.{cluster}\\.upstream_rq_total$")
        return int(stats.split(":")[-1].strip() or 0)

    def upstream_stats(self, cluster: str = "mcp_upstream") -> dict[str, Any]:
        import httpx

        return httpx.get(self.stack.upstream_url(cluster) + "/stats", timeout=5).json()

    def log(self, name: str = "envoy") -> str:
        return self.stack.log_path(name).read_text(errors="replace")


# --------------------------------------------------------------------------- fixtures


# Demo API keys of envoy/gateway.yaml's static agents (docs/identity.md). They
# are not secrets: the config stores only their SHA-256.
DEMO_KEYS = {
    "sentinel-1": "gw-demo-sentinel-1",
    "alchemy-1": "gw-demo-alchemy-1",
    "admin-1": "gw-demo-admin-1",
}


@pytest.fixture(scope="session")
def default_headers() -> dict[str, str]:
    """Headers every client helper sends: the demo key of `admin-1` (the
    identity filter requires a credential on /mcp and /a2a)."""
    return {"x-agent-api-key": DEMO_KEYS["admin-1"]}


@pytest.fixture(scope="session")
def start_stack(wasm_built: Path, run_root: Path) -> Iterator[Callable[..., Stack]]:
    started: list[Stack] = []
    counter = iter(range(1000))

    def start(name: str | None = None, **kw: Any) -> Stack:
        kw.setdefault("workers", WORKERS)
        label = name or f"stack{next(counter)}"
        s = Stack(run_dir=run_root / label, **kw)
        started.append(s)
        s.start()
        return s

    yield start
    for s in reversed(started):
        s.stop()


@pytest.fixture(scope="session")
def gateway(start_stack: Callable[..., Stack], default_headers: dict[str, str]) -> Gateway:
    """The default stack: envoy/gateway.yaml, both backends, all four filters."""
    return Gateway(start_stack("gateway", config="envoy/gateway.yaml"), default_headers)


@pytest.fixture(autouse=True)
def _stack_still_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the gateway, fail loudly if a process died."""
    yield
    if "gateway" in request.fixturenames:
        gw: Gateway = request.getfixturevalue("gateway")
        gw.stack.assert_alive()
