"""Tool ACL end to end: stock Envoy + the tool-acl filter + the example MCP
server (official Python SDK), driven by the official MCP client and raw httpx.

Identity for these tests (TEST-ONLY): the stacks here replace the identity
filter with Envoy's native `set_filter_state` filter, which copies the
request header `x-test-identity` (VerifiedIdentity JSON) into the filter
state `wasm.gw_identity` that the identity filter publishes in production.
That header exists only in the configs rendered below; the shipped
envoy/gateway.yaml never trusts a client header for identity (checked by
`test_shipped_config_trusts_no_identity_header`). The tool-acl filter itself
has no header backdoor: it reads filter state only.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import DEMO_KEYS, ROOT, Gateway
from gwstack import ONE_MODULE, Stack
from gwstack.support import MCP_HEADERS, TEST_IDENTITY_HEADER, run
from support import ALCHEMY, SENTINEL, AclGateway, ident, inject_test_identity, listed, rpc_body, shipped_acl_config

pytestmark = pytest.mark.timeout(120)

RECIPE_TOOLS = {
    "search_patterns", "classify_content", "read_config", "execute_code", "write_file",
    "generate_video", "render_scene", "read_template", "delete_scene", "deploy_application",
}


def extended_acl_config() -> dict[str, Any]:
    c = shipped_acl_config()
    c["accessRules"][0]["allowedResources"] = ["config://*"]
    c["accessRules"][0]["allowedPrompts"] = ["summarize_*"]
    c["applyTo"]["methods"] = ["resources/read", "prompts/get"]
    c["batches"] = "reject"
    c["maxBodyBytes"] = 4096
    c["deniedResponse"]["format"] = "http"
    c["toolsList"] = {"cache": {"ttlSeconds": 2}}
    return c


@pytest.fixture(scope="module")
def acl(start_stack: Callable[..., Stack]) -> AclGateway:
    """envoy/gateway.yaml as shipped (the recipe's ACL block), identity from the test header."""
    return AclGateway(start_stack("tool_acl", config="envoy/gateway.yaml", patch=inject_test_identity), {})


@pytest.fixture(scope="module")
def acl_ext(start_stack: Callable[..., Stack]) -> AclGateway:
    """The recipe's rules plus resources/prompts, batch rejection, a 4 KiB body
    limit, HTTP denials everywhere and a 2 s tools/list TTL."""
    return AclGateway(start_stack("tool_acl_ext", config="envoy/gateway.yaml", patch=inject_test_identity,
                                  filter_configs={"gw_tool_acl": extended_acl_config()}), {})


def tools_call(name: str, id_: Any = 1, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


# --------------------------------------------------------------------------- official client


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_sentinel_allowed_denied_and_session_survives(acl: AclGateway, mode: str) -> None:
    from mcp import MCPError

    before = acl.tool_runs("execute_code")

    async def go() -> None:
        async with acl.mcp_client(headers=ident("sentinel-1"), mode=mode) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert tools == SENTINEL
            r = await client.call_tool("search_patterns", {"query": "map"})
            assert not r.is_error and r.structured_content["matches"] == ["map-object"]
            with pytest.raises(MCPError) as denied:
                await client.call_tool("execute_code", {"code": "print(1)"})
            err = denied.value.error
            assert err.code == -32001
            assert err.message == "Agent 'sentinel-1' is not authorized to invoke tool 'execute_code'"
            assert err.data == {
                "error": "tool_access_denied",
                "message": "Agent 'sentinel-1' is not authorized to invoke tool 'execute_code'",
                "allowedTools": "search_patterns, classify_content, read_config",
            }
            # the session keeps working after the denial
            r = await client.call_tool("read_config", {"key": "region"})
            assert not r.is_error and r.structured_content["value"] == "eu-west-1"

    run(go())
    assert acl.tool_runs("execute_code") == before


def test_alchemy_streaming_tool_and_denied_glob(acl: AclGateway) -> None:
    from mcp import MCPError

    async def go() -> None:
        progress: list[float] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(p)

        async with acl.mcp_client(headers=ident("alchemy-1")) as client:
            assert {t.name for t in (await client.list_tools()).tools} == ALCHEMY
            r = await client.call_tool("generate_video", {"prompt": "a cat", "steps": 4}, progress_callback=on_progress)
            assert not r.is_error and r.structured_content["frames"] == 96
            assert progress == [1, 2, 3, 4]  # SSE events passed through the rewriter intact
            for tool in ("delete_scene", "search_patterns"):
                with pytest.raises(MCPError) as denied:
                    await client.call_tool(tool, {"scene_id": "s1"})
                assert denied.value.error.code == -32001
                assert "render_scene" in denied.value.error.data["allowedTools"]

    run(go())


def test_admin_sees_everything_unknown_sees_nothing(acl: AclGateway) -> None:
    from mcp import MCPError

    async def names(headers: dict[str, str]) -> set[str]:
        async with acl.mcp_client(headers=headers) as client:
            return {t.name for t in (await client.list_tools()).tools}

    assert RECIPE_TOOLS <= run(names(ident("admin-1")))
    assert run(names(ident("intern-1"))) == set()
    assert run(names({})) == set()
    # a client header claiming to be verified is not an identity
    assert run(names({"x-verified-agent-id": "admin-1"})) == set()

    async def call(headers: dict[str, str]) -> Any:
        async with acl.mcp_client(headers=headers) as client:
            with pytest.raises(MCPError) as denied:
                await client.call_tool("search_patterns", {"query": "x"})
            return denied.value.error

    err = run(call({}))
    assert err.message == "Agent 'unknown' is not authorized to invoke tool 'search_patterns'"
    assert err.data["allowedTools"] == ""
    assert run(call(ident("intern-1"))).message.startswith("Agent 'intern-1'")


def test_match_by_agent_name(start_stack: Callable[..., Stack]) -> None:
    cfg = shipped_acl_config() | {"matchAgentBy": "agentName"}
    gw = AclGateway(start_stack("tool_acl_by_name", config="envoy/gateway.yaml", patch=inject_test_identity,
                                filter_configs={"gw_tool_acl": cfg}, backends=("mcp",)), {})
    with gw.http(MCP_HEADERS | ident("a1b2c3", name="sentinel-scanner")) as c:
        assert listed(c.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})) == SENTINEL
    with gw.http(MCP_HEADERS | ident("sentinel-1", name="someone")) as c:
        assert listed(c.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})) == set()


def test_http_403_on_the_single_endpoint_loses_the_denial(acl_ext: AclGateway) -> None:
    """Why JSON-RPC is the default on /mcp: with the recipe's 403 the official
    client (mcp 2.3.0) keeps its session but reports only a generic -32603
    "Server returned an error response": the denial body never reaches the
    caller. With the JSON-RPC form it gets the configured message and data
    (test_sentinel_allowed_denied_and_session_survives)."""
    from mcp import MCPError

    async def go() -> None:
        async with acl_ext.mcp_client(headers=ident("sentinel-1")) as client:
            with pytest.raises(MCPError) as denied:
                await client.call_tool("execute_code", {"code": "x"})
            assert denied.value.error.code == -32603
            assert denied.value.error.data is None
            assert "not authorized" not in str(denied.value)
            r = await client.call_tool("read_config", {"key": "region"})
            assert not r.is_error

    run(go())


# --------------------------------------------------------------------------- denial shapes


def test_recipe_path_gets_the_recipe_403_exactly(acl: AclGateway) -> None:
    with acl.http(MCP_HEADERS | ident("sentinel-1")) as c:
        r = c.post("/mcp/tools/call", json=tools_call("execute_code", code="x"))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/json"
    assert r.text == (
        "{\n"
        '  "error": "tool_access_denied",\n'
        '  "message": "Agent \'sentinel-1\' is not authorized to invoke tool \'execute_code\'",\n'
        '  "allowedTools": "search_patterns, classify_content, read_config"\n'
        "}\n"
    )
    assert r.headers["x-test-decision"] == "tool_denied"


def test_jsonrpc_denial_echoes_the_request_id(acl: AclGateway) -> None:
    with acl.http(MCP_HEADERS | ident("alchemy-1")) as c:
        for id_ in ("req-7", 42):
            r = c.post("/mcp", json=tools_call("delete_scene", id_=id_, scene_id="s"))
            assert r.status_code == 200
            body = r.json()
            assert body["id"] == id_ and body["error"]["code"] == -32001
            assert body["error"]["data"]["allowedTools"] == "generate_video, render_scene, read_template"
    assert r.headers["x-test-decision"] == "tool_denied"


def test_allowed_call_on_recipe_path(acl: AclGateway) -> None:
    with acl.http(MCP_HEADERS | ident("sentinel-1")) as c:
        r = c.post("/mcp/tools/call", json=tools_call("read_config", key="region"))
    assert r.status_code == 200 and rpc_body(r)["result"]["structuredContent"]["value"] == "eu-west-1"


# --------------------------------------------------------------------------- no bypass


def _refused(gw: AclGateway, send: Callable[[httpx.Client], httpx.Response], statuses: set[int],
             code: int | None = None, tool: str = "execute_code") -> httpx.Response:
    before = gw.tool_runs(tool)
    with gw.http(MCP_HEADERS | ident("sentinel-1")) as c:
        r = send(c)
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    if code is not None:
        body = r.json()
        errors = body if isinstance(body, list) else [body]
        assert all(e["error"]["code"] == code for e in errors), body
    assert gw.tool_runs(tool) == before, f"{tool} ran upstream"
    return r


def test_batch_hiding_a_denied_call(acl: AclGateway) -> None:
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, tools_call("execute_code", id_=2, code="x"),
             {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    r = _refused(acl, lambda c: c.post("/mcp", json=batch), {200})
    body = r.json()
    assert [m["id"] for m in body] == [1, 2]
    assert body[1]["error"]["code"] == -32001 and "execute_code" in body[1]["error"]["message"]
    assert body[0]["error"]["message"].startswith("not executed")


def test_batches_rejected_when_configured(acl_ext: AclGateway) -> None:
    batch = [tools_call("read_config", id_=1, key="region")]
    _refused(acl_ext, lambda c: c.post("/mcp", json=batch), {400}, -32600, tool="read_config")


@pytest.mark.parametrize("raw", [
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_config","name":"execute_code","arguments":{"code":"x"}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"execute_code","arguments":{"code":"x"}}}',
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute_code","arguments":{"code":"x"}}',
], ids=["duplicate-name", "duplicate-method", "truncated"])
def test_duplicate_keys_and_broken_json(acl: AclGateway, raw: bytes) -> None:
    _refused(acl, lambda c: c.post("/mcp", content=raw, headers={"content-type": "application/json"}), {400}, -32700)


def test_unicode_escaped_name(acl: AclGateway) -> None:
    raw = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\u0065xecute_code","arguments":{"code":"x"}}}'
    r = _refused(acl, lambda c: c.post("/mcp", content=raw, headers={"content-type": "application/json"}), {200}, -32001)
    assert "'execute_code'" in r.json()["error"]["message"]


@pytest.mark.parametrize("headers", [
    {"content-encoding": "gzip"},
    {"content-encoding": "br"},
    [("content-encoding", "identity"), ("content-encoding", "gzip")],
], ids=["gzip", "br", "identity-then-gzip"])
def test_compressed_bodies(acl: AclGateway, headers: Any) -> None:
    body = gzip.compress(json.dumps(tools_call("execute_code", code="x")).encode())
    hdrs = httpx.Headers(headers)
    hdrs["content-type"] = "application/json"
    r = _refused(acl, lambda c: c.post("/mcp", content=body, headers=hdrs), {415}, -32600)
    assert "uncompressed" in r.json()["error"]["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None])
def test_non_json_content_types(acl: AclGateway, content_type: str | None) -> None:
    raw = json.dumps(tools_call("execute_code", code="x")).encode()

    def send(c: httpx.Client) -> httpx.Response:
        req = c.build_request("POST", "/mcp", content=raw)
        req.headers.pop("content-type", None)
        if content_type:
            req.headers["content-type"] = content_type
        return c.send(req)

    _refused(acl, send, {415}, -32600)


def test_oversized_bodies(acl: AclGateway, acl_ext: AclGateway) -> None:
    big = json.dumps(tools_call("execute_code", code="x" * (1 << 20))).encode()
    _refused(acl, lambda c: c.post("/mcp", content=big, headers={"content-type": "application/json"}), {413})

    def chunks() -> Any:
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    # no Content-Length: the limit holds while the body streams in
    _refused(acl, lambda c: c.post("/mcp", content=chunks(), headers={"content-type": "application/json"}), {413})
    # configurable limit
    small = json.dumps(tools_call("read_config", key="r" * 5000)).encode()
    r = _refused(acl_ext, lambda c: c.post("/mcp", content=small, headers={"content-type": "application/json"}), {413},
                 -32600, tool="read_config")
    assert "4096" in r.json()["error"]["message"]


@pytest.mark.parametrize("raw_path,statuses", [
    # With held headers the ACL judges the body before the router's 404 for
    # a path no route matches; either way the call is refused.
    (b"/MCP/tools/call", {403, 404}),            # Envoy: case-sensitive routes
    (b"//mcp//tools/call", {403}),               # merge_slashes, then the ACL
    (b"/mcp%2Ftools%2Fcall", {400}),             # Envoy: escaped slashes rejected
    (b"/mcp/tools/call/", {403, 404}),
    (b"/mcp/./tools/call", {403}),               # normalize_path
    (b"/mcp/x/../tools/call", {403}),
    (b"/mcp/%74ools/call", {403}),               # %74 = t
    (b"/mcp?x=/tools/call", {200}),              # JSON-RPC denial on the single endpoint
])
def test_path_tricks(acl: AclGateway, raw_path: bytes, statuses: set[int]) -> None:
    url = httpx.URL(acl.base_url).copy_with(raw_path=raw_path)
    r = _refused(acl, lambda c: c.post(url, json=tools_call("execute_code", code="x")), statuses)
    if r.status_code == 200:
        assert r.json()["error"]["code"] == -32001


@pytest.mark.parametrize("headers", [
    {"mcp-method": "tools/list"},
    {"mcp-method": "tools/call", "mcp-name": "read_config"},
    {"mcp-name": "read_config"},
    {"mcp-method": "tools/call", "mcp-name": "=?base64?cmVhZF9jb25maWc=?="},   # read_config, encoded
], ids=["method", "name", "name-only", "name-base64"])
def test_mcp_headers_that_disagree_with_the_body(acl: AclGateway, headers: dict[str, str]) -> None:
    r = _refused(acl, lambda c: c.post("/mcp", json=tools_call("execute_code", id_="m1", code="x"), headers=headers),
                 {400}, -32020)
    assert r.json()["id"] == "m1"
    assert r.headers["x-test-decision"] == "bad_request"


def test_mcp_headers_that_agree_are_judged_normally(acl: AclGateway) -> None:
    hdrs = {"mcp-method": "tools/call", "mcp-name": "=?base64?ZXhlY3V0ZV9jb2Rl?="}  # execute_code
    _refused(acl, lambda c: c.post("/mcp", json=tools_call("execute_code", code="x"), headers=hdrs), {200}, -32001)


def test_malformed_calls(acl: AclGateway) -> None:
    nameless = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"arguments": {}}}
    _refused(acl, lambda c: c.post("/mcp", json=nameless), {400}, -32602)
    numeric = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 7}}
    _refused(acl, lambda c: c.post("/mcp", json=numeric), {400}, -32602)


def test_non_utf8_headers_do_not_kill_the_filter(acl: AclGateway) -> None:
    with acl.http(MCP_HEADERS | ident("sentinel-1")) as c:
        r = c.post("/mcp", json=tools_call("read_config", key="region"), headers=[(b"mcp-name", b"read_\xffconfig")])
        assert r.status_code == 400 and r.json()["error"]["code"] == -32020
        r = c.post("/mcp", json=tools_call("read_config", key="region"))
        assert r.status_code == 200
    assert "panicked" not in acl.log()


@pytest.mark.parametrize("agent,visible", [("sentinel-1", SENTINEL), ("alchemy-1", ALCHEMY)])
def test_shipped_chain_with_the_real_identity_filter(gateway: Gateway, agent: str, visible: set[str]) -> None:
    """The shipped gateway.yaml end to end: the identity filter verifies a demo
    API key and publishes `gw_identity`; the ACL applies that agent's rule."""
    from mcp import MCPError

    before = gateway.upstream_stats()["tools"].get("execute_code", 0)

    async def go() -> None:
        async with gateway.mcp_client(headers={"x-agent-api-key": DEMO_KEYS[agent]}) as client:
            assert {t.name for t in (await client.list_tools()).tools} == visible
            with pytest.raises(MCPError) as denied:
                await client.call_tool("execute_code", {"code": "x"})
            assert denied.value.error.message == f"Agent '{agent}' is not authorized to invoke tool 'execute_code'"

    run(go())
    assert gateway.upstream_stats()["tools"].get("execute_code", 0) == before
    with gateway.http({"x-agent-api-key": DEMO_KEYS[agent]} | MCP_HEADERS) as c:
        r = c.post("/mcp/tools/call", json=tools_call("execute_code", code="x"))
        assert r.status_code == 403 and r.json()["error"] == "tool_access_denied"
        if agent == "sentinel-1":
            call = tools_call("read_config", key="region")
        else:
            call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "read_template", "arguments": {"name": "t"}}}
        r = c.post("/mcp", json=call)
        assert r.status_code == 200 and rpc_body(r)["result"]["isError"] is False
        assert rpc_body(r)["result"]["structuredContent"]["verified"]["agentId"] == agent


def test_shipped_config_trusts_no_identity_header(gateway: Gateway) -> None:
    """The shipped gateway.yaml has no test-identity path, and a client claiming
    an identity by header gets nothing from the ACL."""
    text = (ROOT / "envoy" / "gateway.yaml").read_text()
    assert TEST_IDENTITY_HEADER not in text and "set_filter_state" not in text
    before = gateway.upstream_stats()["tools"].get("read_config", 0)
    claims = ident("admin-1") | {"x-verified-agent-id": "admin-1", "x-verified-agent-name": "admin-1"}
    with httpx.Client(base_url=gateway.base_url, verify=gateway.ssl_context(), timeout=30) as c:  # no API key
        r = c.post("/mcp", json=tools_call("read_config", key="region"), headers=MCP_HEADERS | claims)
    assert r.status_code in (200, 401, 403)
    if r.status_code == 200:
        assert r.json()["error"]["code"] == -32001
    assert gateway.upstream_stats()["tools"].get("read_config", 0) == before


# --------------------------------------------------------------------------- resources / prompts


def test_resources_and_prompts_when_configured(acl_ext: AclGateway) -> None:
    read = {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "config://gateway-example"}}
    with acl_ext.http(MCP_HEADERS | ident("sentinel-1")) as c:
        r = c.post("/mcp", json=read)
        assert r.status_code == 200 and "example" in rpc_body(r)["result"]["contents"][0]["text"]
        # allowed by the ACL, answered by the server (which has no such prompt)
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "summarize_x"}})
        assert r.status_code == 200 and "tool_access_denied" not in r.text
        # lists show only what the agent may read / get (SSE for 2025-06-18, as
        # in the tools/list test below; whatever the server picks for 2025-11-25)
        kinds = set()
        for version in ("2025-06-18", "2025-11-25"):
            h = {"mcp-protocol-version": version}
            r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 5, "method": "resources/list"}, headers=h)
            assert r.status_code == 200, r.text
            assert [x["uri"] for x in rpc_body(r)["result"]["resources"]] == ["config://gateway-example"], r.text
            kinds.add(r.headers["content-type"].split(";")[0])
            r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 6, "method": "prompts/list"}, headers=h)
            assert [x["name"] for x in rpc_body(r)["result"]["prompts"]] == ["summarize_text"], r.text
        assert "text/event-stream" in kinds
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": "other"}})
        assert r.status_code == 403 and "'other'" in r.text
    with acl_ext.http(MCP_HEADERS | ident("alchemy-1")) as c:
        r = c.post("/mcp", json=read)
        assert r.status_code == 403 and "config://gateway-example" in r.json()["message"]
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 7, "method": "resources/list"})
        assert rpc_body(r)["result"]["resources"] == [], r.text
    # not governed in the shipped config
    with acl_ext.http(MCP_HEADERS | ident("alchemy-1")) as c:
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 4, "method": "resources/list"})
        assert r.status_code == 200


# --------------------------------------------------------------------------- tools/list


def test_tools_list_sse_and_json_responses_are_filtered(acl: AclGateway) -> None:
    """Cache misses (a protocol version no other test uses) so the upstream
    answers: SSE for 2025-06-18, JSON for 2026-07-28."""
    with acl.http(ident("sentinel-1")) as c:
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": "sse-1", "method": "tools/list"},
                   headers={"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"})
        assert r.headers["content-type"].startswith("text/event-stream"), r.headers
        assert listed(r) == SENTINEL and rpc_body(r)["id"] == "sse-1"
        meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {"_meta": meta}},
                   headers={"accept": "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28",
                            "mcp-method": "tools/list"})
        assert r.headers["content-type"].startswith("application/json"), r.headers
        assert "content-length" not in r.headers or int(r.headers["content-length"]) == len(r.content)
        body = r.json()
        assert listed(r) == SENTINEL and body["id"] == 9
        assert body["result"]["cacheScope"] == "private" and body["result"]["ttlMs"] == 0


def test_tools_list_cache_counts_upstream_calls(acl: AclGateway) -> None:
    acl.announce_tools_changed()  # empties the cache
    acl.upstream_reset()
    views: dict[str, set[str]] = {}

    async def names(agent: str) -> set[str]:
        async with acl.mcp_client(headers=ident(agent)) as client:
            return {t.name for t in (await client.list_tools()).tools}

    hits = acl.counter("tools_list_cache_hit")
    for agent in ("admin-1", "sentinel-1", "alchemy-1", "intern-1", "sentinel-2", "admin-2"):
        views[agent] = run(names(agent))
    assert acl.upstream_count() == 1, acl.upstream_stats()
    assert acl.counter("tools_list_cache_hit") - hits == 5
    # never one agent's view for another, whoever filled the cache
    assert views["sentinel-1"] == views["sentinel-2"] == SENTINEL
    assert views["alchemy-1"] == ALCHEMY
    assert views["intern-1"] == set()
    assert RECIPE_TOOLS <= views["admin-1"] == views["admin-2"]

    # served locally with the request's own id, in the upstream's form (SSE
    # here) unless the client accepts only one (test_mcp_cache_form.py)
    with acl.http(ident("alchemy-1")) as c:
        for accept, kind in (("application/json, text/event-stream", "text/event-stream"),
                             ("application/json", "application/json"),
                             ("text/event-stream", "text/event-stream")):
            r = c.post("/mcp", json={"jsonrpc": "2.0", "id": f"own-{kind}", "method": "tools/list"},
                       headers={"accept": accept, "mcp-protocol-version": "2025-11-25"})
            assert r.headers["content-type"].startswith(kind)
            assert rpc_body(r)["id"] == f"own-{kind}" and listed(r) == ALCHEMY
    assert acl.upstream_count() == 1

    # a list_changed notification from the server drops the cache
    invalidated = acl.counter("tools_list_cache_invalidated")
    acl.announce_tools_changed()
    assert acl.counter("tools_list_cache_invalidated") == invalidated + 1
    assert run(names("sentinel-1")) == SENTINEL
    assert acl.upstream_count() == 2
    assert run(names("alchemy-1")) == ALCHEMY
    assert acl.upstream_count() == 2


def test_upstream_ttl_ms_zero_is_not_cached(acl: AclGateway) -> None:
    """2026-07-28 results of this server say ttlMs 0 (immediately stale)."""
    acl.upstream_reset()

    async def names() -> set[str]:
        async with acl.mcp_client(headers=ident("sentinel-1"), mode="auto") as client:
            return {t.name for t in (await client.list_tools()).tools}

    for _ in range(3):
        assert run(names()) == SENTINEL
    assert acl.upstream_count() == 3


def test_tools_list_cache_ttl(acl_ext: AclGateway) -> None:
    acl_ext.announce_tools_changed()
    acl_ext.upstream_reset()
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    with acl_ext.http(MCP_HEADERS | ident("sentinel-1")) as c:
        assert listed(c.post("/mcp", json=body)) == SENTINEL
        assert listed(c.post("/mcp", json=body)) == SENTINEL
        assert acl_ext.upstream_count() == 1
        time.sleep(2.3)
        assert listed(c.post("/mcp", json=body)) == SENTINEL
        assert acl_ext.upstream_count() == 2
        # params the cache does not key on go upstream
        c.post("/mcp", json=body | {"params": {"cursor": "nope", "extra": 1}})
        assert acl_ext.upstream_count() == 3


def test_counters_move_and_the_filter_stays_alive(acl: AclGateway) -> None:
    before = {k: acl.counter(k) for k in ("requests", "mcp_requests", "allowed", "denied", "bad_request")}
    with acl.http(MCP_HEADERS | ident("sentinel-1")) as c:
        assert c.post("/mcp", json=tools_call("read_config", key="region")).status_code == 200
        assert c.post("/mcp", json=tools_call("write_file", path="p", content="c")).json()["error"]["code"] == -32001
        assert c.post("/mcp", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    after = {k: acl.counter(k) for k in before}
    assert after["mcp_requests"] - before["mcp_requests"] == 3
    assert after["requests"] - before["requests"] >= 3
    assert {k: after[k] - before[k] for k in ("allowed", "denied", "bad_request")} == \
        {"allowed": 1, "denied": 1, "bad_request": 1}
    vm = "gw_gateway" if ONE_MODULE else "gw_tool_acl"
    assert f"wasm.{vm}.vm_reload_failure: 0" in acl.admin(f"/stats?filter=^wasm.{vm}")
    assert "panicked" not in acl.log()


def test_tool_lists_too_large_to_filter_are_withheld(start_stack: Callable[..., Stack]) -> None:
    """Fail closed: a list over toolsList.maxResponseBytes is replaced by a
    JSON-RPC error, never passed unfiltered (JSON and SSE answers)."""
    cfg = shipped_acl_config() | {"toolsList": {"maxResponseBytes": 600, "cache": {"enabled": False}}}
    gw = AclGateway(start_stack("tool_acl_small", config="envoy/gateway.yaml", patch=inject_test_identity,
                                filter_configs={"gw_tool_acl": cfg}, backends=("mcp",)), {})
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    with gw.http(ident("sentinel-1")) as c:
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": "big", "method": "tools/list", "params": {"_meta": meta}},
                   headers={"accept": "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28",
                            "mcp-method": "tools/list"})
        assert r.json() == {"jsonrpc": "2.0", "id": "big", "error": {
            "code": -32603, "message": "tools/list response too large for the gateway to filter"}}
        r = c.post("/mcp", json={"jsonrpc": "2.0", "id": "big-sse", "method": "tools/list"}, headers=MCP_HEADERS)
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "execute_code" not in r.text and "search_patterns" not in r.text
        assert rpc_body(r)["error"]["code"] == -32603
    # a big event on a stream that answers no tools/list passes untouched
    with gw.http(ident("admin-1") | MCP_HEADERS) as c:
        r = c.post("/mcp", json=tools_call("whoami", id_="w"))
        assert r.headers["content-type"].startswith("text/event-stream")
        assert len(r.content) > 600
        assert rpc_body(r)["result"]["isError"] is False


# --------------------------------------------------------------------------- header hold


def test_denied_call_never_reaches_the_upstream_not_even_its_headers(gateway: Gateway) -> None:
    """The shipped config holds request headers until the body is judged
    (holdRequestHeaders + allow_on_headers_stop_iteration): Envoy opens no
    upstream request for a denied call, where without the hold the server
    would see the headers and then a reset."""
    with gateway.http({"x-agent-api-key": DEMO_KEYS["sentinel-1"]} | MCP_HEADERS) as c:
        before = gateway.upstream_requests("mcp_upstream")
        for i in range(3):
            r = c.post("/mcp", json=tools_call("execute_code", id_=i, code="x"))
            assert r.status_code == 200 and rpc_body(r)["error"]["code"] == -32001
        assert gateway.upstream_requests("mcp_upstream") == before
        # An allowed call after the held ones still goes through, body and all.
        r = c.post("/mcp", json=tools_call("read_config", key="region"))
        assert r.status_code == 200 and rpc_body(r)["result"]["isError"] is False
        assert gateway.upstream_requests("mcp_upstream") == before + 1


def test_tool_lists_are_never_compressed_past_the_filter(acl: AclGateway) -> None:
    """The gateway filters tool lists in the answer, so it must read the
    answer: the client's Accept-Encoding never reaches the MCP server, and
    the list comes back filtered."""
    before = acl.upstream_stats().get("http", {}).get("accept-encoding", 0)
    with acl.http(MCP_HEADERS | ident("sentinel-1")) as c:
        for enc in ("gzip", "br, gzip;q=1", "identity"):
            r = c.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                       headers={"accept-encoding": enc})
            assert r.status_code == 200
            assert "content-encoding" not in r.headers or r.headers["content-encoding"] == "identity"
            assert listed(r) <= SENTINEL | {"whoami"}, listed(r)
        r = c.post("/mcp", json=tools_call("read_config", key="region"), headers={"accept-encoding": "gzip"})
        assert r.status_code == 200
    assert acl.upstream_stats().get("http", {}).get("accept-encoding", 0) == before
