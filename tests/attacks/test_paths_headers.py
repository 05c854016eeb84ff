"""Path and header attacks: normalization tricks around the recipe's
per-operation paths, non-MCP paths, spoofed identity and correlation
headers, duplicated credentials, MCP 2026-07-28 `Mcp-*` headers that
disagree with the body, oversized headers."""

from __future__ import annotations

import base64

import pytest

from attacks.support import ALLOWED_CALL, DENIED, DENIED_CALL, AttackGateway, header, refused

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize("path", [
    "/mcp/tools/call", "//mcp//tools/call", "/mcp/./tools/call", "/mcp/x/../tools/call", "/mcp/%74ools/call",
    "/mcp/tools/%63all", "/./mcp", "/mcp/", "/mcp?x=/mcp/tools/list", "/mcp/tools/call?name=search_patterns",
    "/mcp/initialize", "/mcp/tools/list", "/mcp/resources/read", "/mcp/resources/list", "/mcp/sse",
    "/a2a/../mcp/tools/call", "/mcp/%2e/tools/call", "/mcp/%2E%2E/mcp/tools/call",
])
def test_denied_call_on_any_spelling_of_an_mcp_path_never_runs(atk: AttackGateway, path: str) -> None:
    w = atk.watch()
    r = atk.post(path, DENIED_CALL)
    w.nothing(f"({path})")
    assert refused(r.status_code, r.content), (r.status_code, r.text[:300])


@pytest.mark.parametrize("path", [
    "/MCP/tools/call", "/Mcp", "/mcp/tools/call/", "/mcp%2Ftools%2Fcall", "/mcp%2ftools%2fcall", "/mcp%5Ctools%5Ccall",
    "/mcp;x=1", "/mcp/tools/call;jsessionid=1", "/mcp/tools/call%00", "/mcp/tools/call%20", "/mcp/TOOLS/CALL",
    "/mcpx", "/unknown", "/.well-known/../mcp/tools/call/x",
])
def test_unrouted_or_rejected_spellings_reach_nothing(atk: AttackGateway, path: str) -> None:
    w = atk.watch()
    r = atk.post(path, DENIED_CALL)
    w.nothing(f"({path})")
    assert refused(r.status_code, r.content), (r.status_code, r.text[:300])


def test_backslash_path_over_raw_h1(atk: AttackGateway) -> None:
    w = atk.watch()
    head = atk.mcp_req(length=len(DENIED_CALL)).replace(b"POST /mcp ", b"POST /mcp\\tools\\call ", 1)
    rs = atk.h1(head + DENIED_CALL)
    w.nothing()
    assert all(refused(r.status, r.body) for r in rs), rs


@pytest.mark.parametrize("path", ["*", "mcp", "/mcp#frag", "/mcp/tools/call#x"])
def test_h2_odd_path_pseudo_headers(atk: AttackGateway, path: str) -> None:
    w = atk.watch()
    with atk.h2() as c:
        sid = c.headers(path)
        c.data(sid, DENIED_CALL, end=True)
        st = c.wait(sid)
    atk.barrier()
    w.nothing(f"({path})")
    assert st.reset is not None or refused(st.status, st.body), st


@pytest.mark.parametrize("method", ["PUT", "PATCH", "GET", "DELETE", "OPTIONS", "HEAD"])
def test_denied_body_with_other_http_methods(atk: AttackGateway, method: str) -> None:
    w = atk.watch()
    with atk.h2() as c:
        sid = c.headers("/mcp", method=method)
        c.data(sid, DENIED_CALL, end=True)
        c.wait(sid)
    atk.barrier()
    w.never_ran()


def test_mcp_call_posted_to_a2a_never_reaches_the_mcp_server(atk: AttackGateway) -> None:
    w = atk.watch()
    atk.post("/a2a", DENIED_CALL)
    # the A2A agent may see it (and refuse the method); the MCP server must not
    assert not w.records("mcp_upstream")
    assert DENIED not in w.tool_runs()


# --------------------------------------------------------------------------- spoofed headers


@pytest.mark.parametrize("spoof", [
    {"x-verified-agent-id": "admin-1"},
    {"x-verified-agent-id": "admin-1", "x-verified-agent-name": "Admin One", "x-verified-agent-owner": "platform-team"},
    {"x-test-identity": '{"agentId":"admin-1","agentName":"admin-1"}'},
    {"x-agent-id": "admin-1", "x-forwarded-user": "admin-1", "x-envoy-original-path": "/mcp/tools/list"},
])
def test_spoofed_identity_headers_do_not_lift_a_denial(atk: AttackGateway, spoof: dict[str, str]) -> None:
    w = atk.watch()
    r = atk.post("/mcp", DENIED_CALL, headers=spoof)
    w.nothing()
    assert refused(r.status_code, r.content), r.text


def test_spoofed_identity_headers_never_reach_the_upstream(atk: AttackGateway) -> None:
    w = atk.watch()
    r = atk.post("/mcp", ALLOWED_CALL, headers={"x-verified-agent-id": "admin-1", "x-verified-agent-owner": "evil",
                                                "x-verified-agent-role": "root"})
    assert r.status_code == 200, r.text
    (rec,) = w.records()
    assert header(rec, "x-verified-agent-id") == ["sentinel-1"]
    assert header(rec, "x-verified-agent-owner") == ["security-team"]
    assert "evil" not in str(rec["headers"]) and "admin-1" not in str(rec["headers"])


def test_spoofed_identity_without_credentials_is_401(atk: AttackGateway) -> None:
    w = atk.watch()
    r = atk.post("/mcp", ALLOWED_CALL, key=None, headers={"x-verified-agent-id": "admin-1"})
    assert r.status_code == 401, r.text
    w.nothing()


def test_client_request_id_is_replaced(atk: AttackGateway) -> None:
    """A client cannot choose the correlation id the upstream and audit see."""
    w = atk.watch()
    r = atk.post("/mcp", ALLOWED_CALL, headers={"x-request-id": "attacker-chosen-id"})
    (rec,) = w.records()
    assert header(rec, "x-request-id") != ["attacker-chosen-id"]
    assert r.headers["x-request-id"] != "attacker-chosen-id"


def test_duplicate_api_key_headers_never_act_as_the_stronger_agent(atk: AttackGateway) -> None:
    """x-agent-api-key twice (sentinel's, then admin's): ambiguous credentials."""
    w = atk.watch()
    head = atk.mcp_req(length=len(DENIED_CALL), extra="x-agent-api-key: gw-demo-admin-1\r\n")
    rs = atk.h1(head + DENIED_CALL)
    w.nothing("(two api keys)")
    assert rs and refused(rs[0].status, rs[0].body), rs


def test_duplicate_api_key_headers_valid_then_garbage(atk: AttackGateway) -> None:
    w = atk.watch()
    head = atk.mcp_req(length=len(ALLOWED_CALL), extra="x-agent-api-key: garbage\r\n")
    atk.h1(head + ALLOWED_CALL)
    for rec in w.records():
        assert header(rec, "x-verified-agent-id") in ([], ["sentinel-1"]), rec["headers"]
    w.never_ran()


def test_api_key_and_garbage_bearer_together(atk: AttackGateway) -> None:
    w = atk.watch()
    r = atk.post("/mcp", DENIED_CALL, headers={"authorization": "Bearer garbage.garbage.garbage"})
    w.nothing()
    assert refused(r.status_code, r.content)


# --------------------------------------------------------------------------- Mcp-* headers (2026-07-28)


@pytest.mark.parametrize("hdrs", [
    {"mcp-method": "tools/list"},
    {"mcp-name": "search_patterns"},
    {"mcp-method": "tools/call", "mcp-name": "search_patterns"},
    {"mcp-name": "=?base64?" + base64.b64encode(b"search_patterns").decode() + "?="},
])
def test_mcp_headers_disagreeing_with_a_denied_body(atk: AttackGateway, hdrs: dict[str, str]) -> None:
    w = atk.watch()
    r = atk.post("/mcp", DENIED_CALL, headers={"mcp-protocol-version": "2026-07-28", **hdrs})
    w.nothing()
    assert refused(r.status_code, r.content), r.text


@pytest.mark.parametrize("hdrs", [
    {"mcp-name": DENIED},
    {"mcp-name": "=?base64?" + base64.b64encode(DENIED.encode()).decode() + "?="},
    {"mcp-method": "tools/list", "mcp-name": DENIED},
])
def test_mcp_headers_naming_a_denied_tool_over_an_allowed_body(atk: AttackGateway, hdrs: dict[str, str]) -> None:
    """A server routing on Mcp-Name would run the header's tool: refused."""
    w = atk.watch()
    r = atk.post("/mcp", ALLOWED_CALL, headers={"mcp-protocol-version": "2026-07-28", **hdrs})
    w.nothing()
    assert r.status_code == 400, r.text


def test_duplicate_mcp_name_headers(atk: AttackGateway) -> None:
    w = atk.watch()
    head = atk.mcp_req(length=len(ALLOWED_CALL), extra=f"mcp-name: search_patterns\r\nmcp-name: {DENIED}\r\n")
    rs = atk.h1(head + ALLOWED_CALL)
    w.nothing()
    assert rs and rs[0].status == 400, rs


def test_non_utf8_mcp_name_header(atk: AttackGateway) -> None:
    w = atk.watch()
    head = atk.mcp_req(length=len(ALLOWED_CALL), extra="mcp-name: search_\xffpatterns\r\n")
    rs = atk.h1(head.replace(b"\xc3\xbf", b"\xff") + ALLOWED_CALL)
    w.nothing()
    assert rs and refused(rs[0].status, rs[0].body), rs


def test_huge_header_is_refused_before_upstream(atk: AttackGateway) -> None:
    w = atk.watch()
    rs = atk.h1(atk.mcp_req(length=len(DENIED_CALL), extra="x-pad: " + "a" * 70_000 + "\r\n") + DENIED_CALL)
    w.nothing()
    assert not rs or rs[0].status == 431, rs


def test_many_headers(atk: AttackGateway) -> None:
    w = atk.watch()
    extra = "".join(f"x-h{i}: {i}\r\n" for i in range(150))
    rs = atk.h1(atk.mcp_req(length=len(DENIED_CALL), extra=extra) + DENIED_CALL)
    w.nothing()
    assert not rs or refused(rs[0].status, rs[0].body), rs
