"""Shared helpers of the attack suite (tests/attacks/): the stack handle, the
upstream recorders, raw HTTP/1.1 and HTTP/2 clients over TLS.

Every case judges WHAT REACHED THE UPSTREAM: the example MCP server and A2A
agent record every request as it arrives (`GET /requests`, headers + body,
even requests the SDK refuses and bodies that never ended), and the MCP
server counts the tools it ran (`GET /stats`). A case takes a `Watch` before
it attacks and asserts on what the upstreams recorded afterwards.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
import uuid
from typing import Any

import httpx

from conftest import Gateway

MCP_HEADERS = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25",
               "content-type": "application/json"}
SENTINEL_ALLOWED = ("search_patterns", "classify_content", "read_config")
DENIED = "execute_code"
CANARY = "CANARY-atk-5d1e-never-in-audit"


def tools_call(name: str, id_: Any = 1, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


def body_of(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


DENIED_CALL = body_of(tools_call(DENIED, 1, code="print(1)"))
ALLOWED_CALL = body_of(tools_call("search_patterns", 1, query="map"))


def a2a_send(method: str = "message/send", text: str = "hi", id_: Any = 1) -> dict[str, Any]:
    if method == "SendMessage":
        msg: dict[str, Any] = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": text}]}
    else:
        msg = {"kind": "message", "messageId": uuid.uuid4().hex, "role": "user", "parts": [{"kind": "text", "text": text}]}
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": {"message": msg}}


# --------------------------------------------------------------------------- upstream


class Watch:
    """What reached the upstreams between its creation and `records()`."""

    def __init__(self, gw: "AttackGateway") -> None:
        self.gw = gw
        self.marks = {c: gw.record_mark(c) for c in ("mcp_upstream", "a2a_upstream")}
        self.tools = dict(gw.upstream_stats()["tools"])
        self.a2a = gw.a2a_stats()

    def records(self, cluster: str | None = None) -> list[dict[str, Any]]:
        out = []
        for c, mark in self.marks.items():
            if cluster is None or c == cluster:
                out += [r for r in self.gw.records(c, mark) if not header(r, "x-atk-barrier")]
        return out

    def bodies(self, cluster: str | None = None) -> list[bytes]:
        return [r["body"].encode("latin-1") for r in self.records(cluster)]

    def tool_runs(self) -> dict[str, int]:
        now = self.gw.upstream_stats()["tools"]
        return {k: v - self.tools.get(k, 0) for k, v in now.items() if v != self.tools.get(k, 0)}

    def a2a_executions(self) -> int:
        return self.gw.a2a_stats()["executions"] - self.a2a["executions"]

    # ---- assertions
    def nothing(self, why: str = "") -> None:
        """Nothing at all reached either upstream (not even headers)."""
        recs = self.records()
        assert not recs, f"reached the upstream {why}: " + json.dumps([short(r) for r in recs])[:2000]
        assert not self.tool_runs(), self.tool_runs()
        assert self.a2a_executions() == 0

    def never_ran(self, tool: str = DENIED, needle: bytes | None = None) -> None:
        """The tool never ran, and no body carrying its name (or `needle`) reached the upstream."""
        runs = self.tool_runs()
        assert tool not in runs, f"upstream ran {tool}: {runs}"
        find = needle if needle is not None else tool.encode()
        leaked = [short(r) for r in self.records() if find in r["body"].encode("latin-1")]
        assert not leaked, f"a body with {find!r} reached the upstream: {leaked}"

    def only(self, *tools: str) -> None:
        """The upstream ran exactly these tools (once each) and nothing else."""
        runs = self.tool_runs()
        want: dict[str, int] = {}
        for t in tools:
            want[t] = want.get(t, 0) + 1
        assert runs == want, (runs, want)


def short(r: dict[str, Any]) -> dict[str, Any]:
    return {"method": r.get("method"), "path": r.get("path"), "bodyBytes": r.get("bodyBytes"),
            "complete": r.get("complete"), "body": r.get("body", "")[:300]}


def header(rec: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in rec["headers"] if k.lower() == name.lower()]


# --------------------------------------------------------------------------- gateway


class AttackGateway(Gateway):
    """The shipped gateway (envoy/gateway.yaml, real identity filter)."""

    identity_url: str = ""
    keys: dict[str, list[str]]
    _tls: ssl.SSLContext | None = None
    _upstream: httpx.Client | None = None
    _raw_tls: dict[str, ssl.SSLContext] | None = None

    def ssl_context(self) -> ssl.SSLContext:
        # loaded once: every case opens several connections
        if self._tls is None:
            self._tls = super().ssl_context()
        return self._tls

    def _up(self, cluster: str, path: str) -> Any:
        """GET on an upstream directly (keep-alive, not through the gateway)."""
        if self._upstream is None:
            self._upstream = httpx.Client(timeout=10)
        return self._upstream.get(self.stack.upstream_url(cluster) + path).json()

    def record_mark(self, cluster: str) -> int:
        return int(self._up(cluster, "/requests?since=999999999")["next"])

    def records(self, cluster: str, since: int) -> list[dict[str, Any]]:
        return list(self._up(cluster, f"/requests?since={since}")["requests"])

    def upstream_stats(self, cluster: str = "mcp_upstream") -> dict[str, Any]:
        return dict(self._up(cluster, "/stats"))

    def a2a_stats(self) -> dict[str, Any]:
        return dict(self._up("a2a_upstream", "/stats"))

    def watch(self) -> Watch:
        return Watch(self)

    def fresh(self, role: str) -> str:
        """The API key of an agent no other case used (its own rate-limit windows)."""
        return self.keys[role].pop()

    def post(self, path: str, body: bytes | Any, key: str | None = "gw-demo-sentinel-1",
             headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        hdrs = dict(MCP_HEADERS)
        if path.startswith("/a2a"):
            hdrs = {"content-type": "application/json"}
        if key is not None:
            hdrs["x-agent-api-key"] = key
        hdrs.update(headers or {})
        data = body if isinstance(body, bytes) else body_of(body)
        with httpx.Client(base_url=self.base_url, verify=self.ssl_context(), timeout=kw.pop("timeout", 30), **kw) as c:
            return c.post(path, content=data, headers=hdrs)

    def barrier(self) -> None:
        """One answered request on each worker's likely connection: whatever an
        earlier attack let through has been forwarded by the time it returns."""
        for _ in range(2):
            with httpx.Client(base_url=self.base_url, verify=self.ssl_context(), timeout=10) as c:
                c.get("/.well-known/agent-card.json", headers={"x-atk-barrier": "1"})
        time.sleep(0.2)

    def tls_socket(self, alpn: str = "http/1.1", timeout: float = 15) -> ssl.SSLSocket:
        if self._raw_tls is None:
            self._raw_tls = {}
        ctx = self._raw_tls.get(alpn)
        if ctx is None:
            ctx = self._raw_tls[alpn] = Gateway.ssl_context(self)
            ctx.set_alpn_protocols([alpn])
        raw = socket.create_connection(("127.0.0.1", self.stack.gateway_port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        assert s.selected_alpn_protocol() == alpn, s.selected_alpn_protocol()
        return s

    def h1(self, *parts: bytes, read: bool = True, expect: int = 1, timeout: float = 15) -> list["H1Response"]:
        """Send raw HTTP/1.1 bytes (each part its own TLS write); read until
        `expect` whole responses arrived or the connection ended (not until
        close: Envoy's delayed close would cost a second per case)."""
        s = self.tls_socket(timeout=timeout)
        try:
            for p in parts:
                s.sendall(p)
            if not read:
                return []
            data = b""
            while len(parse_h1(data)) < expect:
                try:
                    chunk = s.recv(65536)
                except (TimeoutError, socket.timeout, ConnectionResetError, ssl.SSLError):
                    break
                if not chunk:
                    break
                data += chunk
            return parse_h1(data)
        finally:
            s.close()

    def h2(self) -> "H2Client":
        return H2Client(self.tls_socket("h2"))

    def mcp_req(self, path: str = "/mcp", key: str | None = "gw-demo-sentinel-1", length: int | None = None,
                chunked: bool = False, extra: str = "", close: bool = True) -> bytes:
        """Raw HTTP/1.1 request head for an MCP POST."""
        lines = [f"POST {path} HTTP/1.1", f"host: localhost:{self.stack.gateway_port}",
                 "content-type: application/json", "accept: application/json, text/event-stream",
                 "mcp-protocol-version: 2025-11-25"]
        if key is not None:
            lines.append(f"x-agent-api-key: {key}")
        if length is not None:
            lines.append(f"content-length: {length}")
        if chunked:
            lines.append("transfer-encoding: chunked")
        if close:
            lines.append("connection: close")
        head = "\r\n".join(lines) + "\r\n" + extra
        return (head + "\r\n").encode()

    def envoy_log_since(self, offset: int) -> tuple[str, int]:
        path = self.stack.log_path("envoy")
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
        return data.decode(errors="replace"), offset + len(data)


# A Rust panic, a failed callback (V8 trap), or a request answered by a dead
# VM (FAIL_CLOSED: 503 with details wasm_fail_stream in the access log).
CRASH = re.compile(r"panicked|Function: proxy_on_\S+ failed|Uncaught RuntimeError|wasm_fail_stream")


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# --------------------------------------------------------------------------- raw HTTP/1.1


class H1Response:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"H1Response({self.status}, {self.body[:300]!r})"


def parse_h1(data: bytes) -> list[H1Response]:
    """The complete responses at the start of `data` (an incomplete one is left out)."""
    out = []
    while data.startswith(b"HTTP/"):
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
        hmap = {k.lower(): v for k, v in headers}
        if 100 <= status < 200 or status in (204, 304):
            body = b""
        elif "content-length" in hmap:
            n = int(hmap["content-length"])
            if len(rest) < n:
                break
            body, rest = rest[:n], rest[n:]
        elif hmap.get("transfer-encoding", "").lower() == "chunked":
            body, done = b"", False
            while True:
                size_line, sep, after = rest.partition(b"\r\n")
                if not sep:
                    break
                n = int(size_line.split(b";")[0] or b"0", 16)
                if n == 0:
                    end = after.find(b"\r\n\r\n") if not after.startswith(b"\r\n") else -2
                    if end == -1:
                        break
                    rest, done = after[end + 4:], True
                    break
                if len(after) < n + 2:
                    break
                body += after[:n]
                rest = after[n + 2:]
            if not done:
                break
        else:
            body, rest = rest, b""
        out.append(H1Response(status, headers, body))
        data = rest
    return out


# --------------------------------------------------------------------------- raw HTTP/2


class H2Stream:
    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.ended = False
        self.reset: int | None = None

    @property
    def status(self) -> int:
        for k, v in self.headers:
            if k == ":status":
                return int(v)
        return 0

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"H2Stream({self.status}, reset={self.reset}, {self.body[:300]!r})"


class H2Client:
    """hyper-h2 over one TLS connection (ALPN h2): frames exactly as written,
    so a case can end a request with trailers, reset it, or split its DATA."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        import h2.config
        import h2.connection
        import h2.settings

        self.sock = sock
        # no client-side header validation: the cases send what a hostile
        # client would (connection-specific headers, CR/LF, upper case)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
            normalize_outbound_headers=False, split_outbound_cookies=False))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 * 1024 * 1024})
        self.conn.increment_flow_control_window(4 * 1024 * 1024)
        self.streams: dict[int, H2Stream] = {}
        self.closed = False
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def headers(self, path: str = "/mcp", key: str | None = "gw-demo-sentinel-1", method: str = "POST",
                extra: list[tuple[str, str]] | None = None, end: bool = False, base: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "https"), (":authority", "localhost"), (":path", path)]
        if base:
            hdrs += [("content-type", "application/json"), ("accept", "application/json, text/event-stream"),
                     ("mcp-protocol-version", "2025-11-25")]
        if key is not None:
            hdrs.append(("x-agent-api-key", key))
        hdrs += extra or []
        self.streams[sid] = H2Stream()
        self.conn.send_headers(sid, hdrs, end_stream=end)
        self.flush()
        return sid

    def data(self, sid: int, data: bytes, end: bool = False, pad: int | None = None) -> None:
        self.conn.send_data(sid, data, end_stream=end, pad_length=pad)
        self.flush()

    def trailers(self, sid: int, trailers: list[tuple[str, str]] | None = None) -> None:
        self.conn.send_headers(sid, trailers or [("x-rt", "1")], end_stream=True)
        self.flush()

    def reset(self, sid: int, code: int = 8) -> None:
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    def request(self, body: bytes, path: str = "/mcp", key: str | None = "gw-demo-sentinel-1",
                extra: list[tuple[str, str]] | None = None, trailers: list[tuple[str, str]] | None = None,
                parts: list[bytes] | None = None) -> int:
        sid = self.headers(path, key, extra=extra)
        chunks = parts if parts is not None else [body]
        for i, c in enumerate(chunks):
            self.data(sid, c, end=trailers is None and i == len(chunks) - 1)
        if trailers is not None:
            self.trailers(sid, trailers)
        return sid

    def pump(self, timeout: float = 10) -> bool:
        """Read once; False when the connection ended."""
        import h2.events

        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return True
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            return False
        for ev in self.conn.receive_data(data):
            sid = getattr(ev, "stream_id", None)
            st = self.streams.get(sid) if sid else None
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.InformationalResponseReceived,
                               h2.events.TrailersReceived)) and st:
                st.headers += [(k if isinstance(k, str) else k.decode(), v if isinstance(v, str) else v.decode())
                               for k, v in ev.headers if not (isinstance(ev, h2.events.InformationalResponseReceived))]
            elif isinstance(ev, h2.events.DataReceived):
                if st:
                    st.body += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and st:
                st.ended = True
            elif isinstance(ev, h2.events.StreamReset) and st:
                st.reset = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.closed = True
        self.flush()
        return not self.closed

    def wait(self, sid: int, timeout: float = 20) -> H2Stream:
        st = self.streams[sid]
        deadline = time.monotonic() + timeout
        while not (st.ended or st.reset is not None) and time.monotonic() < deadline:
            if not self.pump(min(1.0, max(0.05, deadline - time.monotonic()))):
                break
        return st

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:
            pass
        self.sock.close()

    def __enter__(self) -> "H2Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------- answers


def refused(status: int, body: bytes) -> bool:
    """The gateway (or Envoy) refused: an HTTP error, or a JSON-RPC error
    answer instead of a result (the tool ACL's denial form on /mcp)."""
    if status >= 400 or status == 0:
        return True
    try:
        doc = json.loads(body)
    except ValueError:
        # an SSE answer: its JSON-RPC messages
        msgs = [m for m in (line[5:].strip() for line in body.decode("utf-8", "replace").splitlines()
                            if line.startswith("data:")) if m]
        try:
            doc = [json.loads(m) for m in msgs]
        except ValueError:
            return False
        doc = [d for d in doc if isinstance(d, dict) and "id" in d]
        if not doc:
            return False
    docs = doc if isinstance(doc, list) else [doc]
    return bool(docs) and all(isinstance(d, dict) and "error" in d and "result" not in d for d in docs)


def rpc_result(r: httpx.Response) -> Any:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        for block in re.split(r"\r?\n\r?\n", r.text):
            data = "\n".join(line[5:].lstrip() for line in block.splitlines() if line.startswith("data:"))
            if data:
                m = json.loads(data)
                if "id" in m:
                    return m
        raise AssertionError(r.text)
    return r.json()
