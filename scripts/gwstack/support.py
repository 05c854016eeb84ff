"""Helpers the tests and the benches share, one definition each: the MCP
request headers, the TEST-ONLY identity stand-in (Envoy's set_filter_state
fed by a header), and the identity services (a real OAuth server + the
example API key service) with the identity configuration the tests and
bench_identity run.

Benches never import a test module; helpers only the tests share are in
tests/support.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from .layout import PYTHON, ROOT
from .processes import Proc
from .util import free_port, http_ok, tail
from .one_module import filter_configuration

# Headers a raw (non-SDK) Streamable HTTP MCP request carries.
MCP_HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}

# TEST-ONLY identity: test and bench stacks may replace the `gw.identity`
# filter with Envoy's native set_filter_state, which copies this request
# header (VerifiedIdentity JSON) into the filter state `wasm.gw_identity`,
# exactly where the identity filter publishes the verified identity. It
# exists only in configs rendered by tests and benches, never in the shipped
# envoy/*.yaml; the filters themselves have no header backdoor.
TEST_IDENTITY_HEADER = "x-test-identity"


def identity_from_header(header: str = TEST_IDENTITY_HEADER,
                         name: str = "envoy.filters.http.set_filter_state") -> dict[str, Any]:
    """The set_filter_state HTTP filter that stands in for `gw.identity` (above)."""
    return {
        "name": name,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
            "on_request_headers": [{
                "object_key": "wasm.gw_identity",
                "factory_key": "envoy.string",
                "skip_if_empty": True,
                "format_string": {
                    "omit_empty_values": True,
                    "text_format_source": {"inline_string": f"%REQ({header})%"},
                },
            }],
        },
    }


def run(coro: Any) -> Any:
    """Run a coroutine (an SDK client session) from a synchronous test."""
    return asyncio.run(coro)


# --------------------------------------------------------------------------- identity services

OAUTH_DIR = ROOT / "examples" / "oauth_server"
# envoy/gateway.yaml's `resource` and required audience; the OAuth server
# mints tokens for it by default, and for OTHER_RESOURCE when asked.
RESOURCE = "https://gateway.test"
OTHER_RESOURCE = "https://other-service.test"
VALIDATION_TIMEOUT_MS = 1000

# One agent per fault test that the example identity service also knows
# (service.py BUILTIN_AGENTS has the rest), so that no test sees another
# test's cached result.
FAULT_AGENTS = [f"fault-{i}" for i in range(6)]
# Scopes registered for the OAuth clients (examples/oauth_server/server.js).
CLIENT_SCOPES = {
    "sentinel-oauth": "mcp:tools:invoke mcp:tools:read",
    "alchemy-oauth": "a2a:tasks:send",
    "admin-oauth": "mcp:tools:invoke mcp:tools:read a2a:tasks:send",
    "expiring-oauth": "mcp:tools:invoke a2a:tasks:send",
    "anonymous-oauth": "mcp:tools:invoke a2a:tasks:send",
}


def shipped_identity() -> dict[str, Any]:
    """envoy/gateway.yaml's identity block, as shipped."""
    import yaml

    return yaml.safe_load(filter_configuration(ROOT / "envoy" / "gateway.yaml", "gw_identity"))


def identity_config(validation_timeout_ms: int = VALIDATION_TIMEOUT_MS, **top: Any) -> str:
    """gateway.yaml's identity block as shipped (its audience included), with
    a longer negative TTL (so negative caching can be observed) and `top`
    keys set at the top level (cache, maxCalloutsInFlight)."""
    import yaml

    conf = shipped_identity()
    conf["authMethods"][0]["timeoutMs"] = validation_timeout_ms
    conf["cache"] = {"maxEntries": 1024, "negativeTtlSeconds": 60}
    conf.update(top)
    return yaml.safe_dump(conf, sort_keys=False)


class Services:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.oauth_port = free_port()
        self.identity_port = free_port()
        self.procs: list[Proc] = []

    @property
    def oauth_url(self) -> str:
        return f"http://127.0.0.1:{self.oauth_port}"

    @property
    def identity_url(self) -> str:
        return f"http://127.0.0.1:{self.identity_port}"

    def start(self) -> None:
        if not (OAUTH_DIR / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("examples/oauth_server is not installed: run ./dev (npm ci)")
        node = shutil.which("node")
        assert node, "node not found"
        agents = [{"id": name, "name": name, "owner": "qa",
                   "keySha256": hashlib.sha256(f"svc-key-{name}".encode()).hexdigest()} for name in FAULT_AGENTS]
        agents_file = self.run_dir / "agents.json"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        agents_file.write_text(json.dumps(agents))
        self.procs = [
            # its default resources: RESOURCE and OTHER_RESOURCE
            Proc("oauth_server",
                 [node, str(OAUTH_DIR / "server.js"), "--port", str(self.oauth_port), "--short-ttl", "2"],
                 self.run_dir / "oauth_server.log", ready=lambda: http_ok(f"{self.oauth_url}/healthz")),
            Proc("identity_service",
                 [PYTHON, str(ROOT / "examples" / "identity_service" / "service.py"), "--port", str(self.identity_port),
                  "--agents", str(agents_file), "--enable-faults"],
                 self.run_dir / "identity_service.log", ready=lambda: http_ok(f"{self.identity_url}/healthz")),
        ]
        for p in self.procs:
            p.start()
        deadline = time.monotonic() + 30
        for p in self.procs:
            while not (p.ready and p.ready()):
                assert p.alive(), f"{p.name} died: {tail(p.log)}"
                assert time.monotonic() < deadline, f"{p.name} not ready: {tail(p.log)}"
                time.sleep(0.1)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()

    # ---- OAuth
    def token(self, client: str, scope: str | None = None, resource: str | None = None) -> str:
        data = {"grant_type": "client_credentials", "scope": scope or CLIENT_SCOPES[client]}
        if resource:
            data["resource"] = resource
        r = httpx.post(f"{self.oauth_url}/oauth/token", data=data, auth=(client, f"{client.split('-')[0]}-secret"),
                       timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    def revoke(self, client: str, token: str) -> None:
        r = httpx.post(f"{self.oauth_url}/oauth/revoke", data={"token": token},
                       auth=(client, f"{client.split('-')[0]}-secret"), timeout=10)
        assert r.status_code == 200, r.text

    def introspections(self) -> int:
        return httpx.get(f"{self.oauth_url}/stats", timeout=5).json()["introspection"]

    # ---- identity service
    def validations(self) -> int:
        return self.identity_stats()["validations"]

    def identity_stats(self) -> dict[str, int]:
        return httpx.get(f"{self.identity_url}/stats", timeout=5).json()

    def reset_identity_stats(self) -> None:
        assert httpx.post(f"{self.identity_url}/stats/reset", json={}, timeout=5).status_code == 200

    def faults(self, **faults: Any) -> None:
        r = httpx.post(f"{self.identity_url}/faults", json=faults, timeout=5)
        assert r.status_code == 200, r.text
