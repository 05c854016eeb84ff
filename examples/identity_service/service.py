#!/usr/bin/env python3
"""Example agent identity service: validates API keys for the gateway.

It implements the validation contract of the identity filter
(docs/identity.md, "API key validation contract"):

    POST /v1/agents/validate
    content-type: application/json
    {"apiKey": "<key>"}

    200 {"valid": true, "agent_id": "...", "agent_name": "...", "owner": "...",
         "exp": <unix seconds>}                    the key is valid
    401 {"valid": false, "error": "invalid_api_key"} unknown key
    403 {"valid": false, "error": "agent_disabled"}  key of a disabled agent
    400 {"error": "invalid_request"}                 body is not {"apiKey": "..."}

The registry stores only SHA-256 hashes of the keys: the built-in agents below
(keys documented in docs/identity.md) plus those of `--agents FILE`, a JSON
list of {"id", "name", "owner", "keySha256", "disabled"?}.

Other endpoints:
    GET  /healthz        200 {"ok": true}
    GET  /stats          {"validations": n, "valid": n, "invalid": n,
                         "forwarded": n, "inFlight": n, "maxInFlight": n}:
                         how many validation (and forwarded) calls were
                         served, how many are being served now and the most
                         ever served at once (tests prove the gateway caches
                         and bounds its callouts with it)
    POST /stats/reset    zero the counters
    POST /faults         only with --enable-faults: {"delayMs": n, "mode":
                         "normal" | "garbage" | "error" | "json" | "huge",
                         "status": n, "json": value} makes later validation
                         (and forwarded) calls slow, answer non-JSON (garbage),
                         answer `status` (error; default 500), answer the
                         `json` value verbatim with `status` (json; default
                         200: wrong types), or answer 200 with a 100 KiB JSON
                         object (huge), to show the gateway fails closed;
                         {} restores normal service

With --forward URL the service is also a fault-injecting front for another
endpoint (the tests put it before the OAuth server's introspection): a POST
to any other path is forwarded to URL + path, unless a fault applies.

Standard library only. Run: python examples/identity_service/service.py --port 8081
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("identity-service")

MAX_BODY = 16 * 1024


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Built-in registry: agents known to the service but not to the gateway's
# static list, so that their keys always take the callout path.
BUILTIN_AGENTS = [
    {"id": "sentinel-7", "name": "Sentinel Seven", "owner": "security-team", "keySha256": sha256("svc-key-sentinel-7")},
    {"id": "alchemy-7", "name": "Alchemy Seven", "owner": "media-team", "keySha256": sha256("svc-key-alchemy-7")},
    {"id": "admin-7", "name": "Admin Seven", "owner": "platform-team", "keySha256": sha256("svc-key-admin-7")},
    {"id": "retired-1", "name": "Retired One", "owner": "nobody", "keySha256": sha256("svc-key-retired-1"),
     "disabled": True},
]


class State:
    def __init__(self, agents: list[dict[str, Any]], claims_ttl: int, enable_faults: bool) -> None:
        self.by_hash = {a["keySha256"].lower(): a for a in agents}
        self.claims_ttl = claims_ttl
        self.enable_faults = enable_faults
        self.lock = threading.Lock()
        self.counts = {"validations": 0, "valid": 0, "invalid": 0, "forwarded": 0}
        self.forward = ""
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults: dict[str, Any] = {}

    def count(self, *keys: str) -> None:
        with self.lock:
            for k in keys:
                self.counts[k] += 1

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return {**self.counts, "inFlight": self.in_flight, "maxInFlight": self.max_in_flight}


class Handler(BaseHTTPRequestHandler):
    server_version = "gateway-identity-service/1"
    protocol_version = "HTTP/1.1"
    # headers and body are separate writes: without TCP_NODELAY, Nagle +
    # delayed ACK add ~40 ms to every answer on a kept-alive connection
    disable_nagle_algorithm = True
    state: State

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("cache-control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"ok": True})
        elif self.path == "/stats":
            self._send(200, self.state.snapshot())
        else:
            self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        if self.state.forward and self.path not in ("/v1/agents/validate", "/stats/reset", "/faults"):
            self._forward()
            return
        try:
            body = self._body()
        except (ValueError, json.JSONDecodeError):
            self._send(400, {"error": "invalid_request", "message": "body must be a JSON object"})
            return
        if self.path == "/v1/agents/validate":
            self._validate(body)
        elif self.path == "/stats/reset":
            with self.state.lock:
                for k in self.state.counts:
                    self.state.counts[k] = 0
                # in-flight calls still count; the maximum starts again from them
                self.state.max_in_flight = self.state.in_flight
            self._send(200, {"ok": True})
        elif self.path == "/faults" and self.state.enable_faults:
            if not isinstance(body, dict):
                self._send(400, {"error": "invalid_request"})
                return
            with self.state.lock:
                self.state.faults = body
            self._send(200, {"faults": body})
        else:
            self._send(404, {"error": "not_found"})

    def _fault(self) -> bool:
        """Apply the injected fault, if any; True when it answered."""
        with self.state.lock:
            faults = dict(self.state.faults)
        if faults.get("delayMs"):
            time.sleep(int(faults["delayMs"]) / 1000)
        mode = faults.get("mode")
        if mode == "garbage":
            self._send(200, b"<html>this is not the identity service you are looking for</html>", "text/html")
        elif mode == "error":
            self._send(int(faults.get("status") or 500), {"error": "internal_error"})
        elif mode == "json":
            self._send(int(faults.get("status") or 200), faults.get("json"))
        elif mode == "huge":
            self._send(200, {"valid": True, "active": True, "agent_id": "huge-1", "pad": "x" * (100 * 1024)})
        else:
            return False
        return True

    def _forward(self) -> None:
        self.state.count("forwarded")
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if 0 < length <= MAX_BODY else b""
        if self._fault():
            return
        keep = ("content-type", "authorization", "accept")
        req = urllib.request.Request(self.state.forward + self.path, data=raw, method="POST",
                                     headers={k: v for k, v in self.headers.items() if k.lower() in keep})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, data, ctype = r.status, r.read(), r.headers.get("content-type", "application/json")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("content-type", "application/json")
        self._send(status, data, ctype)

    def _validate(self, body: Any) -> None:
        # counted in flight until the answer is written (the delay included)
        self.state.enter()
        try:
            self._validate_counted(body)
        finally:
            self.state.leave()

    def _validate_counted(self, body: Any) -> None:
        self.state.count("validations")
        if self._fault():
            return

        key = body.get("apiKey") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            self._send(400, {"error": "invalid_request", "message": "expected {\"apiKey\": \"...\"}"})
            return
        agent = self.state.by_hash.get(sha256(key))
        if agent is None:
            self.state.count("invalid")
            self._send(401, {"valid": False, "error": "invalid_api_key"})
            return
        if agent.get("disabled"):
            self.state.count("invalid")
            self._send(403, {"valid": False, "error": "agent_disabled"})
            return
        self.state.count("valid")
        claims: dict[str, Any] = {
            "valid": True,
            "agent_id": agent["id"],
            "agent_name": agent.get("name", ""),
            "owner": agent.get("owner", ""),
        }
        if self.state.claims_ttl > 0:
            claims["exp"] = int(time.time()) + self.state.claims_ttl
        self._send(200, claims)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--agents", type=Path, help="JSON list of more agents (added to the built-in registry)")
    ap.add_argument("--claims-ttl", type=int, default=600,
                    help="seconds until `exp` in valid answers (0: no exp claim)")
    ap.add_argument("--enable-faults", action="store_true", help="allow POST /faults (tests and demos only)")
    ap.add_argument("--forward", default="", help="front for this base URL (POSTs to other paths; see above)")
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    agents = BUILTIN_AGENTS + (json.loads(args.agents.read_text()) if args.agents else [])
    Handler.state = State(agents, args.claims_ttl, args.enable_faults)
    Handler.state.forward = args.forward.rstrip("/")
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    log.warning("identity service on http://%s:%d (%d agents)", args.host, args.port, len(agents))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
