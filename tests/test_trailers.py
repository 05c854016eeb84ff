"""A request that ends with trailers is judged like any other (issue 10,
finding 1: trailers used to release a held body unjudged).

Through the shipped envoy/gateway.yaml with the real identity filter, over
HTTP/2 (raw hyper-h2 over TLS, since no high-level client sends request
trailers) and HTTP/1.1 chunked trailers. Each case checks what reached the
example MCP server, not only the answer.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

import httpx
import pytest
import yaml

from conftest import DEMO_KEYS, ROOT, Gateway
from gwstack import filter_configuration
from gwstack.support import MCP_HEADERS

pytestmark = pytest.mark.timeout(120)



def tools_call(name: str, id_: Any = 1, **arguments: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "method": "tools/call",
                       "params": {"name": name, "arguments": arguments}}).encode()


def upstream_tool_runs(gw: Gateway, tool: str) -> int:
    return gw.upstream_stats()["tools"].get(tool, 0)


def h2_request(gw: Gateway, path: str, headers: dict[str, str], chunks: list[bytes],
               trailers: list[tuple[str, str]] | None) -> tuple[int, bytes]:
    """One HTTP/2 request: headers, data frames, then trailers (which end
    the stream) or an empty END_STREAM data frame."""
    import h2.config
    import h2.connection
    import h2.events

    ctx = gw.ssl_context()
    ctx.set_alpn_protocols(["h2"])
    port = gw.stack.gateway_port
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        assert sock.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "https"), (":authority", f"localhost:{port}"),
                                (":path", path), ("content-type", "application/json"),
                                *((k.lower(), v) for k, v in headers.items())])
        for chunk in chunks:
            conn.send_data(sid, chunk)
        if trailers is None:
            conn.end_stream(sid)
        else:
            conn.send_headers(sid, trailers, end_stream=True)
        sock.sendall(conn.data_to_send())
        status, body, done = 0, b"", False
        while not done:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, sid)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = True
            sock.sendall(conn.data_to_send())
        return status, body


def h1_chunked_with_trailers(gw: Gateway, path: str, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, bytes]:
    """HTTP/1.1 chunked body ended by a trailer section."""
    ctx = gw.ssl_context()
    ctx.set_alpn_protocols(["http/1.1"])
    port = gw.stack.gateway_port
    head = [f"POST {path} HTTP/1.1", f"host: localhost:{port}", "content-type: application/json",
            "transfer-encoding: chunked", "trailer: x-rt", "connection: close",
            *(f"{k}: {v}" for k, v in headers.items())]
    wire = ("\r\n".join(head) + "\r\n\r\n").encode()
    for chunk in chunks:
        wire += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    wire += b"0\r\nx-rt: 1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(wire)
        response = b""
        while True:
            try:
                data = sock.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not data:
                break
            response += data
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


SENTINEL = {"x-agent-api-key": DEMO_KEYS["sentinel-1"]} | MCP_HEADERS


def split(body: bytes, n: int) -> list[bytes]:
    step = max(1, len(body) // n)
    return [body[i:i + step] for i in range(0, len(body), step)]


@pytest.mark.parametrize("path", ["/mcp", "/mcp/tools/call"])
@pytest.mark.parametrize("pieces", [1, 3], ids=["one-frame", "three-frames"])
def test_h2_trailers_do_not_release_a_denied_call(gateway: Gateway, path: str, pieces: int) -> None:
    before = upstream_tool_runs(gateway, "execute_code")
    status, body = h2_request(gateway, path, SENTINEL, split(tools_call("execute_code", code="x"), pieces),
                              trailers=[("x-rt", "1")])
    assert status in (200, 403), (status, body[:300])
    if status == 200:
        assert json.loads(body)["error"]["code"] == -32001, body
    assert upstream_tool_runs(gateway, "execute_code") == before, "denied tool ran upstream"


def test_h2_trailers_keep_allowed_calls_working(gateway: Gateway) -> None:
    before = upstream_tool_runs(gateway, "read_config")
    status, body = h2_request(gateway, "/mcp", SENTINEL, split(tools_call("read_config", key="region"), 2),
                              trailers=[("x-rt", "1")])
    assert status == 200, (status, body[:300])
    assert "eu-west-1" in body.decode(), body
    assert upstream_tool_runs(gateway, "read_config") == before + 1


def test_h2_trailers_without_data_are_refused(gateway: Gateway) -> None:
    stats = gateway.upstream_stats()
    status, body = h2_request(gateway, "/mcp", SENTINEL, [], trailers=[("x-rt", "1")])
    assert status == 400, (status, body[:300])
    assert gateway.upstream_stats()["methods"] == stats["methods"]


def test_h2_trailers_cannot_hide_a_duplicate_key(gateway: Gateway) -> None:
    raw = (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_config",'
           b'"name":"execute_code","arguments":{"code":"x"}}}')
    before = gateway.upstream_stats()["tools"]
    status, _ = h2_request(gateway, "/mcp", SENTINEL, [raw], trailers=[("x-rt", "1")])
    assert status == 400
    assert gateway.upstream_stats()["tools"] == before


def test_h1_chunked_trailers_do_not_release_a_denied_call(gateway: Gateway) -> None:
    before = upstream_tool_runs(gateway, "execute_code")
    status, body = h1_chunked_with_trailers(gateway, "/mcp", SENTINEL, split(tools_call("execute_code", code="x"), 3))
    assert status in (200, 403), (status, body[:300])
    assert upstream_tool_runs(gateway, "execute_code") == before


def test_h2_trailers_are_counted_by_the_rate_limit(start_stack: Any) -> None:
    """Every call that ends in trailers takes its slot: a 3-per-window limit
    admits exactly 3 of 6, and only those reach the upstream."""
    rl = yaml.safe_load(filter_configuration(ROOT / "envoy" / "gateway.yaml", "gw_rate_limit"))
    for limit in rl["limits"]:
        limit["maxRequests"] = 3
        limit.pop("burstAllowance", None)
    gw = Gateway(start_stack("trailers_rl", config="envoy/gateway.yaml", filter_configs={"gw_rate_limit": rl}), {})
    before = upstream_tool_runs(gw, "read_config")
    statuses = [h2_request(gw, "/mcp", SENTINEL, [tools_call("read_config", id_=i, key="region")],
                           trailers=[("x-rt", "1")])[0] for i in range(6)]
    assert statuses.count(200) == 3 and statuses.count(429) == 3, statuses
    assert upstream_tool_runs(gw, "read_config") == before + 3
    with httpx.Client(base_url=gw.base_url, verify=gw.ssl_context(), headers=SENTINEL, timeout=10) as c:
        assert c.post("/mcp", content=tools_call("read_config", key="region"),
                      headers={"content-type": "application/json"}).status_code == 429
