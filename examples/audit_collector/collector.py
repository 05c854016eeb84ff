"""Audit collector for the gateway's audit filter: receives event batches,
appends them to a JSON-lines file, counts them. Python standard library only.

What it accepts (the contract of the gateway's audit sender):

* ``POST /v1/agent-events`` (any path other than those below, in fact) with
  ``Content-Type: application/json`` and a body that is either a JSON array
  of events or an object ``{"events": [...]}`` (what the gateway sends).
  Each event is a JSON object; the gateway's carry an ``eventId`` unique per
  request. Answers ``200 {"accepted": n}``; ``400`` if the body is not such
  a batch (the sender then drops the batch instead of retrying it forever).
* ``POST /v1/logs``: OpenTelemetry OTLP/HTTP logs, JSON encoding. When the
  official protos are installed (``opentelemetry-proto``, as in the dev
  environment) the body is parsed strictly into ``ExportLogsServiceRequest``
  (unknown fields or wrong types -> 400), as a real collector would. Each
  log record's attributes are turned back into an event (``agent.id`` ->
  ``{"agent": {"id": ...}}``), with the record's severity and time under
  ``"otlp"``. Answers ``200 {"partialSuccess": {}}`` like a collector.

Every accepted event is written as one line of JSON to ``--out`` (flushed at
once) and kept in memory for ``GET /events``.

Introspection and fault injection (for tests and demos):

* ``GET /healthz``; ``GET /stats`` -> batches, events, duplicate eventIds,
  batch sizes, failures injected, requests currently held;
* ``GET /events`` -> ``{"events": [...]}`` everything received so far;
* ``POST /admin/fail`` ``{"status": 503, "count": 3}`` -> answer the next 3
  batches (or all, without ``count``) with 503; ``{"status": null}`` clears;
* ``POST /admin/block`` ``{"block": true}`` -> hold every batch request
  without answering until ``{"block": false}`` (a collector that stalls);
* ``POST /admin/delay`` ``{"ms": 500}`` -> answer every batch that late;
* ``POST /admin/limit`` ``{"maxEvents": 2}`` -> answer 413 to every batch of
  more than 2 events, as a collector with a request size limit does
  (``{"maxEvents": null}`` clears);
* ``POST /admin/max-bytes`` ``{"bytes": 20000}`` -> answer ``413`` to every
  batch whose body is larger (as a collector or proxy with a body limit
  does); ``{"bytes": null}`` clears;
* ``POST /admin/refuse`` ``{"contains": "x", "status": 400}`` -> refuse every
  batch whose body contains the text ``x`` (an event the collector cannot
  take, e.g. by its ``eventId``); ``{"contains": null}`` clears;
* ``POST /admin/reset`` -> forget events and counters (and truncate --out).

The same knobs exist as flags: ``--fail-status``, ``--delay-ms``,
``--max-batch-bytes``. ``--count-only`` keeps only the eventId counts in
memory (``GET /events`` is then empty): for long soak runs.

Run: python examples/audit_collector/collector.py --port 9100 --out audit-events.jsonl
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

try:  # strict OTLP parsing with the official protos, when installed
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    OTLP_SCHEMA = "opentelemetry-proto"
except ImportError:  # pragma: no cover - plain JSON fallback
    json_format = None  # type: ignore[assignment]
    ExportLogsServiceRequest = None  # type: ignore[assignment,misc]
    OTLP_SCHEMA = "json"


LINE_BREAKS = [b"\n", b"\r", "\u0085".encode(), "\u2028".encode(), "\u2029".encode()]


def otlp_check(raw: bytes) -> str | None:
    """None if `raw` is a valid OTLP JSON ExportLogsServiceRequest, else why not."""
    if json_format is None:
        return None
    try:
        json_format.Parse(raw, ExportLogsServiceRequest())
    except json_format.ParseError as e:
        return f"not an OTLP ExportLogsServiceRequest: {e}"
    return None


class State:
    def __init__(self, out: Path | None, fail_status: int | None, delay_ms: int,
                 max_batch_bytes: int | None = None, keep_events: bool = True) -> None:
        self.lock = threading.Lock()
        self.out = out
        self.events: list[dict[str, Any]] = []
        self.ids: Counter[str] = Counter()
        self.batches: list[dict[str, Any]] = []
        self.failures_injected = 0
        self.rejected = 0
        self.fail_status = fail_status
        self.fail_count: int | None = None
        self.delay_ms = delay_ms
        self.keep_events = keep_events
        self.refused_event_ids: list[str] = []
        self.max_events: int | None = None
        self.max_batch_bytes = max_batch_bytes
        self.refuse_contains: str | None = None
        self.refuse_status = 400
        self.too_large = 0
        self.refused = 0
        # Batch bodies holding a raw line break (a sender that lets a
        # client's newline split its record: log injection).
        self.raw_line_breaks = 0
        self.unblocked = threading.Event()
        self.unblocked.set()
        self.held = 0
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.touch()

    def accept(self, events: list[dict[str, Any]], kind: str, path: str) -> None:
        with self.lock:
            self.batches.append({"at": time.time(), "size": len(events), "format": kind, "path": path})
            for e in events:
                if self.keep_events:
                    self.events.append(e)
                if isinstance(e.get("eventId"), str):
                    self.ids[e["eventId"]] += 1
            if self.out:
                with open(self.out, "a", encoding="utf-8") as f:
                    for e in events:
                        # ASCII: a line of the file is an event for any reader
                        # (U+2028 and NEL are line breaks to some).
                        f.write(json.dumps(e, separators=(",", ":")) + "\n")

    def injected_failure(self) -> int | None:
        with self.lock:
            if self.fail_status is None:
                return None
            status = self.fail_status
            if self.fail_count is not None:
                self.fail_count -= 1
                if self.fail_count <= 0:
                    self.fail_status, self.fail_count = None, None
            self.failures_injected += 1
            return status

    def note_refused(self, raw: bytes) -> None:
        """Remember the eventIds of a batch refused by an injected failure,
        so that tests know exactly which events that batch held."""
        try:
            body = json.loads(raw)
            events = otlp_events(body) if isinstance(body, dict) and "resourceLogs" in body else (
                body.get("events") if isinstance(body, dict) else body)
            ids = [str(e.get("eventId")) for e in events or [] if isinstance(e, dict)]
        except (ValueError, AttributeError, TypeError):
            ids = []
        with self.lock:
            self.refused_event_ids = (self.refused_event_ids + ids)[-1000:]

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "refused_event_ids": list(self.refused_event_ids),
                "batches": len(self.batches),
                "events": len(self.events),
                "unique_events": len(self.ids),
                "duplicates": sum(n - 1 for n in self.ids.values() if n > 1),
                "batch_sizes": [b["size"] for b in self.batches],
                "batch_times": [b["at"] for b in self.batches],
                "failures_injected": self.failures_injected,
                "rejected": self.rejected,
                "too_large": self.too_large,
                "refused": self.refused,
                "raw_line_breaks": self.raw_line_breaks,
                "max_batch_bytes": self.max_batch_bytes,
                "held": self.held,
                "otlp_schema": OTLP_SCHEMA,
                "blocked": not self.unblocked.is_set(),
            }

    def reset(self) -> None:
        with self.lock:
            self.events.clear()
            self.ids.clear()
            self.batches.clear()
            self.failures_injected = 0
            self.rejected = 0
            self.too_large = 0
            self.refused = 0
            self.raw_line_breaks = 0
            self.refused_event_ids = []
            if self.out:
                self.out.write_text("")


def _unflatten(attributes: list[dict[str, Any]]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for attr in attributes:
        key = attr.get("key")
        value = attr.get("value") or {}
        if not isinstance(key, str) or key == "event.name":
            continue
        if "stringValue" in value:
            v: Any = value["stringValue"]
        elif "boolValue" in value:
            v = bool(value["boolValue"])
        elif "intValue" in value:
            v = int(value["intValue"])
        elif "doubleValue" in value:
            v = float(value["doubleValue"])
        elif "arrayValue" in value:  # the event's `truncated` list
            v = [next(iter(x.values())) for x in value["arrayValue"].get("values", []) if x]
        else:
            continue
        node = event
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return event


def otlp_events(body: Any) -> list[dict[str, Any]]:
    events = []
    for rl in body.get("resourceLogs", []):
        resource = _unflatten(rl.get("resource", {}).get("attributes", []))
        for sl in rl.get("scopeLogs", []):
            scope = sl.get("scope", {}).get("name")
            for rec in sl.get("logRecords", []):
                event = _unflatten(rec.get("attributes", []))
                event["otlp"] = {
                    "scope": scope,
                    "service": resource.get("service", {}).get("name"),
                    "severityText": rec.get("severityText"),
                    "severityNumber": rec.get("severityNumber"),
                    "timeUnixNano": rec.get("timeUnixNano"),
                    "body": (rec.get("body") or {}).get("stringValue"),
                }
                events.append(event)
    return events


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Envoy's cluster expects
        server_version = "audit-collector/0.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default
            if self.server.verbose:  # type: ignore[attr-defined]
                super().log_message(fmt, *args)

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            n = int(self.headers.get("content-length") or 0)
            return self.rfile.read(n) if n > 0 else b""

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path == "/healthz":
                self._send(200, {"ok": True})
            elif path == "/stats":
                self._send(200, state.stats())
            elif path == "/events":
                with state.lock:
                    events = list(state.events)
                self._send(200, {"events": events})
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            raw = self._body()
            if path.startswith("/admin/"):
                return self._admin(path, raw)
            with state.lock:
                state.held += 1
            try:
                state.unblocked.wait()
                if state.delay_ms:
                    time.sleep(state.delay_ms / 1000)
                failure = state.injected_failure()
                if failure is not None:
                    state.note_refused(raw)
                    return self._send(failure, {"error": "injected_failure"})
                if any(b in raw for b in LINE_BREAKS):
                    with state.lock:
                        state.raw_line_breaks += 1
                with state.lock:
                    limit, needle, refuse_status = state.max_batch_bytes, state.refuse_contains, state.refuse_status
                if limit is not None and len(raw) > limit:
                    with state.lock:
                        state.too_large += 1
                    return self._send(413, {"error": "payload_too_large", "limit": limit})
                if needle is not None and needle.encode() in raw:
                    with state.lock:
                        state.refused += 1
                    return self._send(refuse_status, {"error": "event_refused"})
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._reject("body is not JSON")
                if path == "/v1/logs":
                    if not isinstance(body, dict):
                        return self._reject("OTLP body must be an object")
                    why = otlp_check(raw)
                    if why:
                        return self._reject(why)
                    state.accept(otlp_events(body), "otlp", path)
                    return self._send(200, {"partialSuccess": {}})
                events = body.get("events") if isinstance(body, dict) else body
                if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
                    return self._reject('expected a JSON array of events or {"events": [...]}')
                with state.lock:
                    too_large = state.max_events is not None and len(events) > state.max_events
                    state.too_large += too_large
                if too_large:
                    return self._send(413, {"error": "payload_too_large", "maxEvents": state.max_events})
                state.accept(events, "json", path)
                self._send(200, {"accepted": len(events)})
            finally:
                with state.lock:
                    state.held -= 1

        def _reject(self, why: str) -> None:
            with state.lock:
                state.rejected += 1
            self._send(400, {"error": "bad_batch", "message": why})

        def _admin(self, path: str, raw: bytes) -> None:
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self._send(400, {"error": "bad_json"})
            if path == "/admin/fail":
                with state.lock:
                    state.fail_status = body.get("status")
                    state.fail_count = body.get("count")
            elif path == "/admin/block":
                if body.get("block", True):
                    state.unblocked.clear()
                else:
                    state.unblocked.set()
            elif path == "/admin/delay":
                state.delay_ms = int(body.get("ms") or 0)
            elif path == "/admin/limit":
                with state.lock:
                    state.max_events = body.get("maxEvents")
            elif path == "/admin/max-bytes":
                with state.lock:
                    state.max_batch_bytes = body.get("bytes")
            elif path == "/admin/refuse":
                with state.lock:
                    state.refuse_contains = body.get("contains")
                    state.refuse_status = int(body.get("status") or 400)
            elif path == "/admin/reset":
                state.reset()
            else:
                return self._send(404, {"error": "not_found"})
            self._send(200, {"ok": True, **state.stats()})

    return Handler


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--out", type=Path, default=Path("audit-events.jsonl"), help="JSON-lines file ('-' for none)")
    ap.add_argument("--fail-status", type=int, default=None, help="answer every batch with this status")
    ap.add_argument("--delay-ms", type=int, default=0, help="answer every batch this late")
    ap.add_argument("--max-batch-bytes", type=int, default=None, help="answer 413 to larger batch bodies")
    ap.add_argument("--count-only", action="store_true", help="keep no events in memory, only eventId counts")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    out = None if str(args.out) == "-" else args.out
    state = State(out, args.fail_status, args.delay_ms, args.max_batch_bytes, keep_events=not args.count_only)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    server.verbose = args.verbose  # type: ignore[attr-defined]

    def stop(*_: Any) -> None:
        state.unblocked.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"audit collector on http://{args.host}:{args.port} -> {out or '(memory only)'}", flush=True)
    server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
