"""Identity filter end to end: stock Envoy + the Wasm filters, a real OAuth
authorization server (oidc-provider: client credentials, RFC 7662
introspection, RFC 7009 revocation, RFC 8707 audiences) and the example API
key validation service, both started here on free ports.

Callout counts come from the services themselves (GET /stats): they prove
what the gateway's cache saved, whatever the filter's own metrics say."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import gwstack as stack_mod
from conftest import DEMO_KEYS, ROOT, Gateway
from gwstack import Stack, free_port
from gwstack.support import (MCP_HEADERS, OTHER_RESOURCE, RESOURCE, VALIDATION_TIMEOUT_MS, Services, identity_config, run,
                             shipped_identity)
from support import assert_denied, bearer
from support import api_key as key

MCP_ACCEPT = MCP_HEADERS
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
# Keys the example service knows (service.py BUILTIN_AGENTS).
SERVICE_KEYS = {"sentinel-7": "svc-key-sentinel-7", "alchemy-7": "svc-key-alchemy-7", "admin-7": "svc-key-admin-7"}


def with_identity_in_access_log(cfg: dict[str, Any]) -> None:
    """Print the filter state identity publishes (gw_identity, gw_decision) in
    Envoy's access log, to check it end to end."""

    def add_fields(node: dict[str, Any]) -> None:
        src = node.get("text_format_source")
        if isinstance(src, dict) and "inline_string" in src:
            src["inline_string"] = src["inline_string"].rstrip("\n") + (
                " identity=%FILTER_STATE(wasm.gw_identity:PLAIN)% decision=%FILTER_STATE(wasm.gw_decision:PLAIN)%\n"
            )

    stack_mod.walk_dicts(cfg, add_fields)


@pytest.fixture(scope="module")
def services(run_root: Path) -> Iterator[Services]:
    s = Services(run_root / "identity_services")
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def gw(start_stack: Callable[..., Stack], services: Services) -> Gateway:
    """The gateway with both identity services wired in; no default headers."""
    s = start_stack(
        "identity",
        config="envoy/gateway.yaml",
        filter_configs={"gw_identity": identity_config()},
        extra_upstreams={"identity_service": services.identity_port, "oauth_server": services.oauth_port},
        patch=with_identity_in_access_log,
    )
    return Gateway(s, {})


def post_mcp(gw: Gateway, headers: dict[str, str], path: str = "/mcp", body: Any = None) -> httpx.Response:
    with gw.http({**MCP_ACCEPT, **headers}) as c:
        return c.post(path, json=body or TOOLS_LIST)


def send_a2a(gw: Gateway, headers: dict[str, str]) -> httpx.Response:
    msg = {"kind": "message", "messageId": uuid.uuid4().hex, "role": "user", "parts": [{"kind": "text", "text": "hi"}]}
    with gw.http(headers) as c:
        return c.post("/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": msg}})


def challenge(r: httpx.Response) -> dict[str, str]:
    value = r.headers["www-authenticate"]
    assert value.startswith("Bearer "), value
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


def access_log_line(gw: Gateway, needle: str, timeout: float = 5.0) -> str:
    """The access log line containing `needle` (Envoy flushes the log lazily)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in gw.log().splitlines():
            if needle in line:
                return line
        assert time.monotonic() < deadline, f"no access log line with {needle!r}"
        time.sleep(0.2)


# --------------------------------------------------------------------------- resource server


@pytest.mark.timeout(60)
def test_no_credentials_is_401_with_a_resource_metadata_challenge(gw: Gateway) -> None:
    for path in ("/mcp", "/mcp/tools/call", "/a2a", "/a2a/tasks/send"):
        r = post_mcp(gw, {}, path)
        assert_denied(r, 401, "missing_credentials")
        prefix = path.split("/")[1]
        assert challenge(r) == {"resource_metadata": f"{gw.base_url}/.well-known/oauth-protected-resource/{prefix}"}


@pytest.mark.timeout(60)
def test_protected_resource_metadata_rfc9728(gw: Gateway) -> None:
    r = post_mcp(gw, {})
    url = challenge(r)["resource_metadata"]
    with gw.http() as c:
        doc = c.get(url).json()
        root = c.get("/.well-known/oauth-protected-resource").json()
    # the configured resource (RFC 8707 audience of the tokens), for every document
    assert doc["resource"] == RESOURCE
    assert root["resource"] == RESOURCE
    assert doc["authorization_servers"] == ["http://127.0.0.1:9000"]  # origin of tokenUrl
    assert doc["scopes_supported"] == ["mcp:tools:invoke", "a2a:tasks:send"]
    assert doc["bearer_methods_supported"] == ["header"]


@pytest.mark.timeout(60)
def test_public_paths_need_no_credentials(gw: Gateway) -> None:
    with gw.http() as c:
        r = c.get("/.well-known/agent-card.json")
    assert r.status_code == 200 and r.json()["name"] == "gateway-example-agent"


# --------------------------------------------------------------------------- API keys


@pytest.mark.timeout(60)
def test_static_demo_keys_need_no_callout(gw: Gateway, services: Services) -> None:
    before = services.validations()
    for agent, demo_key in DEMO_KEYS.items():
        r = post_mcp(gw, key(demo_key))
        assert r.status_code == 200, r.text
    assert services.validations() == before


@pytest.mark.timeout(60)
def test_valid_service_key_is_validated_once_then_cached(gw: Gateway, services: Services) -> None:
    before = services.validations()
    for _ in range(5):
        r = post_mcp(gw, key(SERVICE_KEYS["sentinel-7"]))
        assert r.status_code == 200, r.text
    assert services.validations() - before <= 1  # 0 if an earlier test cached it
    stats = gw.admin("/stats?filter=wasmcustom.gw.identity")
    assert int(re.search(r"gw\.identity\.cache_hits: (\d+)", stats).group(1)) >= 4, stats


@pytest.mark.timeout(60)
def test_invalid_key_is_401_and_briefly_cached(gw: Gateway, services: Services) -> None:
    """The same unknown key 50 times costs one validation callout (negative
    cache), and none of the 50 reaches the MCP server."""
    unknown = "unknown-" + secrets.token_hex(8)
    before, upstream = services.validations(), gw.upstream_stats()["methods"]
    with gw.http({**MCP_ACCEPT, **key(unknown)}) as c:
        for _ in range(50):
            assert_denied(c.post("/mcp", json=TOOLS_LIST), 401, "invalid_api_key")
    assert services.validations() - before == 1
    assert gw.upstream_stats()["methods"] == upstream
    # a disabled agent: the service says 403, the client gets 401
    assert_denied(post_mcp(gw, key("svc-key-retired-1")), 401, "invalid_api_key")


@pytest.mark.timeout(60)
def test_mcp_official_client_with_a_service_key_sees_verified_headers(gw: Gateway) -> None:
    async def go() -> dict[str, Any]:
        async with gw.mcp_client(headers=key(SERVICE_KEYS["admin-7"])) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert "whoami" in tools
            return (await client.call_tool("whoami", {})).structured_content

    who = run(go())
    assert who["verified"] == {"agentId": "admin-7", "agentName": "Admin Seven", "agentOwner": "platform-team"}
    assert "x-agent-api-key" not in who["requestHeaders"]  # credentials are not forwarded
    assert "authorization" not in who["requestHeaders"]


@pytest.mark.timeout(60)
def test_a2a_official_client_with_a_static_key_sees_verified_headers(gw: Gateway) -> None:
    verified = run(_a2a_verified(gw, key(DEMO_KEYS["alchemy-1"])))
    assert verified == {"agentId": "alchemy-1", "agentName": "Alchemy One", "agentOwner": "media-team"}


async def _a2a_verified(gw: Gateway, headers: dict[str, str]) -> dict[str, Any]:
    """What the A2A agent saw in X-Verified-Agent-* (it echoes them in its
    status messages), through the official client."""
    from a2a.helpers import get_message_text, new_text_message
    from a2a.types import Role, SendMessageRequest

    async with gw.a2a_client(headers=headers, streaming=False) as client:
        req = SendMessageRequest(message=new_text_message("who am i", role=Role.ROLE_USER))
        events = [ev async for ev in client.send_message(req)]
    assert len(events) == 1 and events[0].WhichOneof("payload") == "task", events
    text = get_message_text(events[0].task.status.message)
    return json.loads(text.split(" verified=", 1)[1])


@pytest.mark.timeout(60)
def test_spoofed_verified_headers_are_replaced(gw: Gateway) -> None:
    spoof = {"X-Verified-Agent-Id": "admin-1", "X-Verified-Agent-Owner": "evil", "x-verified-agent-name": "Admin"}
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "search_patterns", "arguments": {"query": "map"}}}
    r = post_mcp(gw, {**spoof, **key(DEMO_KEYS["sentinel-1"])}, body=body)
    assert r.status_code == 200, r.text
    result = _jsonrpc_result(r)
    assert result["structuredContent"]["verified"] == {
        "agentId": "sentinel-1", "agentName": "Sentinel One", "agentOwner": "security-team"}
    # without a credential a spoofed header gets nowhere
    assert_denied(post_mcp(gw, spoof), 401, "missing_credentials")


def _jsonrpc_result(r: httpx.Response) -> dict[str, Any]:
    if r.headers["content-type"].startswith("text/event-stream"):
        datas = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:") and line[5:].strip()]
        return [d for d in datas if "result" in d][-1]["result"]
    return r.json()["result"]


@pytest.mark.timeout(60)
def test_identity_is_published_as_filter_state(gw: Gateway) -> None:
    """gw_identity / gw_decision as Envoy filter state (what the other
    filters and the access log read), seen through the access log."""
    allowed, refused = uuid.uuid4().hex, uuid.uuid4().hex
    assert post_mcp(gw, key(DEMO_KEYS["sentinel-1"]), path=f"/mcp?trace={allowed}").status_code == 200
    assert post_mcp(gw, {}, path=f"/mcp?trace={refused}").status_code == 401
    # Envoy flushes access logs every 10 s by default
    line = access_log_line(gw, allowed, timeout=15)
    identity = json.loads(re.search(r"identity=(\{.*?\}) decision=", line).group(1))
    assert identity == {"agentId": "sentinel-1", "agentName": "Sentinel One", "agentOwner": "security-team",
                        "authMethod": "apiKey"}
    assert line.endswith("decision=-")
    assert access_log_line(gw, refused, timeout=15).endswith("identity=- decision=unauthenticated")


# --------------------------------------------------------------------------- precedence, malformed


@pytest.mark.timeout(60)
def test_credential_precedence_and_malformed_headers(gw: Gateway, services: Services) -> None:
    token = services.token("admin-oauth")
    body = assert_denied(post_mcp(gw, {**key(DEMO_KEYS["admin-1"]), **bearer(token)}), 401, "ambiguous_credentials")
    assert "not both" in body["message"]
    assert_denied(post_mcp(gw, {"authorization": "Basic dXNlcjpwYXNz"}), 401, "invalid_request")
    assert_denied(post_mcp(gw, {"authorization": "Bearer"}), 401, "invalid_request")
    assert_denied(post_mcp(gw, {"authorization": "Bearer not a token"}), 401, "invalid_request")
    assert_denied(post_mcp(gw, key("x" * 600)), 401, "invalid_request")
    with gw.http(MCP_ACCEPT) as c:
        dup = httpx.Headers([("x-agent-api-key", DEMO_KEYS["admin-1"]), ("x-agent-api-key", "other")])
        assert_denied(c.post("/mcp", json=TOOLS_LIST, headers=dup), 401, "invalid_request")
        # a non-UTF-8 header value must not crash the filter (the SDK would panic)
        r = c.post("/mcp", json=TOOLS_LIST, headers=[(b"x-agent-api-key", b"\xff\xfe-key")])
        assert_denied(r, 401, "invalid_request")
        assert c.post("/mcp", json=TOOLS_LIST, headers=key(DEMO_KEYS["admin-1"])).status_code == 200
    gw.stack.assert_alive()


# --------------------------------------------------------------------------- OAuth


@pytest.mark.timeout(60)
def test_valid_token_reaches_mcp_and_a2a_with_the_official_clients(gw: Gateway, services: Services) -> None:
    token = services.token("admin-oauth")

    async def mcp() -> dict[str, Any]:
        async with gw.mcp_client(headers=bearer(token)) as client:
            return (await client.call_tool("whoami", {})).structured_content

    who = run(mcp())
    assert who["verified"] == {"agentId": "admin-2", "agentName": "Admin Two (OAuth)", "agentOwner": "platform-team"}
    assert "authorization" not in who["requestHeaders"]
    assert run(_a2a_verified(gw, bearer(token))) == who["verified"]


@pytest.mark.timeout(60)
def test_introspection_is_cached(gw: Gateway, services: Services) -> None:
    token = services.token("sentinel-oauth")
    before = services.introspections()
    for _ in range(5):
        assert post_mcp(gw, bearer(token)).status_code == 200
    assert services.introspections() - before == 1


@pytest.mark.timeout(60)
def test_inactive_and_revoked_tokens_are_401(gw: Gateway, services: Services) -> None:
    r = post_mcp(gw, bearer(secrets.token_urlsafe(32)))
    assert_denied(r, 401, "invalid_token")
    assert challenge(r)["error"] == "invalid_token"
    token = services.token("admin-oauth")
    services.revoke("admin-oauth", token)
    assert_denied(post_mcp(gw, bearer(token)), 401, "invalid_token")


@pytest.mark.timeout(60)
def test_expired_token_is_401_even_after_being_cached(gw: Gateway, services: Services) -> None:
    token = services.token("expiring-oauth")  # lives 2 s
    assert post_mcp(gw, bearer(token)).status_code == 200
    time.sleep(3)
    r = post_mcp(gw, bearer(token))
    assert_denied(r, 401, "invalid_token")


@pytest.mark.timeout(60)
def test_missing_scope_is_403_insufficient_scope(gw: Gateway, services: Services) -> None:
    token = services.token("alchemy-oauth")  # a2a:tasks:send only
    r = post_mcp(gw, bearer(token))
    assert_denied(r, 403, "insufficient_scope")
    params = challenge(r)
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "mcp:tools:invoke"
    assert params["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")
    # the same token is good for A2A
    assert send_a2a(gw, bearer(token)).status_code == 200
    # and a token scoped for MCP only is not good for A2A
    sentinel = services.token("sentinel-oauth", scope="mcp:tools:invoke")
    assert_denied(send_a2a(gw, bearer(sentinel)), 403, "insufficient_scope")


WHOAMI_CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}


@pytest.mark.timeout(60)
def test_token_for_another_resource_is_401_and_never_reaches_mcp(gw: Gateway, services: Services) -> None:
    """Finding 2 of issue 10: a client-credentials token the real OAuth server
    minted for another service (RFC 8707 `resource=https://other-service.test`)
    is refused by the shipped config's audience, on /mcp and
    /mcp/tools/call, and nothing reaches the MCP server."""
    token = services.token("admin-oauth", resource=OTHER_RESOURCE)
    before = gw.upstream_stats()["tools"].get("whoami", 0)
    for path in ("/mcp", "/mcp/tools/call"):
        r = post_mcp(gw, bearer(token), path=path, body=WHOAMI_CALL)
        body = assert_denied(r, 401, "invalid_token")
        assert "audience" in body["message"]
        params = challenge(r)
        assert params["error"] == "invalid_token"
        assert params["resource_metadata"] == f"{gw.base_url}/.well-known/oauth-protected-resource/mcp"
    assert gw.upstream_stats()["tools"].get("whoami", 0) == before
    # the same client's token for this gateway's resource goes through
    mine = services.token("admin-oauth", resource=RESOURCE)
    assert post_mcp(gw, bearer(mine), body=WHOAMI_CALL).status_code == 200
    assert gw.upstream_stats()["tools"].get("whoami", 0) == before + 1


SHIPPED_CONFIGS = sorted((ROOT / "envoy").glob("**/*.yaml"))


def test_every_shipped_config_requires_the_gateway_audience() -> None:
    """Every shipped config (one module, four modules, compose) names its
    RFC 9728 resource as the audience bearer tokens must carry."""
    import yaml

    assert len(SHIPPED_CONFIGS) == 8, SHIPPED_CONFIGS
    for path in SHIPPED_CONFIGS:
        conf = yaml.safe_load(stack_mod.filter_configuration(path, "gw_identity"))
        [oauth] = [m for m in conf["authMethods"] if m["type"] == "oauth2ClientCredentials"]
        assert oauth["resource"] == RESOURCE, path
        assert oauth["audiences"] == [oauth["resource"]], path


@pytest.mark.timeout(120)
def test_config_without_audiences_is_refused_at_load(wasm_built: Path, run_root: Path, tmp_path: Path) -> None:
    """Envoy refuses an identity config with bearer tokens and no audiences,
    and says which key and why (both deployments: one module unless
    GW_FOUR_MODULES=1)."""
    import subprocess

    import yaml

    conf = shipped_identity()
    del conf["authMethods"][1]["audiences"]
    cfg = stack_mod.render_config("envoy/gateway.yaml", filter_configs={"gw_identity": yaml.safe_dump(conf)},
                                  certs=stack_mod.generate_certs(run_root / "validate" / "certs"))
    out = stack_mod.write_config(cfg, tmp_path / "no-audiences.yaml")
    proc = subprocess.run([stack_mod.envoy_binary(), "--mode", "validate", "-c", str(out), "--disable-hot-restart"],
                          capture_output=True, text=True, timeout=120)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-2000:]
    assert "authMethods[1].audiences" in log, log[-2000:]
    assert "any other service" in log, log[-2000:]


@pytest.mark.timeout(60)
def test_token_without_agent_claims_is_403(gw: Gateway, services: Services) -> None:
    assert_denied(post_mcp(gw, bearer(services.token("anonymous-oauth"))), 403, "no_agent_identity")


# --------------------------------------------------------------------------- failures: fail closed


@pytest.fixture
def faults(services: Services) -> Iterator[Callable[..., None]]:
    yield services.faults
    services.faults()


@pytest.mark.timeout(60)
def test_validation_endpoint_garbage_or_error_is_503_and_not_cached(gw: Gateway, services: Services,
                                                                      faults: Callable[..., None]) -> None:
    faults(mode="garbage")
    body = assert_denied(post_mcp(gw, key("svc-key-fault-0")), 503, "identity_unavailable")
    assert "not JSON" in body["message"]
    faults(mode="error")
    body = assert_denied(post_mcp(gw, key("svc-key-fault-0")), 503, "identity_unavailable")
    assert "HTTP 500" in body["message"]
    faults()
    assert post_mcp(gw, key("svc-key-fault-0")).status_code == 200  # the 503s were not cached


@pytest.mark.timeout(60)
def test_slow_validation_endpoint_times_out_with_503(gw: Gateway, faults: Callable[..., None]) -> None:
    faults(delayMs=VALIDATION_TIMEOUT_MS + 1500)
    body = assert_denied(post_mcp(gw, key("svc-key-fault-1")), 503, "identity_unavailable")
    assert "timed out" in body["message"]


@pytest.mark.timeout(60)
def test_request_body_cannot_release_a_paused_request(gw: Gateway, faults: Callable[..., None]) -> None:
    """While the callout is pending, body chunks arrive; the request must stay
    paused and be refused when the callout fails."""
    before = gw.upstream_stats()["methods"].get("tools/call", 0)
    faults(delayMs=VALIDATION_TIMEOUT_MS + 500)

    def chunks() -> Iterator[bytes]:
        yield b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"search_patterns","arguments":{"query":"'
        for _ in range(20):
            time.sleep(0.05)
            yield b"x" * 4096
        yield b'"}}}'

    with gw.http({**MCP_ACCEPT, **key("svc-key-fault-2"), "content-type": "application/json"}) as c:
        r = c.post("/mcp", content=chunks())
    assert_denied(r, 503, "identity_unavailable")
    assert gw.upstream_stats()["methods"].get("tools/call", 0) == before


@pytest.mark.timeout(90)
def test_endpoints_down_fail_closed_but_static_keys_work(start_stack: Callable[..., Stack],
                                                         services: Services) -> None:
    dead = free_port()  # nothing listens there
    s = start_stack("identity_down", config="envoy/gateway.yaml", workers=1,
                    filter_configs={"gw_identity": identity_config()},
                    extra_upstreams={"identity_service": dead, "oauth_server": dead})
    down = Gateway(s, {})
    body = assert_denied(post_mcp(down, key(SERVICE_KEYS["sentinel-7"])), 503, "identity_unavailable")
    assert "validation service" in body["message"]
    body = assert_denied(post_mcp(down, bearer(services.token("admin-oauth"))), 503, "identity_unavailable")
    assert "introspection" in body["message"]
    assert post_mcp(down, key(DEMO_KEYS["admin-1"])).status_code == 200  # static keys first: no callout
    assert_denied(post_mcp(down, {}), 401, "missing_credentials")


# --------------------------------------------------------------------------- cache lifetime, callout bound


TIGHT_TOKEN_TTL = 2
TIGHT_MAX_CALLOUTS = 4
# One worker: the bound is per worker, and with one the test knows which
# worker's slots it fills (Envoy gives connections to workers as it likes).
TIGHT_WORKERS = 1


@pytest.fixture(scope="module")
def tight(start_stack: Callable[..., Stack], services: Services) -> Gateway:
    """A gateway with a 2 s token cache and 4 callouts in flight per worker
    (validation timeout 8 s, so slow callouts stay in flight)."""
    s = start_stack(
        "identity_tight",
        config="envoy/gateway.yaml",
        workers=TIGHT_WORKERS,
        filter_configs={"gw_identity": identity_config(
            8000, cache={"maxEntries": 1024, "tokenTtlSeconds": TIGHT_TOKEN_TTL},
            maxCalloutsInFlight=TIGHT_MAX_CALLOUTS)},
        extra_upstreams={"identity_service": services.identity_port, "oauth_server": services.oauth_port},
    )
    return Gateway(s, {})


@pytest.mark.timeout(60)
def test_revoked_token_is_refused_once_the_token_ttl_has_passed(tight: Gateway, services: Services) -> None:
    """Finding 5 of issue 10: a token revoked at the OAuth server (RFC 7009)
    stops working once its cache entry (tokenTtlSeconds) has expired, and the
    refused call never reaches the MCP server."""
    token = services.token("admin-oauth")
    before = tight.upstream_stats()["tools"].get("whoami", 0)
    assert post_mcp(tight, bearer(token), body=WHOAMI_CALL).status_code == 200
    assert tight.upstream_stats()["tools"].get("whoami", 0) == before + 1
    services.revoke("admin-oauth", token)
    time.sleep(TIGHT_TOKEN_TTL + 1)  # past the cache TTL: not a latency assertion
    introspections = services.introspections()
    r = post_mcp(tight, bearer(token), body=WHOAMI_CALL)
    assert_denied(r, 401, "invalid_token")
    assert challenge(r)["error"] == "invalid_token"
    assert services.introspections() == introspections + 1  # asked again, told inactive
    assert tight.upstream_stats()["tools"].get("whoami", 0) == before + 1


def _identity_counter(gw: Gateway, name: str) -> int:
    stats = gw.admin(f"/stats?filter=wasmcustom\\.gw\\.identity\\.{name}$")
    found = re.findall(rf"gw\.identity\.{name}: (\d+)", stats)
    return sum(int(n) for n in found)


@pytest.mark.timeout(120)
def test_unknown_key_flood_is_bounded_and_fails_closed(tight: Gateway, services: Services,
                                                      faults: Callable[..., None]) -> None:
    """200 random unknown keys at once against a slow validation service: the
    service never has more than maxCalloutsInFlight x workers calls in flight,
    every request beyond that is refused at once with 503 (and counted), the
    others get 401, and nothing reaches the MCP server."""
    faults(delayMs=3000)
    services.reset_identity_stats()
    upstream, opened = tight.upstream_stats()["methods"], tight.upstream_requests("mcp_upstream")
    rejected_before = _identity_counter(tight, "callouts_rejected")

    async def flood() -> list[httpx.Response]:
        # 4 HTTP/2 connections, 50 streams each. GET: the request is one HEADERS frame, so no client
        # is still sending a body when the gateway's 503 ends the stream.
        clients = [tight.ahttp(MCP_ACCEPT, http2=True) for _ in range(4)]
        try:
            calls = [clients[i % 4].get("/mcp", headers=key("flood-" + secrets.token_hex(12)))
                     for i in range(200)]
            return await asyncio.gather(*calls)
        finally:
            for c in clients:
                await c.aclose()

    responses = run(flood())
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {401, 503}, statuses
    busy = [r for r in responses if r.status_code == 503]
    for r in busy:
        body = assert_denied(r, 503, "identity_unavailable")
        assert "in flight" in body["message"], body
    stats = services.identity_stats()
    print(f"flood: {statuses.count(401)} x 401 (one callout each), {len(busy)} x 503 refused at the bound, "
          f"service max in flight {stats['maxInFlight']} (bound {TIGHT_MAX_CALLOUTS} x {TIGHT_WORKERS} workers)")
    assert 1 <= stats["maxInFlight"] <= TIGHT_MAX_CALLOUTS * TIGHT_WORKERS, stats
    assert busy, "no request was refused: the bound did not bite"
    # every 401 cost exactly one callout (random keys: no cache hits), every 503 none
    assert stats["validations"] == statuses.count(401), (stats, statuses.count(401))
    assert _identity_counter(tight, "callouts_rejected") - rejected_before == len(busy)
    assert tight.upstream_stats()["methods"] == upstream
    assert tight.upstream_requests("mcp_upstream") == opened
    assert all(r.http_version == "HTTP/2" for r in responses)
    tight.stack.assert_alive()
    # once the flood is over, slots are free again: a valid service key works
    faults()
    assert post_mcp(tight, key("svc-key-fault-3")).status_code == 200


@pytest.mark.timeout(120)
def test_reset_requests_give_their_callout_slots_back(tight: Gateway, services: Services,
                                                      faults: Callable[..., None]) -> None:
    """Clients that reset their requests while the validation callout is
    pending (Envoy cancels the callout and deletes the context) must not keep
    their slots: after three rounds that fill every slot and reset, unknown
    keys still get their callout (401), not 503."""
    faults(delayMs=3000)

    async def fill_and_reset() -> None:
        services.reset_identity_stats()
        client = tight.ahttp(MCP_ACCEPT, http2=True)
        calls = [asyncio.ensure_future(client.get("/mcp", headers=key("reset-" + secrets.token_hex(12))))
                 for _ in range(2 * TIGHT_MAX_CALLOUTS)]
        # wait (no time limit but the test's) until every slot holds a callout
        while services.identity_stats()["inFlight"] < TIGHT_MAX_CALLOUTS * TIGHT_WORKERS:
            await asyncio.sleep(0.05)
        for c in calls:
            c.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        await client.aclose()  # the connection goes: Envoy resets every stream on it

    for _ in range(3):
        run(fill_and_reset())
    faults()
    before = services.validations()
    with tight.http(MCP_ACCEPT) as c:
        for _ in range(TIGHT_MAX_CALLOUTS + 2):
            r = c.get("/mcp", headers=key("after-" + secrets.token_hex(12)))
            assert_denied(r, 401, "invalid_api_key")
    assert services.validations() - before == TIGHT_MAX_CALLOUTS + 2
    tight.stack.assert_alive()
