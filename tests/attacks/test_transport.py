"""Transport attacks: HTTP/2 frames (trailers, resets, split DATA, many
streams) with hyper-h2, HTTP/1.1 bytes (chunking, chunked trailers,
content-length tricks, pipelining, Expect, HTTP/1.0) over raw TLS sockets.

Every case asserts what reached the upstream (support.Watch). The trailer
cases are the critical bypass of issue 10 (finding 1): a request that ends
with trailers must be judged like one that ends with data.
"""

from __future__ import annotations

import gzip

import pytest

from attacks.support import (
    ALLOWED_CALL, DENIED, DENIED_CALL, AttackGateway, body_of, chunk, header, refused, tools_call,
)

pytestmark = pytest.mark.timeout(60)

NAME_AT = DENIED_CALL.index(DENIED.encode())


# --------------------------------------------------------------------------- HTTP/2


def test_h2_allowed_call_reaches_upstream_once_as_sent(atk: AttackGateway) -> None:
    """Control: the raw h2 client works and the upstream sees the verified agent."""
    w = atk.watch()
    with atk.h2() as c:
        st = c.wait(c.request(ALLOWED_CALL))
    assert st.status == 200 and not refused(st.status, st.body.split(b"data: ")[-1]), st
    w.only("search_patterns")
    (rec,) = w.records()
    assert rec["body"].encode("latin-1") == ALLOWED_CALL and rec["complete"]
    assert header(rec, "x-verified-agent-id") == ["sentinel-1"]


def test_h2_denied_call_is_refused(atk: AttackGateway) -> None:
    w = atk.watch()
    with atk.h2() as c:
        st = c.wait(c.request(DENIED_CALL))
    assert refused(st.status, st.body), st
    w.nothing()


@pytest.mark.parametrize("path", ["/mcp", "/mcp/tools/call"])
def test_h2_request_trailers_do_not_release_a_denied_call(atk: AttackGateway, path: str) -> None:
    """Issue 10 finding 1 (critical): DATA without END_STREAM, then a trailer block."""
    w = atk.watch()
    with atk.h2() as c:
        st = c.wait(c.request(DENIED_CALL, path=path, trailers=[("x-rt", "1")]))
    atk.barrier()
    w.nothing("(request ended with trailers)")
    assert refused(st.status, st.body), st


def test_h2_trailers_after_split_data_do_not_release_a_denied_call(atk: AttackGateway) -> None:
    w = atk.watch()
    parts = [DENIED_CALL[:NAME_AT + 3], DENIED_CALL[NAME_AT + 3:]]
    with atk.h2() as c:
        st = c.wait(c.request(b"", parts=parts, trailers=[("grpc-status", "0"), ("x-b", "2")]))
    atk.barrier()
    w.nothing()
    assert refused(st.status, st.body), st


def test_h2_allowed_call_with_trailers_is_judged_and_forwarded_whole(atk: AttackGateway) -> None:
    w = atk.watch()
    with atk.h2() as c:
        st = c.wait(c.request(ALLOWED_CALL, trailers=[("x-rt", "1")]))
    assert st.status == 200, st
    w.only("search_patterns")
    (rec,) = w.records()
    assert rec["body"].encode("latin-1") == ALLOWED_CALL and rec["complete"]


def test_h2_headers_then_trailers_without_data_run_nothing(atk: AttackGateway) -> None:
    """No DATA frame at all: the Mcp-* headers name a denied tool, trailers end the stream."""
    w = atk.watch()
    with atk.h2() as c:
        sid = c.headers("/mcp", extra=[("mcp-method", "tools/call"), ("mcp-name", DENIED)])
        c.trailers(sid, [("x-rt", "1")])
        c.wait(sid)
    atk.barrier()
    w.never_ran()
    assert all(r["bodyBytes"] == 0 for r in w.records()), w.records()


def test_h2_trailers_on_rate_limited_path_are_counted(atk: AttackGateway) -> None:
    """Trailers must not skip the rate limit: a fresh agent, 75 calls with
    trailers over one connection, at most the shipped 60 + 10 reach the upstream."""
    key = atk.fresh("sentinel")
    w = atk.watch()
    with atk.h2() as c:
        sids = []
        for i in range(75):
            sids.append(c.request(body_of(tools_call("read_config", i, key="region")), key=key,
                                  trailers=[("x-rt", str(i))]))
            if len(sids) % 15 == 0:
                for s in sids[-15:]:
                    c.wait(s)
        answers = [c.wait(s) for s in sids]
    atk.barrier()
    assert w.tool_runs().get("read_config", 0) == 70, w.tool_runs()
    assert len(w.records()) == 70
    assert sum(1 for a in answers if a.status == 429) == 5, [a.status for a in answers]


@pytest.mark.parametrize("cut", range(len(DENIED) + 1))
def test_h2_data_split_at_every_byte_of_the_tool_name(atk: AttackGateway, cut: int) -> None:
    w = atk.watch()
    at = NAME_AT + cut
    with atk.h2() as c:
        st = c.wait(c.request(b"", parts=[DENIED_CALL[:at], DENIED_CALL[at:]]))
    assert refused(st.status, st.body), st
    w.nothing()


def test_h2_one_byte_data_frames(atk: AttackGateway) -> None:
    w = atk.watch()
    with atk.h2() as c:
        st = c.wait(c.request(b"", parts=[bytes([b]) for b in DENIED_CALL]))
    assert refused(st.status, st.body), st
    w.nothing()


def test_h2_reset_mid_body_releases_nothing(atk: AttackGateway) -> None:
    """RST_STREAM after half of an allowed body: the held request never reaches the upstream."""
    w = atk.watch()
    with atk.h2() as c:
        sid = c.headers("/mcp")
        c.data(sid, ALLOWED_CALL[: len(ALLOWED_CALL) // 2])
        c.reset(sid)
        # the connection survives the reset
        st = c.wait(c.request(DENIED_CALL))
        assert refused(st.status, st.body), st
    atk.barrier()
    w.nothing("(stream reset mid-body)")


def test_h2_reset_after_headers_releases_nothing(atk: AttackGateway) -> None:
    w = atk.watch()
    key = atk.fresh("sentinel")
    with atk.h2() as c:
        sid = c.headers("/mcp/tools/call", key=key)
        c.reset(sid, code=0)
        st = c.wait(c.request(ALLOWED_CALL, key=key))
        assert st.status == 200, st
    atk.barrier()
    recs = w.records()
    assert [r["body"].encode("latin-1") for r in recs] == [ALLOWED_CALL], recs


def test_h2_reset_of_denied_call_before_its_end(atk: AttackGateway) -> None:
    w = atk.watch()
    with atk.h2() as c:
        sid = c.headers("/mcp")
        c.data(sid, DENIED_CALL)  # complete JSON, but END_STREAM never comes
        c.reset(sid)
    atk.barrier()
    w.nothing()


def test_h2_many_streams_on_one_connection_each_judged(atk: AttackGateway) -> None:
    """60 concurrent streams, allowed and denied interleaved, one connection.
    The key is checked once first: 60 first-contact requests with an
    unchecked key would meet the identity filter's callout bound (32 in
    flight per worker, then 503 by design: docs/identity.md)."""
    key = atk.fresh("sentinel")
    warm = atk.post("/mcp", body_of({"jsonrpc": "2.0", "id": 0, "method": "tools/list"}), key=key)
    assert warm.status_code == 200, warm.text[:200]
    w = atk.watch()
    with atk.h2() as c:
        sids = [c.request(body_of(tools_call("classify_content" if i % 2 else DENIED, i, text="x")), key=key)
                for i in range(60)]
        answers = [c.wait(s) for s in sids]
    for i, a in enumerate(answers):
        assert a.status == 200, a
        assert refused(a.status, a.body) == (i % 2 == 0), (i, a)
    assert w.tool_runs() == {"classify_content": 30}
    w.never_ran()


@pytest.mark.parametrize("length", ["0", "10", "100000"])
def test_h2_content_length_disagreeing_with_data_is_refused(atk: AttackGateway, length: str) -> None:
    w = atk.watch()
    with atk.h2() as c:
        st = c.wait(c.request(DENIED_CALL, extra=[("content-length", length)]), timeout=5)
    assert st.status >= 400 or st.reset is not None, st
    atk.barrier()
    w.nothing()


def test_h2_padded_data_frames(atk: AttackGateway) -> None:
    w = atk.watch()
    with atk.h2() as c:
        sid = c.headers("/mcp")
        c.data(sid, DENIED_CALL[:NAME_AT + 4], pad=200)
        c.data(sid, DENIED_CALL[NAME_AT + 4:], end=True, pad=17)
        st = c.wait(sid)
    w.nothing()
    assert refused(st.status, st.body), st


@pytest.mark.parametrize("bad", [
    ("transfer-encoding", "chunked"), ("connection", "keep-alive"), ("upgrade", "h2c"),
    ("x-verified-agent-id", "sentinel-1\r\nx-verified-agent-id: admin-1"), ("X-Upper", "1"),
    ("content-length", "5, 5"),
], ids=["te", "connection", "upgrade", "crlf-injection", "uppercase-name", "cl-list"])
def test_h2_headers_an_h1_upstream_would_misread(atk: AttackGateway, bad: tuple[str, str]) -> None:
    """h2 -> HTTP/1.1 downgrade smuggling: the body carries a second, denied
    HTTP/1.1 request; nothing of it may reach the upstream as a request."""
    smuggled = (b"0\r\n\r\n" + atk.mcp_req(length=len(DENIED_CALL)) + DENIED_CALL)
    w = atk.watch()
    with atk.h2() as c:
        sid = c.headers("/mcp", extra=[bad])
        c.data(sid, smuggled, end=True)
        st = c.wait(sid)
        # refused: a 4xx, a stream reset, or the whole connection (GOAWAY)
        assert st.reset is not None or st.status >= 400 or c.closed, st
    atk.barrier()
    w.never_ran()
    assert all(header(r, "x-verified-agent-id") in ([], ["sentinel-1"]) for r in w.records()), w.records()


# --------------------------------------------------------------------------- HTTP/1.1 chunked


@pytest.mark.parametrize("cut", range(len(DENIED) + 1))
def test_h1_chunk_boundary_at_every_byte_of_the_tool_name(atk: AttackGateway, cut: int) -> None:
    at = NAME_AT + cut
    w = atk.watch()
    (r,) = atk.h1(atk.mcp_req(chunked=True), chunk(DENIED_CALL[:at]), chunk(DENIED_CALL[at:]) + b"0\r\n\r\n")
    assert refused(r.status, r.body), r
    w.nothing()


@pytest.mark.parametrize("path", ["/mcp", "/mcp/tools/call"])
def test_h1_chunked_trailers_do_not_release_a_denied_call(atk: AttackGateway, path: str) -> None:
    """Issue 10 finding 1 over HTTP/1.1: the last chunk carries a trailer."""
    w = atk.watch()
    (r,) = atk.h1(atk.mcp_req(path, chunked=True, extra="te: trailers\r\n"),
                  chunk(DENIED_CALL) + b"0\r\nx-rt: 1\r\n\r\n")
    atk.barrier()
    w.nothing("(chunked trailers)")
    assert refused(r.status, r.body), r


def test_h1_chunk_extensions_and_one_byte_chunks(atk: AttackGateway) -> None:
    w = atk.watch()
    body = b"".join(f"1;ext=v\r\n".encode() + bytes([b]) + b"\r\n" for b in DENIED_CALL) + b"0\r\n\r\n"
    (r,) = atk.h1(atk.mcp_req(chunked=True), body)
    assert refused(r.status, r.body), r
    w.nothing()


def test_h1_content_length_shorter_than_body_smuggles_nothing(atk: AttackGateway) -> None:
    """The bytes past Content-Length are a second request: it is judged too."""
    smuggled = atk.mcp_req(length=len(DENIED_CALL)) + DENIED_CALL
    w = atk.watch()
    rs = atk.h1(atk.mcp_req(length=len(ALLOWED_CALL), close=False) + ALLOWED_CALL + smuggled, expect=2)
    assert rs and rs[0].status == 200, rs
    assert all(refused(r.status, r.body) for r in rs[1:]), rs
    w.never_ran()
    assert w.tool_runs() == {"search_patterns": 1}


def test_h1_content_length_longer_than_body_then_close(atk: AttackGateway) -> None:
    w = atk.watch()
    atk.h1(atk.mcp_req(length=len(ALLOWED_CALL) + 50, close=False) + ALLOWED_CALL, read=False)
    atk.barrier()
    w.nothing("(body never completed)")


def test_h1_duplicate_content_length_is_refused(atk: AttackGateway) -> None:
    w = atk.watch()
    rs = atk.h1(atk.mcp_req(length=len(DENIED_CALL), extra=f"content-length: {len(ALLOWED_CALL)}\r\n") + DENIED_CALL)
    assert not rs or rs[0].status == 400, rs
    atk.barrier()
    w.nothing()


@pytest.mark.parametrize("line", [
    "content-length: +{n}", "content-length: 0x{n:x}", "content-length: {n}.0", "content-length : {n}",
    "content-length: {n}\r\n x-folded: 1", "content-length:\t{n}\x00",
], ids=["plus", "hex", "decimal", "space-before-colon", "obs-fold", "nul"])
def test_h1_malformed_content_length(atk: AttackGateway, line: str) -> None:
    w = atk.watch()
    head = atk.mcp_req(extra=line.format(n=len(DENIED_CALL)) + "\r\n")
    rs = atk.h1(head + DENIED_CALL)
    assert all(refused(r.status, r.body) for r in rs), rs
    atk.barrier()
    w.nothing()


@pytest.mark.parametrize("request_line", ["post /mcp HTTP/1.1", "POST  /mcp HTTP/1.1", "POST /mcp HTTP/1.1 x",
                                          "POST\t/mcp HTTP/1.1", "POST /mcp HTTP/2.0", "POST /mcp HTTP/1.1\n"])
def test_h1_malformed_request_lines(atk: AttackGateway, request_line: str) -> None:
    w = atk.watch()
    head = atk.mcp_req(length=len(DENIED_CALL)).replace(b"POST /mcp HTTP/1.1", request_line.encode(), 1)
    rs = atk.h1(head + DENIED_CALL)
    assert all(refused(r.status, r.body) for r in rs), rs
    atk.barrier()
    w.never_ran()


def test_h1_folded_api_key_header(atk: AttackGateway) -> None:
    """obs-fold: a continuation line that a lax parser joins into the key."""
    w = atk.watch()
    head = atk.mcp_req(key="gw-demo-sentinel-1\r\n gw-demo-admin-1", length=len(DENIED_CALL))
    rs = atk.h1(head + DENIED_CALL)
    assert all(refused(r.status, r.body) for r in rs), rs
    w.nothing()


def test_h1_transfer_encoding_and_content_length_together(atk: AttackGateway) -> None:
    """CL.TE desync attempt: CL covers an allowed call, chunked framing hides a denied one."""
    inner = chunk(DENIED_CALL) + b"0\r\n\r\n"
    w = atk.watch()
    rs = atk.h1(atk.mcp_req(length=len(ALLOWED_CALL), chunked=True) + inner, expect=2)
    assert rs, rs
    assert all(refused(r.status, r.body) for r in rs), rs
    atk.barrier()
    w.never_ran()


@pytest.mark.parametrize("te", ["gzip, chunked", "chunked, identity", "xchunked", "chunked\x0b"])
def test_h1_odd_transfer_encodings(atk: AttackGateway, te: str) -> None:
    w = atk.watch()
    head = atk.mcp_req(extra=f"transfer-encoding: {te}\r\n")
    rs = atk.h1(head + chunk(DENIED_CALL) + b"0\r\n\r\n")
    assert all(refused(r.status, r.body) for r in rs), rs
    atk.barrier()
    w.never_ran()


def test_h1_expect_100_continue(atk: AttackGateway) -> None:
    w = atk.watch()
    rs = atk.h1(atk.mcp_req(length=len(DENIED_CALL), extra="expect: 100-continue\r\n"), DENIED_CALL, expect=2)
    final = [r for r in rs if r.status >= 200]
    assert final and refused(final[0].status, final[0].body), rs
    w.nothing()


def test_h1_http10_denied_call(atk: AttackGateway) -> None:
    w = atk.watch()
    head = atk.mcp_req(length=len(DENIED_CALL), close=False).replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    rs = atk.h1(head + DENIED_CALL)
    assert all(refused(r.status, r.body) for r in rs), rs
    atk.barrier()
    w.nothing()


def test_h1_pipelined_requests_each_judged(atk: AttackGateway) -> None:
    allowed = atk.mcp_req(length=len(ALLOWED_CALL), close=False) + ALLOWED_CALL
    denied = atk.mcp_req(length=len(DENIED_CALL), close=False) + DENIED_CALL
    last = atk.mcp_req(length=len(ALLOWED_CALL)) + ALLOWED_CALL
    w = atk.watch()
    rs = atk.h1(allowed + denied + last, expect=3)
    assert [refused(r.status, r.body) for r in rs] == [False, True, False], rs
    assert w.tool_runs() == {"search_patterns": 2}
    w.never_ran()


def test_h1_absolute_form_request_target(atk: AttackGateway) -> None:
    w = atk.watch()
    head = atk.mcp_req(length=len(DENIED_CALL)).replace(
        b"POST /mcp ", f"POST https://localhost:{atk.stack.gateway_port}/mcp/tools/call ".encode(), 1)
    rs = atk.h1(head + DENIED_CALL)
    assert all(refused(r.status, r.body) for r in rs), rs
    w.nothing()


# --------------------------------------------------------------------------- content type / encoding


@pytest.mark.parametrize("encoding", ["gzip", "identity, gzip", "br", "GZIP"])
def test_content_encoding_is_refused(atk: AttackGateway, encoding: str) -> None:
    w = atk.watch()
    body = gzip.compress(DENIED_CALL) if "gzip" in encoding.lower() else DENIED_CALL
    r = atk.post("/mcp", body, headers={"content-encoding": encoding})
    assert r.status_code == 415, r.text
    w.nothing()


def test_content_encoding_identity_header_twice_then_gzip(atk: AttackGateway) -> None:
    w = atk.watch()
    rs = atk.h1(atk.mcp_req(length=len(gzip.compress(DENIED_CALL)),
                            extra="content-encoding: identity\r\ncontent-encoding: gzip\r\n")
                + gzip.compress(DENIED_CALL))
    assert rs and rs[0].status == 415, rs
    w.nothing()


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x",
                                   "application/jsonx", None])
def test_non_json_content_types_are_refused(atk: AttackGateway, ctype: str | None) -> None:
    w = atk.watch()
    hdrs = {"content-type": ctype} if ctype else {}
    if ctype is None:
        rs = atk.h1(atk.mcp_req(length=len(DENIED_CALL)).replace(b"content-type: application/json\r\n", b"")
                    + DENIED_CALL)
        assert rs and rs[0].status == 415, rs
    else:
        r = atk.post("/mcp", DENIED_CALL, headers=hdrs)
        assert r.status_code == 415, r.text
    w.nothing()


def test_json_content_type_with_parameters_is_still_judged(atk: AttackGateway) -> None:
    w = atk.watch()
    r = atk.post("/mcp", DENIED_CALL, headers={"content-type": "Application/JSON; charset=utf-8"})
    assert refused(r.status_code, r.content), r.text
    w.nothing()
