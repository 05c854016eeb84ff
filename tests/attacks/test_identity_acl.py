"""Identity and tool ACL attacks: missing, empty, bad, oversized and
misplaced credentials, a faulty key service, the recipe's rules (deny lists,
globs, default deny), confusable tool names, and tools/list never leaking
a tool an agent may not call. (Audience and revocation cases are in
tests/test_identity.py.)"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from attacks.support import (
    ALLOWED_CALL, DENIED, DENIED_CALL, SENTINEL_ALLOWED, AttackGateway, body_of, refused, rpc_result, tools_call,
)

pytestmark = pytest.mark.timeout(60)

ALL_TOOLS = {"whoami", "search_patterns", "classify_content", "read_config", "execute_code", "write_file",
             "generate_video", "render_scene", "read_template", "delete_scene", "deploy_application",
             "announce_tools_changed"}


# --------------------------------------------------------------------------- credentials


@pytest.mark.parametrize("hdrs", [
    {},
    {"x-agent-api-key": ""},
    {"x-agent-api-key": " "},
    {"x-agent-api-key": "gw-demo-sentinel-2"},
    {"x-agent-api-key": "GW-DEMO-ADMIN-1"},
    {"x-agent-api-key": "gw-demo-admin-1x"},
    {"x-agent-api-key": "k" * 8000},
    {"x-api-key": "gw-demo-admin-1"},
    {"authorization": "gw-demo-admin-1"},
    {"authorization": "Bearer gw-demo-admin-1"},
    {"authorization": "Basic " + "YWRtaW4tMTpndy1kZW1vLWFkbWluLTE="},
    {"authorization": "Bearer "},
    {"authorization": "Bearer not.a.jwt"},
    {"cookie": "x-agent-api-key=gw-demo-admin-1"},
    {"x-agent-api-key": "gw-demo-admin-1\u00e9"},
    {"x-agent-api-key": "gw-demo-admin-1\x00"},
    {"x-agent-api-key": "gw-demo-admin-1, gw-demo-admin-1"},
], ids=["none", "empty", "space", "unknown", "case", "suffix", "8k", "other-header", "raw-authorization",
        "key-as-bearer", "basic", "empty-bearer", "garbage-bearer", "cookie", "non-ascii",
        "nul", "list"])
def test_bad_credentials_reach_nothing(atk: AttackGateway, hdrs: dict[str, str]) -> None:
    # raw HTTP/1.1: httpx refuses to send some of these header values
    extra = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    w = atk.watch()
    rs = atk.h1(atk.mcp_req(key=None, length=len(ALLOWED_CALL), extra=extra) + ALLOWED_CALL)
    w.nothing()
    assert rs and rs[0].status in (400, 401, 403, 503), rs


def test_key_in_query_string_is_not_a_credential(atk: AttackGateway) -> None:
    w = atk.watch()
    r = atk.post("/mcp?x-agent-api-key=gw-demo-admin-1&api_key=gw-demo-admin-1", ALLOWED_CALL, key=None)
    w.nothing()
    assert r.status_code == 401, r.text


def test_disabled_agent_key_reaches_nothing(atk: AttackGateway) -> None:
    w = atk.watch()
    r = atk.post("/mcp", ALLOWED_CALL, key="svc-key-retired-1")
    w.nothing()
    assert r.status_code in (401, 403), r.text


def test_a2a_needs_credentials_too(atk: AttackGateway) -> None:
    from attacks.support import a2a_send

    w = atk.watch()
    r = atk.post("/a2a/tasks/send", a2a_send(), key=None)
    w.nothing()
    assert r.status_code == 401, r.text


@contextlib.contextmanager
def key_service_faults(atk: AttackGateway, **faults: Any) -> Iterator[None]:
    httpx.post(atk.identity_url + "/faults", json=faults, timeout=5).raise_for_status()
    try:
        yield
    finally:
        httpx.post(atk.identity_url + "/faults", json={}, timeout=5).raise_for_status()


@pytest.mark.parametrize("faults", [{"mode": "garbage"}, {"mode": "error"}, {"delayMs": 2500}],
                         ids=["garbage", "5xx", "slow"])
def test_faulty_key_service_fails_closed(atk: AttackGateway, faults: dict[str, Any]) -> None:
    """A key only the service knows, while the service is broken: refused, never let through."""
    key = atk.fresh("admin")
    w = atk.watch()
    with key_service_faults(atk, **faults):
        r = atk.post("/mcp", ALLOWED_CALL, key=key)
    w.nothing()
    assert r.status_code in (401, 503, 504), r.text


def test_faulty_key_service_does_not_poison_the_cache(atk: AttackGateway) -> None:
    """After the service recovers, the same key works (a failure is not cached as 'valid' or 'invalid')."""
    key = atk.fresh("sentinel")
    with key_service_faults(atk, mode="error"):
        assert atk.post("/mcp", ALLOWED_CALL, key=key).status_code == 503
    w = atk.watch()
    r = atk.post("/mcp", ALLOWED_CALL, key=key)
    assert r.status_code == 200, r.text
    w.only("search_patterns")


def test_service_agent_under_a_glob_rule_is_still_denied(atk: AttackGateway) -> None:
    """An agent only the key service knows (sentinel-atk-*) gets sentinel-*'s rules."""
    key = atk.fresh("sentinel")
    w = atk.watch()
    r = atk.post("/mcp/tools/call", DENIED_CALL, key=key)
    w.nothing()
    assert r.status_code == 403, r.text


# --------------------------------------------------------------------------- the recipe's rules


@pytest.mark.parametrize("key,tool", [
    ("gw-demo-sentinel-1", "execute_code"), ("gw-demo-sentinel-1", "write_file"),
    ("gw-demo-sentinel-1", "deploy_application"), ("gw-demo-sentinel-1", "whoami"),
    ("gw-demo-alchemy-1", "delete_scene"), ("gw-demo-alchemy-1", "execute_code"),
    ("gw-demo-alchemy-1", "search_patterns"),
])
@pytest.mark.parametrize("path", ["/mcp", "/mcp/tools/call"])
def test_recipe_denials_run_nothing(atk: AttackGateway, key: str, tool: str, path: str) -> None:
    w = atk.watch()
    r = atk.post(path, tools_call(tool, 1, code="1", path="/etc/passwd", content="x", scene_id="s"), key=key)
    w.nothing()
    assert refused(r.status_code, r.content), r.text
    if path == "/mcp/tools/call":
        assert r.status_code == 403 and r.json()["error"] == "tool_access_denied", r.text


@pytest.mark.parametrize("name", [
    "execute_cod\u0435",        # Cyrillic e
    "ｅｘｅｃｕｔｅ_code",          # fullwidth
    "execute\u200b_code",       # zero-width space
    "execute_code\u200d",       # zero-width joiner
    "Execute_Code", "EXECUTE_CODE", "execute_code ", " execute_code", "execute_code\t", "execute-code",
    "search_pattern\u0455",     # Cyrillic s: a confusable of an ALLOWED tool
    "search_patterns ", "Search_Patterns", "search_patterns\u0000", "search_patterns/../execute_code",
    "*", "search_*", "search_patterns,execute_code", "",
])
def test_confusable_tool_names_are_denied_and_never_reach_upstream(atk: AttackGateway, name: str) -> None:
    """sentinel-* allows exactly three names: anything else is refused at the gateway."""
    w = atk.watch()
    r = atk.post("/mcp", body_of(tools_call(name, 1, query="map")))
    w.nothing(f"({name!r})")
    assert refused(r.status_code, r.content), r.text


def test_allowed_tool_reaches_upstream_as_the_verified_agent(atk: AttackGateway) -> None:
    """Control for the rule cases: each allowed tool runs once."""
    key = atk.fresh("sentinel")
    w = atk.watch()
    for tool in SENTINEL_ALLOWED:
        r = atk.post("/mcp", tools_call(tool, 1, query="map", text="t", key="region"), key=key)
        assert r.status_code == 200 and not refused(r.status_code, r.content), r.text
    w.only(*SENTINEL_ALLOWED)


# --------------------------------------------------------------------------- tools/list


def listed(r: httpx.Response) -> set[str]:
    return {t["name"] for t in rpc_result(r)["result"]["tools"]}


@pytest.mark.parametrize("how", ["json", "sse-only", "recipe-path", "cursor"])
def test_tools_list_never_leaks_a_denied_tool(atk: AttackGateway, how: str) -> None:
    # the admin's full list first, so that the cache holds every tool
    admin = atk.post("/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, key="gw-demo-admin-1")
    assert listed(admin) == ALL_TOOLS
    req: dict[str, Any] = {"jsonrpc": "2.0", "id": "l", "method": "tools/list"}
    path, hdrs = "/mcp", {}
    if how == "sse-only":
        hdrs = {"accept": "text/event-stream"}
    elif how == "recipe-path":
        path = "/mcp/tools/list"
    elif how == "cursor":
        req["params"] = {"cursor": "0"}
    r = atk.post(path, req, headers=hdrs)
    assert r.status_code == 200, r.text
    assert listed(r) == set(SENTINEL_ALLOWED), r.text
    assert DENIED not in r.text and "write_file" not in r.text


def test_tools_list_in_a_batch_is_filtered(atk: AttackGateway) -> None:
    # (the example server refuses batches itself: whatever answers, no denied tool is named)
    r = atk.post("/mcp", json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]).encode())
    assert DENIED not in r.text and "write_file" not in r.text and "delete_scene" not in r.text, r.text


def test_tools_list_over_h2_in_a_batch_with_a_denied_call(atk: AttackGateway) -> None:
    w = atk.watch()
    with atk.h2() as c:
        st = c.wait(c.request(json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                          tools_call(DENIED, 2)]).encode()))
    w.nothing()
    assert DENIED.encode() not in st.body.replace(b"'execute_code'", b"")
